"""What the Model & data page shows, as one plain object: built from the live model and data, or read from the shipped
snapshot of the default demo, and drawn by one function either way.

The snapshot (`assets/landing/<demo>/`) lets a cold server draw the landing page without importing torch: the page
renders from it while torch and the demo model load on a background thread. It is valid only for the exact asset
bytes it was built from (checked by SHA-256 on every use); `tests/test_landing_snapshot.py` checks that a view built
live equals it. Rebuild it with `python -m ui.model_page` after changing the demo, the evaluation or the figures.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from ui.look import ICON_INFO, ICON_WARNING, card, facts, figure, table_download

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SNAPSHOTS = ASSETS / "landing"
SNAPSHOT_FORMAT = 1

FORMATS = {"export": "torch.export", "state_dict": "state_dict", "torchscript": "TorchScript",
           "pickle": "pickle (operator-allowed)"}
RESIZE_MODES = {"crop": "resize, centre-crop", "stretch": "stretch to fit", "pad": "resize, pad with black"}

HOW_TO_READ = {
    "model_input": "Left: the images as the model receives them. Right: the values it is fed. Normalised with the "
                   "training data's mean and std they centre near 0 with a spread near 1; the [0, 1] and [−1, 1] "
                   "conventions fill those ranges instead.",
    "confusion": "Rows are the true classes, columns the predictions; the diagonal holds the correct ones. Each cell "
                 "shows the count and its share of the row.",
    "pred_true": "Each dot is a row; dots on the dashed line are predicted exactly.",
    "arch": "Each box is a module, nested in its parent; its width is its share of parameters. Click a box to zoom in, "
            "the top bar to zoom out.",
    "grid": "Each image is titled with its true class → the model's prediction (✓ right, ✗ wrong).",
}


@dataclass
class ModelPageView:
    """Everything the Model & data page draws below the source picker (texts, Plotly figures, tables)."""

    texts: dict = field(default_factory=dict)  # JSON values only
    figures: dict = field(default_factory=dict)  # key -> go.Figure
    tables: dict = field(default_factory=dict)  # key -> pd.DataFrame


def _is_images(data) -> bool:
    from xai_core.datasets import ImageSet

    return isinstance(data, ImageSet)


def source_of(field_name: str, model, source: str, overrides: dict) -> str:
    if field_name in model.assumed:
        return "**assumed** — " + model.assumed[field_name]
    if source == "upload" and field_name in overrides:
        return "set on this page"
    return "from the demo's sidecar" if source == "demo" else "from the file or sidecar"


def build_view(selection, summary, evaluation, overrides: dict | None = None) -> ModelPageView:
    """The page's content for a selection (`evaluation` None when there is no data); every number comes from here."""
    import numpy as np
    import pandas as pd

    from xai_core.preprocessing import normalisation_name
    from xai_core.viz.model import (architecture_figure, confusion_matrix_figure, image_grid_figure,
                                    model_input_figure, predicted_vs_true_figure)

    overrides = overrides or {}
    model, info, data = selection.model, selection.model.info, selection.data
    view = ModelPageView()
    t = view.texts
    size = summary.size_bytes
    t["name"], t["description"] = info.name, info.description
    t["facts"] = {
        "Format": FORMATS[model.format],
        "Parameters": f"{summary.n_parameters:,}",
        "File size": f"{size / 1024:,.0f} KiB" if size < 1024**2 else f"{size / 1024**2:,.1f} MiB",
        "Input": "×".join(map(str, info.input_shape)) + {"image": " image", "text": " token ids"}.get(info.input_kind, " features"),
        "Output": f"{len(info.class_names)} classes" if info.task == "classification" else f"{info.target_name} (regression)",
    }
    t["classes"] = ("Classes: " + ", ".join(info.class_names[:30]) + (" …" if len(info.class_names) > 30 else "")
                    if info.task == "classification" else None)
    t["notes"] = list(model.notes)

    t["preprocessing"] = None
    if info.input_kind == "image":
        resize_source = ("set on this page" if "resize" in overrides and selection.source == "upload"
                         else "default: keeps the aspect ratio")
        guessed = [f for f in ("input_shape", "mean") if f in model.assumed]
        p = t["preprocessing"] = {
            "markdown": f"- **Input size** {info.image_size[0]}×{info.image_size[1]}, {info.channels} channel(s) — "
                        f"{source_of('input_shape', model, selection.source, overrides)}\n"
                        f"- **Resize** {RESIZE_MODES[info.resize]} — {resize_source}\n"
                        f"- **Normalisation** {normalisation_name(info)} — "
                        f"{source_of('mean', model, selection.source, overrides)}",
            "warning": None, "hint": False, "check": False}
        if guessed:
            p["warning"] = ("Part of the preprocessing is **assumed**, not declared: "
                            + " and ".join({"input_shape": "the input size", "mean": "the normalisation"}[f] for f in guessed)
                            + ". A wrong guess gives no error, only wrong accuracy and wrong explanations. "
                            + ("Set them in Model details above (or in a sidecar)." if selection.source == "upload" else ""))
        if data is not None and len(data):
            view.figures["model_input"] = model_input_figure(data.images, info)
        if data is None or data.labels is None or info.task != "classification":
            p["hint"] = bool(guessed and data is not None)
        else:
            p["check"] = bool(guessed or selection.source != "demo")

    if data is None:
        t["performance"] = None
    else:
        images = _is_images(data)
        perf = t["performance"] = {"score": None}
        if evaluation.score is None:
            perf["no_labels"] = ("The data has no labels, so only predictions are shown. " + (
                "Put images in class folders of a zip, give a file-name pattern, or upload a CSV of file name → label "
                "with them, to score the model." if images else "Pick the label column in Target column above to "
                                                                 "score the model."))
        else:
            low, high = evaluation.score_interval
            perf["score"] = [evaluation.score_name.capitalize(), f"{evaluation.score:.3f}",
                             f"95% bootstrap interval {low:.3f} – {high:.3f} over {evaluation.n_rows} rows"]
            perf["caption"] = (f"95% interval {low:.3f} – {high:.3f} · {evaluation.n_rows} "
                               f"{'images' if images else 'rows'}"
                               + (f" · labels from '{data.target_name}'" if getattr(data, "target_name", None) else ""))
        perf["counts"] = None
        if info.task == "classification":
            if evaluation.confusion is not None:
                view.figures["confusion"] = confusion_matrix_figure(evaluation)
            counts = pd.Series(evaluation.predictions).map(dict(enumerate(info.class_names))).value_counts()
            perf["counts"] = "Predicted classes: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        elif evaluation.labels is not None:
            view.figures["pred_true"] = predicted_vs_true_figure(evaluation, info.target_name or "target")
        predictions = pd.DataFrame({"row": np.arange(evaluation.n_rows)})
        if images:
            predictions["image"] = data.names
        if info.task == "classification":
            predictions["predicted"] = [info.class_names[i] for i in evaluation.predictions]
            predictions["confidence"] = evaluation.probabilities.max(axis=1).round(4)
            if evaluation.labels is not None:
                predictions["true"] = [info.class_names[i] for i in evaluation.labels]
        else:
            predictions["predicted"] = evaluation.predictions.round(4)
            if evaluation.labels is not None:
                predictions["true"] = evaluation.labels
        view.tables["predictions"] = predictions

        t["data"] = {"subtitle": f"{len(data)} {'images' if images else 'rows'}"
                                 + (" with labels" if evaluation.labels is not None else ", unlabelled"),
                     "notes": list(data.notes)}
        if images:
            view.figures["grid"] = image_grid_figure(
                data, info.class_names, evaluation.predictions if info.task == "classification" else None)
        elif info.input_kind == "text":  # documents: the text and its label, not feature columns
            preview = pd.DataFrame({"document": data.texts})
            if data.labels is not None:
                preview.insert(0, "label (true)", [info.class_names[i] for i in data.labels])
            view.tables["preview"] = preview.head(200)
        else:
            preview = data.X.copy()
            if data.y is not None:
                preview.insert(0, f"{data.target_name} (true)", data.y if info.task == "regression"
                               else [info.class_names[i] for i in data.y])
            view.tables["preview"] = preview.head(200)

    view.figures["arch"] = architecture_figure(summary)
    view.tables["layers"] = summary.layers
    return view


def render(view: ModelPageView):
    """Draw the page; returns the place kept for the preprocessing check when one is due, else None."""
    t, figs, tables = view.texts, view.figures, view.tables
    st.markdown(f"### {html.escape(t['name'])}")
    if t["description"]:
        st.caption(t["description"])
    facts(t["facts"])
    if t["classes"]:
        st.caption(t["classes"])
    for note in t["notes"]:
        st.info(note, icon=ICON_INFO)

    verdict = None
    if (p := t["preprocessing"]) is not None:
        card("How the images reach the model", "Each image is resized to the input size, scaled to [0, 1], then "
             "normalised per channel as (x − mean) / std. Is that what this model was trained with?")
        left, right = st.columns([2, 3], gap="large")
        with left:
            st.markdown(p["markdown"])
            if p["warning"]:
                st.warning(p["warning"], icon=ICON_WARNING)
        with right:
            if "model_input" in figs:
                figure(figs["model_input"], HOW_TO_READ["model_input"], key="model_input")
        verdict = st.container()
        if p["hint"]:
            verdict.caption(":material/info: With labelled images (class folders, a file-name pattern, or a CSV of "
                            "file → label) the page scores the usual conventions and tells you if another one fits far "
                            "better.")
        if not p["check"]:
            verdict = None

    if (perf := t["performance"]) is None:
        st.info("Upload data (images, a zip of class folders, or a CSV/Parquet table) to see the model's predictions "
                "and accuracy.", icon=ICON_INFO)
    else:
        left, right = st.columns([3, 2], gap="large")
        with left:
            card("How well does it do?", "The model's score on the selected data, with a 95% bootstrap interval.")
            if perf["score"] is None:
                st.info(perf["no_labels"], icon=ICON_INFO)
            else:
                label, value, help_text = perf["score"]
                st.metric(label, value, help=help_text)
                st.caption(perf["caption"])
            if "confusion" in figs:
                figure(figs["confusion"], HOW_TO_READ["confusion"], key="confusion", download_name="confusion_matrix")
            elif "pred_true" in figs:
                figure(figs["pred_true"], HOW_TO_READ["pred_true"], key="pred_true", download_name="predicted_vs_true")
            if perf["counts"]:
                st.caption(perf["counts"])
            table_download(tables["predictions"], "predictions", "Predictions (CSV)")
        with right:
            _render_architecture(view)
        d = t["data"]
        card("The data", d["subtitle"])
        for note in d["notes"]:
            st.caption(":material/info: " + note)
        if "grid" in figs:
            figure(figs["grid"], HOW_TO_READ["grid"], key="grid")
        else:
            st.dataframe(tables["preview"], width="stretch", height=320)
    return verdict


def _render_architecture(view: ModelPageView) -> None:
    card("Architecture", "Which layers the model has and where its parameters are.")
    figure(view.figures["arch"], HOW_TO_READ["arch"], key="arch")
    with st.expander("Layer table"):
        st.dataframe(view.tables["layers"], width="stretch", height=320, hide_index=True)
        table_download(view.tables["layers"], "layers", "Layers (CSV)")


# ---------------------------------------------------------------------------------------- the shipped snapshot


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def demo_files(demo) -> list[str]:
    """The asset files a demo's landing view is computed from."""
    files = [demo.model_file, Path(demo.model_file).with_suffix(".json").name, demo.data_file]
    return [f for f in files if (ASSETS / f).exists()]


def save_snapshot(key: str, view: ModelPageView, files: list[str], root: Path = SNAPSHOTS) -> Path:
    """Write `view` for demo `key`, with the SHA-256 of the asset files it came from."""
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": SNAPSHOT_FORMAT, "demo": key,
           "files": {name: _sha256(ASSETS / name) for name in files},
           "texts": view.texts, "figures": {k: json.loads(f.to_json()) for k, f in view.figures.items()},
           "tables": sorted(view.tables)}
    (folder / "view.json").write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    for name, frame in view.tables.items():
        frame.to_parquet(folder / f"{name}.parquet")
    return folder


@dataclass
class Snapshot:
    demo: str
    view: ModelPageView


_snapshot_cache: dict[str, tuple[tuple, dict, Snapshot | None]] = {}


def _stamp(path: Path, files: dict) -> tuple:
    stat = path.stat()
    return (stat.st_mtime_ns, stat.st_size,
            tuple((ASSETS / name).stat().st_mtime_ns if (ASSETS / name).exists() else None for name in files))


def load_snapshot(key: str, root: Path = SNAPSHOTS) -> Snapshot | None:
    """The shipped view of demo `key`, or None when there is none or the assets changed since it was built.

    Read once per process (and again only when a file's modification time changes); the assets' SHA-256 are checked
    on every read.
    """
    path = root / key / "view.json"
    if not path.exists():
        return None
    cached = _snapshot_cache.get(str(path))
    if cached is not None and cached[0] == _stamp(path, cached[1]):
        return cached[2]
    doc = json.loads(path.read_text())
    files = doc.get("files", {})
    stamp = _stamp(path, files)
    snapshot = None
    if doc.get("format") == SNAPSHOT_FORMAT and all(
            (ASSETS / name).exists() and _sha256(ASSETS / name) == sha for name, sha in files.items()):
        import pandas as pd
        import plotly.graph_objects as go

        view = ModelPageView(texts=doc["texts"], figures={k: go.Figure(f) for k, f in doc["figures"].items()},
                             tables={name: pd.read_parquet(root / key / f"{name}.parquet") for name in doc["tables"]})
        snapshot = Snapshot(doc["demo"], view)
    _snapshot_cache[str(path)] = (stamp, files, snapshot)
    return snapshot


def build_demo_view(key: str) -> ModelPageView:
    """The landing view of a demo computed live, exactly as the page computes it."""
    from xai_core.demo import load_demo_data, load_demo_model
    from xai_core.evaluation import evaluate, summarize
    from ui.state import Selection

    model = load_demo_model(key)
    data = load_demo_data(key, model)
    selection = Selection(model, data, "demo", key, f"demo:{key}")
    return build_view(selection, summarize(model), evaluate(model, data))


def write_snapshot(key: str, root: Path = SNAPSHOTS) -> Path:
    from xai_core.demo import DEMOS

    return save_snapshot(key, build_demo_view(key), demo_files(DEMOS[key]), root)


def demo_titles_from_source(path: Path = ROOT / "xai_core" / "demo" / "__init__.py") -> dict[str, str] | None:
    """The demos' titles by key, in order, read from the `Demo(key, title, …)` calls in xai_core/demo's source
    without importing it (it imports torch); None if any call is not of that literal form (then import it)."""
    import ast

    titles: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text())) if path.exists() else ():
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Demo":
            args = node.args[:2]
            if len(args) < 2 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
                return None
            titles[args[0].value] = args[1].value
    return titles or None


if __name__ == "__main__":
    from ui.state import DEFAULT_DEMO

    print(write_snapshot(DEFAULT_DEMO))

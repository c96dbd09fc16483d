"""Review report: a whole-dataset review of what is loaded, written to a folder; or a stored review opened again."""

from __future__ import annotations

import os
import re
from pathlib import Path

import streamlit as st

from xai_core import XaiError
from xai_core.attribution.image import METHODS as IMAGE_METHODS
from xai_core.attribution.image import default_method
from xai_core.demo import demo_model_bytes
from xai_core.review import ANALYSES, ModelSource, ReviewSettings, load_review, run_review
from xai_core.review.job import FOR_IMAGES, FOR_TABLES
from xai_core.viz.importance import shap_bar_figure
from xai_core.viz.model import confusion_matrix_figure
from xai_core.viz.tree import tree_figure
from ui import state
from ui.look import ICON_WARNING, card, facts, figure, page_header, table_download, user_errors

page_header("Review report", "What does a review of the whole dataset say, kept in a folder and one offline report?")

ANALYSIS_NAMES = {"images": "Image explanations", "shap": "SHAP values", "surrogate": "Surrogate tree",
                  "quantization": "Quantization"}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def review_root() -> Path:
    """The only folder reviews are written to and read from (operator's XAI_REVIEW_ROOT, default ./reviews)."""
    return Path(os.environ.get("XAI_REVIEW_ROOT", "reviews")).resolve()


def review_folder(name: str) -> Path:
    """`name` as a folder inside the review root; anything that would leave the root is refused."""
    name = (name or "").strip()
    if not name:
        raise XaiError("Type the name of a review folder.")
    root = review_root()
    folder = (root / name).resolve()
    if folder == root or not folder.is_relative_to(root):
        raise XaiError(f"Reviews are read only from folders inside the review root ({root}); type a folder name "
                       "such as 'wine-review', not a path.")
    return folder


def model_source(selection: state.Selection) -> ModelSource | None:
    """The loaded model's bytes, for the manifest's SHA-256 of the file."""
    if selection.source == "demo":
        model_bytes, sidecar = demo_model_bytes(selection.demo_key)
        return ModelSource(model_bytes, f"{selection.demo_key}.pt2", sidecar)
    upload = st.session_state.get("model_upload")
    if not upload:
        return None
    return ModelSource(upload["bytes"], upload["name"], upload.get("sidecar"), upload.get("overrides") or None)


def write_section(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    card("Review what is loaded", f"Every analysis over all {len(data)} items of the data on Model & data, with the "
                                  "pages' default settings, written shard by shard (a second click resumes).")
    fits = FOR_IMAGES if model.info.input_kind == "image" else FOR_TABLES
    offered = [a for a in ANALYSES if a in fits]
    c = st.columns([3, 2])
    names = dict(ANALYSIS_NAMES)
    if "images" in offered:  # the method a review explains images with: the Image explanations page's default
        names["images"] += f" ({IMAGE_METHODS[default_method(model)].name})"
    chosen = c[0].multiselect("Analyses (the evaluation always runs)", offered, default=offered,
                              format_func=names.get, key="rv_analyses")
    default_name = SAFE_NAME.sub("-", f"{model.info.name}-{model.sha256[:8]}")
    name = c[1].text_input("Folder name", default_name, key="rv_write_name",
                           help=f"Written inside the review root, {review_root()}.")
    if not st.button("Write the review", type="primary", key="rv_write"):
        return
    folder = review_folder(name)
    bar = st.progress(0.0, text="starting the review")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total, text=f"step {done}/{total}: {message}")

    run_review(model, data, folder, ReviewSettings(analyses=tuple(chosen)), background=selection.background,
               source=model_source(selection), progress=progress)
    bar.empty()
    st.session_state["rv_open_name"] = str(folder.relative_to(review_root()))
    st.success(f"Review written to {folder}; it is opened below.")


def report_bytes(folder: Path):
    """The report, built when the download is clicked (it inlines plotly.js, about 5 MB)."""
    def build() -> bytes:
        from xai_core.report import write_report

        path = folder / "report.html"
        if not path.exists():
            write_report(load_review(folder), path)
        return path.read_bytes()

    return build


def open_section() -> None:
    card("Open a stored review", f"Reviews written here or by `python -m xai_core review --out {review_root()}/NAME` "
                                 "are shown from their files, without computing anything again.")
    name = st.text_input("Review folder (inside the review root)", key="rv_open_name")
    if not name:
        return
    folder = review_folder(name)
    review = load_review(folder)
    manifest = review.manifest
    st.download_button("report.html (opens offline)", report_bytes(folder), file_name=f"{folder.name}-report.html",
                       mime="text/html", key="rv_report", icon=":material/download:")
    if review.missing:
        st.warning(f"Unfinished: {', '.join(review.missing)}. Rerun the same review to finish it.", icon=ICON_WARNING)
    model = manifest["model"]
    summary = {"model": model["file"], "items": str(manifest["data"]["n_items"]),
               "model SHA-256": manifest["model_sha256"][:16] + "…", "data SHA-256": manifest["data_sha256"][:16] + "…"}
    ev = review.evaluation
    if ev is not None and ev.score is not None:
        low, high = ev.score_interval
        summary[ev.score_name] = f"{ev.score:.3f} ({low:.3f} – {high:.3f})"
    facts(summary)
    if ev is not None and ev.confusion is not None:
        figure(confusion_matrix_figure(ev), "Rows are the true class, columns the predicted one.", key="rv_confusion",
               download_name="review_confusion")
    if review.shap is not None:
        output = 1 if len(review.shap.output_names) == 2 else 0
        figure(shap_bar_figure(review.shap, output), f"Mean |SHAP value| over all {len(review.shap.rows)} reviewed "
               "rows.", key="rv_shap", download_name="review_shap")
        table_download(review.shap.to_frame(output_index=None), f"{folder.name}-shap_values", "SHAP values (CSV)")
    if review.surrogate is not None:
        s = review.surrogate
        st.metric("Surrogate fidelity", f"{s.fidelity:.3f}", help=f"Held-out {s.fidelity_name}.")
        figure(tree_figure(s), f"{s.fidelity_name}, 95% interval {s.fidelity_interval[0]:.3f} – "
               f"{s.fidelity_interval[1]:.3f}.", key="rv_tree", download_name="review_tree")
    if review.images is not None:
        st.caption(f"{len(review.images.table)} images explained with "
                   f"{', '.join(e.method_name for e in review.images.explanations.values())}; the report shows the "
                   "gallery.")
    if review.quantization is not None:
        st.dataframe(review.quantization, hide_index=True, width="stretch")
    with st.expander("Manifest"):
        st.json(manifest, expanded=False)


with user_errors():
    selection = state.current_selection()
    if selection.data is None:
        st.info("Upload data on **Model & data** first: a review runs over a whole dataset.")
    elif selection.model.info.input_kind not in ("image", "tabular"):
        st.info("Reviews cover image and table models.")
    else:
        write_section(selection)
with user_errors():
    open_section()

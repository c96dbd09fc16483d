"""Model & data: pick a demo or upload a model and data; see what the model is, how its inputs are prepared, and how
well it does."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.data_loading import TABLE_SUFFIXES, read_table, suggest_label_pattern
from xai_core.datasets import ImageSet
from xai_core.demo import DEMOS
from xai_core.evaluation import evaluate, summarize
from xai_core.loading import torchvision_architectures
from xai_core.preprocessing import check_preprocessing, normalisation_name
from xai_core.viz.model import (architecture_figure, confusion_matrix_figure, image_grid_figure, model_input_figure,
                                predicted_vs_true_figure, preprocessing_check_figure)
from ui import state
from ui.look import ICON_INFO, ICON_WARNING, card, facts, figure, page_header, table_download, user_errors

page_header("Model & data", "What model am I looking at, how does it see its inputs, and how well does it do?")

FORMATS = {"export": "torch.export", "state_dict": "state_dict", "torchscript": "TorchScript",
           "pickle": "pickle (operator-allowed)"}
RESIZE_MODES = {"crop": "resize, centre-crop", "stretch": "stretch to fit", "pad": "resize, pad with black"}


@st.cache_data(max_entries=32, show_spinner="Scoring the model on the data…")
def cached_evaluation(model_sha: str, data_key: str, _selection):
    return evaluate(_selection.model, _selection.data)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_summary(model_sha: str, _model):
    return summarize(_model)


@st.cache_data(max_entries=16, show_spinner="Trying the usual preprocessing conventions on your labelled images…")
def cached_preprocessing_check(model_sha: str, data_key: str, _model, _files, label_pattern, _data):
    return check_preprocessing(_model, _files, label_pattern=label_pattern, data=_data)


# ---------------------------------------------------------------------------------------- choosing what to analyse


def choose_source() -> None:
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    source = left.segmented_control("Source", ["Demo", "Upload"],
                                    default="Demo" if st.session_state.get("source", "demo") == "demo" else "Upload",
                                    key="source_control")
    st.session_state["source"] = "upload" if source == "Upload" else "demo"
    if st.session_state["source"] == "demo":
        keys = list(DEMOS)
        current = st.session_state.get("demo_key", state.DEFAULT_DEMO)
        key = right.selectbox("Demo model and its held-out data", keys, index=keys.index(current) if current in keys else 0,
                              format_func=lambda k: DEMOS[k].title, key="demo_select")
        st.session_state["demo_key"] = key
    else:
        upload_form()


def _store_model_file() -> None:
    file = st.session_state.get("model_file")
    if file is None:
        st.session_state.pop("model_upload", None)
    else:
        st.session_state["model_upload"] = {"bytes": file.getvalue(), "name": file.name, "sidecar": None, "overrides": {}}
        _store_sidecar()


def _store_sidecar() -> None:
    file = st.session_state.get("sidecar_file")
    if "model_upload" in st.session_state:
        st.session_state["model_upload"]["sidecar"] = file.getvalue() if file is not None else None


def _store_data_files() -> None:
    files = st.session_state.get("data_files") or []
    st.session_state["data_upload"] = [(f.name, f.getvalue()) for f in files]
    for key in ("target_column", "ignore_columns", "label_pattern", "target_select", "ignore_select", "pattern_input"):
        st.session_state.pop(key, None)


def _numbers(text: str, what: str) -> list[float] | None:
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        st.error(f"{what} must be numbers separated by commas, e.g. 0.485, 0.456, 0.406.", icon=ICON_WARNING)
        return None


def upload_form() -> None:
    """Uploads go into this session's state through the widgets' callbacks, never into shared caches by name.

    The uploaders accept any file: the loaders read the bytes and say what is wrong, where a type filter would only
    say "not allowed".
    """
    cols = st.columns(2)
    with cols[0]:
        st.file_uploader("Model: torch.export `.pt2`, state_dict `.pt`/`.pth`/`.safetensors`, or TorchScript `.pt`",
                         key="model_file", on_change=_store_model_file)
        st.file_uploader("Metadata sidecar (optional JSON: class_names, feature_names, input_shape, mean, std…)",
                         key="sidecar_file", on_change=_store_sidecar)
    with cols[1]:
        st.file_uploader("Data: images (PNG/JPEG/WebP), a zip of class folders, or a table (CSV/Parquet). With images, "
                         "a CSV of file name → label labels them.",
                         accept_multiple_files=True, key="data_files", on_change=_store_data_files)
    upload = st.session_state.get("model_upload")
    if st.session_state.get("uploads_restored") and upload:
        n_files = len(st.session_state.get("data_upload") or [])
        st.caption(f":material/history: Restored after the reload: **{html.escape(upload['name'])}**"
                   + (f" and {n_files} data file(s)" if n_files else "") + ". Upload again to replace them.")
    overrides = model_details_form()
    if not upload:
        st.info("Upload a model to analyse it. Until then every page uses the demo.", icon=ICON_INFO)
        return
    upload["overrides"] = overrides
    data_options()


def model_details_form() -> dict:
    """The model's metadata as form fields; what is typed here overrides the file and the sidecar."""
    with st.expander("Model details: fill in or correct what the file and sidecar do not say", icon=":material/tune:"):
        c = st.columns(4)
        task = c[0].selectbox("Task", ["(infer)", "classification", "regression"], key="ov_task")
        kind = c[1].selectbox("Input", ["(infer)", "image", "tabular"], key="ov_kind")
        shape = c[2].text_input("Input shape without batch, e.g. 3,224,224 or 13", key="ov_shape")
        arch = c[3].selectbox("torchvision architecture (state_dict)", ["(detect)", *torchvision_architectures()],
                              key="ov_arch", help="'(detect)' matches the weights' layer names.")
        c = st.columns(3)
        mean = c[0].text_input("Image mean per channel (pixels in [0, 1]), e.g. 0.485, 0.456, 0.406", key="ov_mean")
        std = c[1].text_input("Image std per channel, e.g. 0.229, 0.224, 0.225", key="ov_std")
        resize = c[2].selectbox("Resize to the input size", ["(infer)", *RESIZE_MODES],
                                format_func=lambda k: RESIZE_MODES.get(k, k), key="ov_resize")
        c = st.columns(2)
        names = c[0].text_area("Class names (one per line)", key="ov_classes", height=80)
        features = c[1].text_area("Feature names (one per line, in the model's order)", key="ov_features", height=80)
    overrides: dict = {}
    if task != "(infer)":
        overrides["task"] = task
    if kind != "(infer)":
        overrides["input_kind"] = kind
    if shape.strip():
        try:
            overrides["input_shape"] = [int(v) for v in shape.replace("×", ",").replace("x", ",").split(",") if v.strip()]
        except ValueError:
            st.error("Input shape must be whole numbers separated by commas, e.g. 3,224,224.", icon=ICON_WARNING)
    if arch != "(detect)":
        overrides["architecture"] = arch
    for key, text, what in (("mean", mean, "Mean"), ("std", std, "Std")):
        if text.strip() and (values := _numbers(text, what)) is not None:
            overrides[key] = values
    if resize != "(infer)":
        overrides["resize"] = resize
    if names.strip():
        overrides["class_names"] = [n.strip() for n in names.splitlines() if n.strip()]
    if features.strip():
        overrides["feature_names"] = [n.strip() for n in features.splitlines() if n.strip()]
    return overrides


def data_options() -> None:
    """How the uploaded data is read: the label column and columns to ignore (tables), labels from file names (images)."""
    files = st.session_state.get("data_upload") or []
    tables = [(n, d) for n, d in files if n.lower().endswith(TABLE_SUFFIXES)]
    images = [n for n, _ in files if not n.lower().endswith(TABLE_SUFFIXES)]
    if len(tables) == 1 and not images:
        with user_errors():
            columns = list(read_table(tables[0][1], tables[0][0]).columns)
            c = st.columns(2)
            choice = c[0].selectbox("Target column (labels, optional)", ["(auto)", "(none)", *columns], key="target_select",
                                    help="(auto) takes a column named like the model's target, 'target', 'label', 'y' "
                                         "or 'class'.")
            st.session_state["target_column"] = None if choice == "(auto)" else ("" if choice == "(none)" else choice)
            ignored = c[1].multiselect("Columns to ignore (IDs, free text, columns the model never saw)",
                                       [col for col in columns if col != choice], key="ignore_select")
            st.session_state["ignore_columns"] = list(ignored)
    elif images:
        loose = [n for n in images if not n.lower().endswith(".zip")]
        if loose and not tables:
            pattern = st.text_input("Labels from file names (optional): a regular expression whose first group is the "
                                    r"class name or index, e.g. ^([a-z]+)_\d+ reads 'cat' from 'cat_12.png'",
                                    key="pattern_input")
            st.session_state["label_pattern"] = pattern.strip() or None
            model = _model_or_none()
            if model is not None and not pattern.strip() and model.info.task == "classification":
                suggested = suggest_label_pattern(loose, model.info.class_names)
                if suggested:
                    st.button(f"Every file name starts with a class name: label the images by it ({suggested})",
                              key="use_pattern", on_click=_set_state, args=({"pattern_input": suggested},),
                              icon=":material/label:")


def _model_or_none():
    try:
        return state.uploaded_model()
    except Exception:  # the model's own error is shown below, by the summary
        return None


def _set_state(values: dict) -> None:
    for key, value in values.items():
        st.session_state[key] = value


# ---------------------------------------------------------------------------------------- what the model is


def _source_of(field: str, model) -> str:
    if field in model.assumed:
        return "**assumed** — " + model.assumed[field]
    upload = st.session_state.get("model_upload") or {}
    if st.session_state.get("source") == "upload" and field in (upload.get("overrides") or {}):
        return "set on this page"
    return "from the demo's sidecar" if st.session_state.get("source", "demo") == "demo" else "from the file or sidecar"


def show_summary(selection: state.Selection) -> None:
    model, info = selection.model, selection.model.info
    summary = cached_summary(model.sha256, model)
    st.markdown(f"### {html.escape(info.name)}")
    if info.description:
        st.caption(info.description)
    size = summary.size_bytes
    facts({
        "Format": FORMATS[model.format],
        "Parameters": f"{summary.n_parameters:,}",
        "File size": f"{size / 1024:,.0f} KiB" if size < 1024**2 else f"{size / 1024**2:,.1f} MiB",
        "Input": "×".join(map(str, info.input_shape)) + {"image": " image", "text": " token ids"}.get(info.input_kind, " features"),
        "Output": f"{len(info.class_names)} classes" if info.task == "classification" else f"{info.target_name} (regression)",
    })
    if info.task == "classification":
        st.caption("Classes: " + ", ".join(info.class_names[:30]) + (" …" if len(info.class_names) > 30 else ""))
    for note in model.notes:
        st.info(note, icon=ICON_INFO)


def show_preprocessing(selection: state.Selection):
    """How images reach the model, where each setting came from, and whether another convention scores far better."""
    model, info, data = selection.model, selection.model.info, selection.data
    card("How the images reach the model", "Each image is resized to the input size, scaled to [0, 1], then "
         "normalised per channel as (x − mean) / std. Is that what this model was trained with?")
    resize_source = ("set on this page" if "resize" in (st.session_state.get("model_upload") or {}).get("overrides", {})
                     and selection.source == "upload" else "default: keeps the aspect ratio")
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown(
            f"- **Input size** {info.image_size[0]}×{info.image_size[1]}, {info.channels} channel(s) — "
            f"{_source_of('input_shape', model)}\n"
            f"- **Resize** {RESIZE_MODES[info.resize]} — {resize_source}\n"
            f"- **Normalisation** {normalisation_name(info)} — {_source_of('mean', model)}")
        guessed = [f for f in ("input_shape", "mean") if f in model.assumed]
        if guessed:
            st.warning("Part of the preprocessing is **assumed**, not declared: "
                       + " and ".join({"input_shape": "the input size", "mean": "the normalisation"}[f] for f in guessed)
                       + ". A wrong guess gives no error, only wrong accuracy and wrong explanations. "
                       + ("Set them in Model details above (or in a sidecar)." if selection.source == "upload" else ""),
                       icon=ICON_WARNING)
    with right:
        if data is not None and len(data):
            figure(model_input_figure(data.images, info), "Left: the images as the model receives them. Right: the "
                   "values it is fed. Normalised with the training data's mean and std they centre near 0 with a "
                   "spread near 1; the [0, 1] and [−1, 1] conventions fill those ranges instead.", key="model_input")
    verdict = st.container()
    if data is None or data.labels is None or info.task != "classification":
        if guessed and data is not None:
            verdict.caption(":material/info: With labelled images (class folders, a file-name pattern, or a CSV of "
                            "file → label) the page scores the usual conventions and tells you if another one fits far "
                            "better.")
        return None
    if not guessed and selection.source == "demo":
        return None
    return verdict


def show_preprocessing_check(selection: state.Selection, verdict) -> None:
    """Runs after the rest of the page is drawn (it scores the model several times), into the place kept for it."""
    model, info, data = selection.model, selection.model.info, selection.data
    files = st.session_state.get("data_upload") or []
    with verdict:
        check = cached_preprocessing_check(model.sha256, selection.data_key, model, files,
                                           st.session_state.get("label_pattern"), data)
    better = check.better
    with verdict:
        if better is not None:
            overrides = {"ov_mean": ", ".join(f"{v:g}" for v in better.mean),
                         "ov_std": ", ".join(f"{v:g}" for v in better.std)}
            if better.input_size != info.image_size:
                overrides["ov_shape"] = f"{info.channels},{better.input_size[0]},{better.input_size[1]}"
            st.error(f"**Another preprocessing fits this model far better.** With {check.current.label} (in use) the "
                     f"accuracy is {check.current.accuracy:.3f}; with **{better.label}** it is **{better.accuracy:.3f}** "
                     f"(95% interval {better.interval[0]:.3f}–{better.interval[1]:.3f}, {better.n_images} images). Every "
                     "number and explanation on these pages uses the preprocessing in use.", icon=ICON_WARNING)
            st.button(f"Use {better.label}", key="use_convention", on_click=_set_state, args=(overrides,),
                      type="primary", icon=":material/check:")
        else:
            st.success(f"The preprocessing in use scores best of the {len(check.scores)} conventions tried "
                       f"({check.current.accuracy:.3f} on {check.current.n_images} labelled images).",
                       icon=":material/check_circle:")
        with st.expander("Accuracy under each convention tried", expanded=better is not None):
            figure(preprocessing_check_figure(check), "Accuracy on your labelled images under each usual convention "
                   "(bars: 95% bootstrap intervals). A model is normally far more accurate with the preprocessing it "
                   "was trained with.", key="preprocessing_check")
            for note in check.notes:
                st.caption(note)


# ---------------------------------------------------------------------------------------- how well it does


def show_performance(selection: state.Selection):
    data, info = selection.data, selection.model.info
    card("How well does it do?", "The model's score on the selected data, with a 95% bootstrap interval.")
    evaluation = cached_evaluation(selection.model.sha256, selection.data_key, selection)
    if evaluation.score is None:
        if isinstance(data, ImageSet):
            hint = ("Put images in class folders of a zip, give a file-name pattern, or upload a CSV of file name → "
                    "label with them, to score the model.")
        else:
            hint = "Pick the label column in Target column above to score the model."
        st.info("The data has no labels, so only predictions are shown. " + hint, icon=ICON_INFO)
    else:
        low, high = evaluation.score_interval
        st.metric(evaluation.score_name.capitalize(), f"{evaluation.score:.3f}",
                  help=f"95% bootstrap interval {low:.3f} – {high:.3f} over {evaluation.n_rows} rows")
        st.caption(f"95% interval {low:.3f} – {high:.3f} · {evaluation.n_rows} "
                   f"{'images' if isinstance(data, ImageSet) else 'rows'}"
                   + (f" · labels from '{data.target_name}'" if getattr(data, "target_name", None) else ""))
    if info.task == "classification":
        if evaluation.confusion is not None:
            figure(confusion_matrix_figure(evaluation), "Rows are the true classes, columns the predictions; the diagonal "
                   "holds the correct ones. Each cell shows the count and its share of the row.",
                   key="confusion", download_name="confusion_matrix")
        counts = pd.Series(evaluation.predictions).map(dict(enumerate(info.class_names))).value_counts()
        st.caption("Predicted classes: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    elif evaluation.labels is not None:
        figure(predicted_vs_true_figure(evaluation, info.target_name or "target"),
               "Each dot is a row; dots on the dashed line are predicted exactly.", key="pred_true",
               download_name="predicted_vs_true")
    predictions = pd.DataFrame({"row": np.arange(evaluation.n_rows)})
    if isinstance(data, ImageSet):
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
    table_download(predictions, "predictions", "Predictions (CSV)")
    return evaluation


def show_data(selection: state.Selection, evaluation) -> None:
    data, info = selection.data, selection.model.info
    card("The data", f"{len(data)} {'images' if isinstance(data, ImageSet) else 'rows'}"
         + (" with labels" if evaluation.labels is not None else ", unlabelled"))
    for note in data.notes:
        st.caption(":material/info: " + note)
    if isinstance(data, ImageSet):
        figure(image_grid_figure(data, info.class_names, evaluation.predictions if info.task == "classification" else None),
               "Each image is titled with its true class → the model's prediction (✓ right, ✗ wrong).", key="grid")
    elif info.input_kind == "text":  # documents: the text and its label, not feature columns
        preview = pd.DataFrame({"document": data.texts})
        if data.labels is not None:
            preview.insert(0, "label (true)", [info.class_names[i] for i in data.labels])
        st.dataframe(preview.head(200), width="stretch", height=320)
    else:
        preview = data.X.copy()
        if data.y is not None:
            preview.insert(0, f"{data.target_name} (true)", data.y if info.task == "regression"
                           else [info.class_names[i] for i in data.y])
        st.dataframe(preview.head(200), width="stretch", height=320)


def show_architecture(selection: state.Selection) -> None:
    summary = cached_summary(selection.model.sha256, selection.model)
    card("Architecture", "Which layers the model has and where its parameters are.")
    figure(architecture_figure(summary), "Each box is a module, nested in its parent; its width is its share of "
           "parameters. Click a box to zoom in, the top bar to zoom out.", key="arch")
    with st.expander("Layer table"):
        st.dataframe(summary.layers, width="stretch", height=320, hide_index=True)
        table_download(summary.layers, "layers", "Layers (CSV)")


choose_source()
with user_errors():
    selection = state.current_selection()
    show_summary(selection)
    verdict = show_preprocessing(selection) if selection.model.info.input_kind == "image" else None
    if selection.data is None:
        st.info("Upload data (images, a zip of class folders, or a CSV/Parquet table) to see the model's predictions "
                "and accuracy.", icon=ICON_INFO)
    else:
        left, right = st.columns([3, 2], gap="large")
        with left:
            evaluation = show_performance(selection)
        with right:
            show_architecture(selection)
        show_data(selection, evaluation)
    if verdict is not None:
        show_preprocessing_check(selection, verdict)

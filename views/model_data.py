"""Model & data: pick a demo or upload a model and data; see what the model is and how well it does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.data_loading import read_table
from xai_core.datasets import ImageSet
from xai_core.demo import DEMOS
from xai_core.evaluation import evaluate, summarize
from xai_core.loading import torchvision_architectures
from xai_core.viz.model import (architecture_figure, confusion_matrix_figure, image_grid_figure,
                                predicted_vs_true_figure)
from ui import state
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Model & data", "What model am I looking at, and how well does it do on this data?")


@st.cache_data(max_entries=32, show_spinner="Scoring the model on the data…")
def cached_evaluation(model_sha: str, data_key: str, _selection):
    return evaluate(_selection.model, _selection.data)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_summary(model_sha: str, _model):
    return summarize(_model)


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
    st.session_state.pop("target_column", None)


def upload_form() -> None:
    """Uploads go into this session's state through the widgets' callbacks, never into shared caches by name."""
    cols = st.columns(2)
    with cols[0]:
        st.file_uploader("Model (.pt2 export, state_dict .pt/.pth/.safetensors, or TorchScript .pt)",
                         type=["pt2", "pt", "pth", "safetensors", "bin"], key="model_file", on_change=_store_model_file)
        st.file_uploader("Metadata sidecar (optional JSON: class_names, feature_names, input_shape, mean, std…)",
                         type=["json"], key="sidecar_file", on_change=_store_sidecar)
    with cols[1]:
        st.file_uploader("Data: images (PNG/JPEG/WebP), a zip of class folders, or a table (CSV/Parquet)",
                         type=["png", "jpg", "jpeg", "webp", "zip", "csv", "parquet"],
                         accept_multiple_files=True, key="data_files", on_change=_store_data_files)
    with st.expander("Model details (fill in what the file and sidecar do not say)"):
        c = st.columns(3)
        task = c[0].selectbox("Task", ["(infer)", "classification", "regression"], key="ov_task")
        kind = c[1].selectbox("Input", ["(infer)", "image", "tabular"], key="ov_kind")
        shape = c[2].text_input("Input shape without batch, e.g. 3,224,224 or 13", key="ov_shape")
        arch = st.selectbox("torchvision architecture (for a state_dict; '(detect)' matches the weights' layer names)",
                            ["(detect)", *torchvision_architectures()], key="ov_arch")
        names = st.text_area("Class names (one per line)", key="ov_classes", height=80)
        features = st.text_area("Feature names (one per line, in the model's order)", key="ov_features", height=80)
    overrides: dict = {}
    if task != "(infer)":
        overrides["task"] = task
    if kind != "(infer)":
        overrides["input_kind"] = kind
    if shape.strip():
        try:
            overrides["input_shape"] = [int(v) for v in shape.replace("×", ",").replace("x", ",").split(",") if v.strip()]
        except ValueError:
            st.error("Input shape must be whole numbers separated by commas, e.g. 3,224,224.")
    if arch != "(detect)":
        overrides["architecture"] = arch
    if names.strip():
        overrides["class_names"] = [n.strip() for n in names.splitlines() if n.strip()]
    if features.strip():
        overrides["feature_names"] = [n.strip() for n in features.splitlines() if n.strip()]
    upload = st.session_state.get("model_upload")
    if not upload:
        st.info("Upload a model to analyse it. Until then every page uses the demo.")
        return
    upload["overrides"] = overrides
    tables = [(n, d) for n, d in st.session_state.get("data_upload") or [] if n.lower().endswith((".csv", ".parquet"))]
    if len(tables) == 1:
        with user_errors():
            columns = list(read_table(tables[0][1], tables[0][0]).columns)
            choice = st.selectbox("Target column (labels, optional)", ["(auto)", "(none)", *columns], key="target_select")
            st.session_state["target_column"] = None if choice == "(auto)" else ("" if choice == "(none)" else choice)


def show_summary(selection: state.Selection) -> None:
    model, info = selection.model, selection.model.info
    summary = cached_summary(model.sha256, model)
    st.markdown(f"### {info.name}")
    if info.description:
        st.caption(info.description)
    m = st.columns(5)
    m[0].metric("Format", {"export": "torch.export", "state_dict": "state_dict", "torchscript": "TorchScript",
                           "pickle": "pickle (operator-allowed)"}[model.format])
    m[1].metric("Parameters", f"{summary.n_parameters:,}")
    m[2].metric("File size", f"{summary.size_bytes / 1024:,.0f} KiB" if summary.size_bytes < 1024**2 else f"{summary.size_bytes / 1024**2:,.1f} MiB")
    m[3].metric("Input", "×".join(map(str, info.input_shape)) + (" image" if info.input_kind == "image" else " features"))
    m[4].metric("Output", f"{len(info.class_names)} classes" if info.task == "classification" else f"{info.target_name} (regression)")
    if info.task == "classification":
        st.caption("Classes: " + ", ".join(info.class_names[:30]) + (" …" if len(info.class_names) > 30 else ""))
    for note in model.notes:
        st.info(note, icon="ℹ️")


def show_performance(selection: state.Selection) -> None:
    data, info = selection.data, selection.model.info
    card("How well does it do?", "The model's score on the selected data, with a 95% bootstrap interval.")
    evaluation = cached_evaluation(selection.model.sha256, selection.data_key, selection)
    if evaluation.score is None:
        st.info("The data has no labels, so only predictions are shown. Put images in class folders of a zip, or "
                "pick a target column, to score the model.")
    else:
        low, high = evaluation.score_interval
        st.metric(evaluation.score_name.capitalize(), f"{evaluation.score:.3f}",
                  help=f"95% bootstrap interval {low:.3f} – {high:.3f} over {evaluation.n_rows} rows")
        st.caption(f"95% interval {low:.3f} – {high:.3f} · {evaluation.n_rows} rows")
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
    table_download(predictions, "predictions", "⬇ predictions (CSV)")
    return evaluation


def show_data(selection: state.Selection, evaluation) -> None:
    data, info = selection.data, selection.model.info
    card("The data", f"{len(data)} {'images' if isinstance(data, ImageSet) else 'rows'}"
         + (" with labels" if evaluation.labels is not None else ", unlabelled"))
    for note in data.notes:
        st.caption("ℹ️ " + note)
    if isinstance(data, ImageSet):
        figure(image_grid_figure(data, info.class_names, evaluation.predictions if info.task == "classification" else None),
               "Each image is titled with its true class → the model's prediction (✓ right, ✗ wrong).", key="grid")
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
        table_download(summary.layers, "layers", "⬇ layers (CSV)")


choose_source()
with user_errors():
    selection = state.current_selection()
    show_summary(selection)
    if selection.data is None:
        st.info("Upload data (images, a zip of class folders, or a CSV/Parquet table) to see the model's predictions and accuracy.")
    else:
        left, right = st.columns([3, 2], gap="large")
        with left:
            evaluation = show_performance(selection)
        with right:
            show_architecture(selection)
        show_data(selection, evaluation)

"""Model & data: pick a demo or upload a model and data; see what the model is, how its inputs are prepared, and how
well it does.

The default demo is drawn from its shipped snapshot (ui.model_page) without importing torch; everything else is
computed here. xai_core (and so torch) is imported only on the paths that need it.
"""

from __future__ import annotations

import html
import json
import sys

import streamlit as st

from ui import model_page, state
from ui.look import ICON_INFO, ICON_WARNING, figure, page_header, user_errors
from ui.model_page import RESIZE_MODES

page_header("Model & data", "What model am I looking at, how does it see its inputs, and how well does it do?")


@st.cache_data(max_entries=32, show_spinner="Scoring the model on the data…")
def cached_evaluation(model_sha: str, data_key: str, _selection):
    from xai_core.evaluation import evaluate

    return evaluate(_selection.model, _selection.data)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_summary(model_sha: str, _model):
    from xai_core.evaluation import summarize

    return summarize(_model)


@st.cache_data(max_entries=16, show_spinner="Trying the usual preprocessing conventions on your labelled images…")
def cached_preprocessing_check(model_sha: str, data_key: str, _model, _files, label_pattern, _data):
    from xai_core.preprocessing import check_preprocessing

    return check_preprocessing(_model, _files, label_pattern=label_pattern, data=_data)


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_demo_view(key: str, model_sha: str, _selection) -> model_page.ModelPageView:
    """A demo's page content (figures included), built once per process: switching back to a demo redraws it at once."""
    evaluation = cached_evaluation(model_sha, _selection.data_key, _selection) if _selection.data is not None else None
    return model_page.build_view(_selection, cached_summary(model_sha, _selection.model), evaluation)


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_upload_view(model_sha: str, data_key: str, overrides_json: str, _selection, _summary, _evaluation,
                       _overrides: dict) -> model_page.ModelPageView:
    """An upload's page content, built once per model, data and settings on this page (the keys are digests of their
    bytes): a rerun or a return to the page redraws it without rebuilding its figures. Never changed once built."""
    return model_page.build_view(_selection, _summary, _evaluation, _overrides)


def demo_titles() -> dict[str, str]:
    """The demos' titles by key: read from xai_core/demo's source until it has been imported (it imports torch)."""
    if "xai_core.demo" not in sys.modules and (titles := model_page.demo_titles_from_source()) is not None:
        return titles
    from xai_core.demo import DEMOS

    return {k: d.title for k, d in DEMOS.items()}


# ---------------------------------------------------------------------------------------- choosing what to analyse


def choose_source() -> None:
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    source = left.segmented_control("Source", ["Demo", "Upload"],
                                    default="Demo" if st.session_state.get("source", "demo") == "demo" else "Upload",
                                    key="source_control")
    st.session_state["source"] = "upload" if source == "Upload" else "demo"
    if st.session_state["source"] == "demo":
        titles = demo_titles()
        keys = list(titles)
        current = st.session_state.get("demo_key", state.DEFAULT_DEMO)
        key = right.selectbox("Demo model and its held-out data", keys, index=keys.index(current) if current in keys else 0,
                              format_func=lambda k: titles[k], key="demo_select")
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
        from xai_core.loading import torchvision_architectures

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
    from xai_core.data_loading import TABLE_SUFFIXES, read_table, suggest_label_pattern

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


# ---------------------------------------------------------------------------------------- what the model is, how well it does


def show_preprocessing_check(selection: state.Selection, verdict) -> None:
    """Runs after the rest of the page is drawn (it scores the model several times), into the place kept for it."""
    from xai_core.viz.model import preprocessing_check_figure

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


def show_live(selection: state.Selection):
    """Compute and draw the page for `selection`; returns the place kept for the preprocessing check, if one is due."""
    model = selection.model
    if selection.source == "demo":
        view = cached_demo_view(selection.demo_key, model.sha256, selection)
    else:
        summary = cached_summary(model.sha256, model)
        evaluation = (cached_evaluation(model.sha256, selection.data_key, selection)
                      if selection.data is not None else None)
        overrides = (st.session_state.get("model_upload") or {}).get("overrides") or {}
        view = cached_upload_view(model.sha256, selection.data_key, json.dumps(overrides, sort_keys=True), selection,
                                  summary, evaluation, overrides)
    return model_page.render(view)


choose_source()
with user_errors():
    snapshot = (model_page.load_snapshot(st.session_state.get("demo_key", state.DEFAULT_DEMO))
                if st.session_state.get("source", "demo") == "demo" else None)
    if snapshot is not None:
        model_page.render(snapshot.view)  # the demo's preprocessing is declared: no check is due
        state.warm_up()
    else:
        selection = state.current_selection()
        verdict = show_live(selection)
        if verdict is not None:
            show_preprocessing_check(selection, verdict)

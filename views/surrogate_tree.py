"""Surrogate tree: a small decision tree that mimics the model, honestly measured; and a local linear surrogate."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from xai_core.datasets import TableSet
from xai_core.surrogate import SurrogateSettings, fidelity_by_depth, fit_surrogate, local_surrogate
from xai_core.viz.tree import fidelity_curve_figure, local_coefficients_figure, tree_figure
from ui import state
from ui.look import card, figure, page_header, user_errors

page_header("Surrogate tree", "Which simple rules reproduce this model's decisions, and how faithfully?")


@st.cache_data(max_entries=32, show_spinner="Growing the surrogate tree…")
def cached_tree(model_sha: str, data_key: str, settings: SurrogateSettings, _model, _data):
    return fit_surrogate(_model, _data, settings)


@st.cache_data(max_entries=16, show_spinner="Measuring fidelity at each depth…")
def cached_curve(model_sha: str, data_key: str, settings: SurrogateSettings, _model, _data):
    return fidelity_by_depth(_model, _data, range(1, 9), settings)


@st.cache_data(max_entries=64, show_spinner="Fitting the local surrogate…")
def cached_local(model_sha: str, data_key: str, row: int, output_index: int, width: float, _model, _row, _reference):
    return local_surrogate(_model, _row, _reference, output_index=output_index, kernel_width=width)


def rows_for(selection: state.Selection) -> tuple[TableSet, str]:
    """All rows available: the demo's training and test rows together, or the upload."""
    data = selection.data
    if selection.background is not None:
        both = TableSet(pd.concat([selection.background.X, data.X], ignore_index=True),
                        None if data.y is None or selection.background.y is None
                        else pd.concat([selection.background.y, data.y], ignore_index=True))
        return both, f"{len(both)} rows (the demo's training and test rows)"
    return data, f"{len(data)} uploaded rows"


def show(selection: state.Selection) -> None:
    model = selection.model
    data, described = rows_for(selection)
    c = st.columns(4)
    depth = c[0].slider("Max depth", 1, 8, 3, key="st_depth")
    leaf = c[1].slider("Min samples per leaf", 1, 50, 5, key="st_leaf")
    augment = c[2].slider("Synthetic points per row", 0, 50, 10, key="st_augment",
                          help="Points sampled around the fit rows and labelled by the model (TREPAN-style). "
                               "They never include held-out rows.")
    noise = c[3].slider("Sampling noise (feature std)", 0.05, 1.0, 0.3, 0.05, key="st_noise")
    settings = SurrogateSettings(max_depth=depth, min_samples_leaf=leaf, augment=augment, noise=noise)
    result = cached_tree(model.sha256, selection.data_key + described, settings, model, data)

    m = st.columns([1, 1, 1, 1.3], gap="medium")
    low, high = result.fidelity_interval
    m[0].metric("Fidelity", f"{result.fidelity:.3f}", help=f"Held-out {result.fidelity_name}.")
    m[0].caption(f"{result.fidelity_name}, on {len(result.holdout_index)} held-out real rows; 95% interval "
                 f"{low:.3f} – {high:.3f}.")
    if result.model_score is not None:
        m[1].metric(f"Model {result.score_name}", f"{result.model_score:.3f}")
        m[2].metric(f"Tree {result.score_name}", f"{result.tree_score:.3f}")
    row = m[3].number_input("Highlight the path of row", 0, len(data) - 1, 0, key="st_row")
    path = result.decision_path(data.X.iloc[int(row)].to_numpy())
    figure(tree_figure(result, path), "Read from the left: at each node take the upper branch if the rule holds, the "
           "lower one if not. Leaves show what the tree predicts (for classes, the share of its samples in that class) "
           f"and how many samples reach them. Hover for details; the red path is row {int(row)}.", key="st_tree",
           download_name="surrogate_tree")
    st.caption(f"Fitted on {len(result.fit_index)} real rows + {result.n_synthetic} synthetic points, all labelled by "
               f"the model. {result.tree.get_n_leaves()} leaves. Source: {described}.")
    for note in result.notes:
        st.caption(":material/info: " + note)
    d = st.columns([3, 1])
    with d[0].expander("The rules as text"):
        st.code(result.rules, language=None)
    d[1].download_button("Rules (.txt)", result.rules, file_name="surrogate_rules.txt", key="st_dl_rules", icon=":material/download:")

    card("How simple can the tree be?", "Held-out fidelity for each depth: pick the shallowest tree that is faithful enough.")
    curve = cached_curve(model.sha256, selection.data_key + described, settings, model, data)
    figure(fidelity_curve_figure(curve, result.fidelity_name), "Error bars: 95% bootstrap intervals over the held-out "
           "rows. 'augmented' adds the synthetic points; 'plain' fits the real rows only.", key="st_curve",
           download_name="fidelity_by_depth")

    card("Local surrogate (LIME)", "Near one row, which features move the model's output, in a straight-line approximation?")
    c = st.columns(3)
    local_row = c[0].number_input("Row", 0, len(selection.data) - 1, 0, key="st_local_row")
    output_index = 0
    if model.info.task == "classification":
        output_index = c[1].selectbox("Output", range(len(model.info.class_names)),
                                      index=1 if len(model.info.class_names) == 2 else 0,
                                      format_func=lambda i: f"P({model.info.class_names[i]})", key="st_local_class")
    width = c[2].slider("Kernel width (std units)", 0.1, 3.0, 0.75, 0.05, key="st_width")
    reference = data.X.to_numpy()
    local = cached_local(model.sha256, selection.data_key, int(local_row), output_index, width, model,
                         selection.data.X.iloc[int(local_row)].to_numpy(), reference)
    shap = (st.session_state.get("shap_values") or {}).get(model.sha256)
    shap_row = None
    if shap is not None and int(local_row) < len(shap.values):
        shap_row = shap.values[int(local_row), :, output_index]
    figure(local_coefficients_figure(local, shap_row), "Bars: change in the output for one standard deviation of the "
           f"feature around this row. Local weighted R² = {local.weighted_r2:.2f} (how linear the model is here)."
           + (" Grey bars: this row's SHAP values from the Feature importance page." if shap_row is not None else
              " Open Feature importance first to compare with SHAP values."), key="st_local")


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind == "text":
        st.info("Surrogate trees are fitted on a table's columns; for text models they are not available here. Use "
                "**Text explanations** for which words made the model decide.")
    elif selection.model.info.input_kind != "tabular":
        st.info("Surrogate trees need interpretable input features. For image models a surrogate on interpretable "
                "features (e.g. concepts) is not available here; use **Image explanations**.")
    elif selection.data is None:
        st.info("Upload a table on **Model & data** first: the tree is fitted to the model's answers on its rows.")
    else:
        show(selection)

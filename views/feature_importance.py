"""Feature importance: which features drive a tabular model, globally and for one row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.attribution.shapley import EXACT_MAX_FEATURES, make_background, model_output_fn, shapley_values
from xai_core.attribution.tabular import deletion_importance, permutation_importance
from xai_core.datasets import TableSet
from xai_core.viz.importance import beeswarm_figure, importance_comparison_figure, shap_bar_figure, waterfall_figure
from ui import state
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Feature importance", "Which features drive this model's predictions, overall and for one row?")


@st.cache_data(max_entries=32, show_spinner=False)
def cached_shapley(model_sha: str, data_key: str, rows_key: str, settings: tuple, _model, _rows, _background_data):
    """SHAP values of the rows, with a progress bar while computing (created and removed in here, so a cache hit shows none)."""
    baseline, k, method, n_permutations = settings
    bar = st.progress(0.0, text="Explaining rows…")

    def progress(done: int, total: int, message: str = "") -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"explaining {done}/{total} rows")

    background = make_background(_background_data, kind=baseline, k=k, seed=0)
    result = shapley_values(model_output_fn(_model), _rows, background=background, method=method,
                            n_permutations=n_permutations, seed=0, progress=progress,
                            output_names=_output_names(_model))
    bar.empty()
    return result


@st.cache_data(max_entries=32, show_spinner="Measuring deletion and permutation importance…")
def cached_importances(model_sha: str, data_key: str, _model, _data: TableSet, _background_data):
    deletion = deletion_importance(_model, _data, background=_background_data)
    permutation = permutation_importance(_model, _data, n_repeats=5, seed=0)
    return deletion, permutation


def _output_names(model) -> list[str]:
    info = model.info
    if info.task == "classification":
        return [f"P({name})" for name in info.class_names]
    return [info.target_name or "prediction"]


def controls(model, data: TableSet, background_available: bool):
    d = len(model.info.feature_names)
    cols = st.columns([2, 1, 2, 1])
    baseline_label = cols[0].selectbox(
        "Baseline (what 'feature absent' means)",
        ["mean row", "k-means background", "random background"], key="fi_baseline",
        help="Absent features take the mean row's values (fast), or are averaged over k background rows "
             "(interventional SHAP: slower, more faithful when features interact).")
    baseline = {"mean row": "mean", "k-means background": "kmeans", "random background": "random"}[baseline_label]
    k = cols[1].number_input("k rows", min_value=2, max_value=100, value=10, step=1, key="fi_k",
                             disabled=baseline == "mean")
    method_label = cols[2].selectbox(
        "Estimator", [f"auto (exact up to {EXACT_MAX_FEATURES} features)", "exact", "sampling"], key="fi_method")
    method = method_label.split(" ")[0]
    n_permutations = cols[3].number_input("permutations", min_value=64, max_value=8192, value=1536, step=128,
                                          key="fi_perms", disabled=method == "exact" or (method == "auto" and d <= EXACT_MAX_FEATURES))
    max_rows = len(data)
    n_rows = st.slider("Rows to explain (the first N of the data)", min_value=1, max_value=min(max_rows, 500),
                       value=min(max_rows, 100), key="fi_rows")
    if method == "exact" and d > 20:
        st.warning(f"Exact values need 2^{d} model evaluations per row; use sampling for {d} features.")
    return (baseline, int(k), method, int(n_permutations)), n_rows


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    background_data = selection.background.X if selection.background is not None else data.X
    settings, n_rows = controls(model, data, selection.background is not None)
    output_names = _output_names(model)
    output_index = 0
    if model.info.task == "classification":
        default = 1 if len(output_names) == 2 else 0
        output_index = st.selectbox("Explain the probability of", range(len(output_names)), index=default,
                                    format_func=lambda i: model.info.class_names[i], key="fi_class")
    rows = data.X.iloc[:n_rows]
    result = cached_shapley(model.sha256, selection.data_key, str(n_rows), settings, model, rows, background_data)
    st.session_state.setdefault("shap_values", {})[model.sha256] = result

    exact = result.is_exact
    how = ("exact Shapley values (all 2^d coalitions)" if exact else
           f"sampled Shapley values ({settings[3]} antithetic permutations; error bars = standard error)")
    baseline_text = {"mean": "the mean row", "kmeans": f"{settings[1]} k-means background rows",
                     "random": f"{settings[1]} random background rows"}[settings[0]]
    source = "the training rows" if selection.background is not None else "the uploaded rows"
    assumes = f"Absent features take the values of {baseline_text} of {source}. Method: {how}."

    card("Global importance", f"Over the first {n_rows} rows, for {output_names[output_index]}.")
    left, right = st.columns(2, gap="large")
    with left:
        figure(shap_bar_figure(result, output_index), "Longer bar = the feature moves this output more on average "
               "(in the output's own units). " + assumes, key="fi_bar", download_name="shap_bar")
    with right:
        figure(beeswarm_figure(result, output_index), "Each dot is one row. Right of the line = the feature pushed "
               "this output up; colour is the feature's value (red high, blue low).", key="fi_swarm",
               download_name="shap_beeswarm")
    gap = result.efficiency_gap
    st.caption(f"Efficiency check: base value + Σ SHAP = f(x) for every row, largest gap {gap:.2e}"
               + (" ✓" if gap < 1e-4 else " ✗ (values do not add up: report this)"))
    table_download(result.to_frame(output_index=None), "shap_values", "⬇ SHAP values (CSV)")

    card("Do other importance measures agree?",
         "Deletion: replace a feature by its baseline in every row; permutation: shuffle it. Both measure the "
         "drop in the model's score" + (" against the labels." if data.y is not None else " (no labels: the change in its outputs)."))
    deletion, permutation = cached_importances(model.sha256, selection.data_key, model, data, background_data)
    figure(importance_comparison_figure(result, deletion, permutation, output_index),
           "Each method scaled so its most important feature is 1; error bars: deletion = standard error over rows, "
           "permutation = std over 5 shuffles. Disagreement often means correlated features.",
           key="fi_compare", download_name="importance_comparison")
    comparison = pd.DataFrame({"feature": result.feature_names,
                               "mean_abs_shap": np.abs(result.values[:, :, output_index]).mean(axis=0),
                               "deletion": deletion.values, "deletion_error": deletion.errors,
                               "permutation": permutation.values, "permutation_std": permutation.errors})
    table_download(comparison.sort_values("mean_abs_shap", ascending=False), "importances", "⬇ importances (CSV)")

    card("One row", "Why did the model predict what it did for this row?")
    row = st.number_input("Row", min_value=0, max_value=n_rows - 1, value=0, step=1, key="fi_row")
    left, right = st.columns([3, 2], gap="large")
    with left:
        figure(waterfall_figure(result, int(row), output_index),
               "Start from the base value (the average output over the baseline), add each feature's SHAP value, "
               "and arrive at the model's output for this row.", key="fi_waterfall", download_name="shap_waterfall")
    with right:
        values = pd.DataFrame({"feature": result.feature_names, "value": result.rows.iloc[int(row)].to_numpy(),
                               "SHAP": result.values[int(row), :, output_index],
                               "± SE": result.standard_errors[int(row), :, output_index]})
        values = values.reindex(values["SHAP"].abs().sort_values(ascending=False).index)
        st.dataframe(values, hide_index=True, width="stretch", height=420)
        prediction = result.outputs[int(row), output_index]
        st.metric(output_names[output_index], f"{prediction:.4g}",
                  delta=f"{prediction - result.base_values[output_index]:+.4g} vs base", delta_color="off")
    what_if(model, data, result, int(row), output_index, settings, background_data)


def what_if(model, data, result, row, output_index, settings, background_data) -> None:
    with st.expander("What if? Edit this row's values and explain it"):
        edited = st.data_editor(result.rows.iloc[[row]], key=f"fi_edit_{row}", hide_index=True, width="stretch")
        if st.button("Explain the edited row", key="fi_edit_go"):
            with user_errors():
                background = make_background(background_data, kind=settings[0], k=settings[1], seed=0)
                single = shapley_values(model_output_fn(model), edited, background=background, method=settings[2],
                                        n_permutations=settings[3], seed=0, output_names=_output_names(model))
                figure(waterfall_figure(single, 0, output_index), "The same explanation for the values you typed.",
                       key="fi_waterfall_edit")


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind != "tabular":
        st.info("This page explains tabular models. For image models, open **Image explanations**; pick a tabular "
                "demo (breast cancer, wine, diabetes) or upload a table model on **Model & data**.")
    elif selection.data is None:
        st.info("Upload data on **Model & data** first: SHAP values are computed for rows of your table.")
    else:
        show(selection)

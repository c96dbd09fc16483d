"""Feature importance: which features drive a tabular model, globally and for one row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.attribution.shapley import (
    DEFAULT_N_PERMUTATIONS,
    DEFAULT_TARGET_RELATIVE_SE,
    EXACT_MAX_FEATURES,
    MIN_PAIRS,
    ShapleySettings,
)
from xai_core.attribution.tabular import METHODS, DeletionSettings, PermutationSettings, explain_table, output_names
from xai_core.datasets import TableSet
from xai_core.viz.importance import beeswarm_figure, importance_comparison_figure, shap_bar_figure, waterfall_figure
from ui import state
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Feature importance", "Which features drive this model's predictions, overall and for one row?")

DELETION = DeletionSettings()
PERMUTATION = PermutationSettings(n_repeats=5, seed=0)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_shapley(model_sha: str, data_key: str, rows_key: str, settings: ShapleySettings, _model, _rows,
                   _background_data):
    """SHAP values of the rows, with a progress bar while computing (created and removed in here, so a cache hit shows none)."""
    bar = st.progress(0.0, text="Explaining rows…")

    def progress(done: int, total: int, message: str = "") -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"explaining {done}/{total} rows")

    result = explain_table(_model, _rows, "shapley", settings, background=_background_data, progress=progress)
    bar.empty()
    return result


@st.cache_data(max_entries=32, show_spinner="Measuring deletion and permutation importance…")
def cached_importances(model_sha: str, data_key: str, deletion: DeletionSettings, permutation: PermutationSettings,
                       _model, _data: TableSet, _background_data):
    return (explain_table(_model, _data, "deletion", deletion, background=_background_data),
            explain_table(_model, _data, "permutation", permutation))


def controls(model, data: TableSet) -> tuple[ShapleySettings, int]:
    d = len(model.info.feature_names)
    cols = st.columns([2, 1, 2, 1, 1])
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
    sampled = method == "sampling" or (method == "auto" and d > EXACT_MAX_FEATURES)
    n_permutations, target = DEFAULT_N_PERMUTATIONS, DEFAULT_TARGET_RELATIVE_SE
    if sampled:
        n_permutations = cols[3].number_input(
            "max permutations", min_value=2 * MIN_PAIRS, max_value=65_536, value=DEFAULT_N_PERMUTATIONS, step=256,
            key="fi_perms", help="The most permutations the sampler spends on one row.")
        target = cols[4].number_input(
            "target relative error", min_value=0.001, max_value=0.5, value=DEFAULT_TARGET_RELATIVE_SE, step=0.005,
            format="%.3f", key="fi_target",
            help=f"The sampler stops a row once its standard errors are this small relative to its SHAP values "
                 f"(‖SE‖ / ‖SHAP‖, checked after each block, never before {2 * MIN_PAIRS} permutations), or at the "
                 "maximum.")
    max_rows = len(data)
    n_rows = st.slider("Rows to explain (the first N of the data)", min_value=1, max_value=min(max_rows, 500),
                       value=min(max_rows, 100), key="fi_rows")
    if method == "exact" and d > 20:
        st.warning(f"Exact values need 2^{d} model evaluations per row; use sampling for {d} features.")
    settings = ShapleySettings(baseline=baseline, n_background=int(k), estimator=method,
                               n_permutations=int(n_permutations), target_relative_se=float(target), seed=0)
    return settings, n_rows


def method_text(result) -> str:
    """What the values are and how they were computed, for the caption under the figures."""
    if result.is_exact:
        return "exact Shapley values (all 2^d coalitions)"
    used = result.settings
    return (f"sampled Shapley values (antithetic permutations until a row's relative standard error is at most "
            f"{used.target_relative_se:.1%}, at most {used.n_permutations} per row; error bars = standard error)")


def sampling_caption(result) -> str | None:
    """Permutations spent per row and the relative standard error reached, when the values are sampled."""
    if result.n_permutations_used is None:
        return None
    used, rel = result.n_permutations_used, result.relative_standard_errors
    return (f"Permutations used per row: min {used.min():,}, median {int(np.median(used)):,}, max {used.max():,}. "
            f"Relative standard error reached (‖SE‖ / ‖SHAP‖ per row): median {np.median(rel):.2%}, "
            f"max {rel.max():.2%}.")


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    background_data = selection.background.X if selection.background is not None else data.X
    settings, n_rows = controls(model, data)
    names = output_names(model)
    output_index = 0
    if model.info.task == "classification":
        default = 1 if len(names) == 2 else 0
        output_index = st.selectbox("Explain the probability of", range(len(names)), index=default,
                                    format_func=lambda i: model.info.class_names[i], key="fi_class")
    rows = data.X.iloc[:n_rows]
    result = cached_shapley(model.sha256, selection.data_key, str(n_rows), settings, model, rows, background_data)
    st.session_state.setdefault("shap_values", {})[model.sha256] = result

    baseline_text = {"mean": "the mean row", "kmeans": f"{settings.n_background} k-means background rows",
                     "random": f"{settings.n_background} random background rows"}[settings.baseline]
    source = "the training rows" if selection.background is not None else "the uploaded rows"
    assumes = f"Absent features take the values of {baseline_text} of {source}. Method: {method_text(result)}."

    card("Global importance", f"Over the first {n_rows} rows, for {names[output_index]}.")
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
    sampling = sampling_caption(result)
    if sampling:
        st.caption(sampling)
    for note in result.notes:
        st.caption(":material/info: " + note)
    table_download(result.to_frame(output_index=None), "shap_values", "SHAP values (CSV)")

    deletion_spec, permutation_spec = METHODS["deletion"], METHODS["permutation"]
    card("Do other importance measures agree?",
         f"{deletion_spec.name}: {deletion_spec.how_to_read} {permutation_spec.name}: {permutation_spec.how_to_read}"
         + (" Scores are against the labels." if data.y is not None else " No labels: scores measure the change in "
            "the outputs."))
    deletion, permutation = cached_importances(model.sha256, selection.data_key, DELETION, PERMUTATION, model, data,
                                               background_data)
    shap_global = result.to_global(output_index)
    importances = [shap_global, deletion, permutation]
    figure(importance_comparison_figure(importances),
           "Each method scaled so its most important feature is 1; error bars: "
           + "; ".join(f"{i.method} = {i.error_kind}" for i in importances)
           + ". Disagreement often means correlated features.", key="fi_compare", download_name="importance_comparison")
    comparison = pd.DataFrame({"feature": shap_global.feature_names})
    for label, importance in (("mean_abs_shap", shap_global), ("deletion", deletion), ("permutation", permutation)):
        frame = importance.to_frame().rename(columns={"importance": label, "error": f"{label}_error"})
        comparison = comparison.merge(frame, on="feature")
    table_download(comparison.sort_values("mean_abs_shap", ascending=False), "importances", "Importances (CSV)")

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
        st.metric(names[output_index], f"{prediction:.4g}",
                  delta=f"{prediction - result.base_values[output_index]:+.4g} vs base", delta_color="off")
        if result.n_permutations_used is not None:
            st.caption(f"This row: {result.n_permutations_used[int(row)]:,} permutations, relative standard error "
                       f"{result.relative_standard_errors[int(row)]:.2%}.")
    what_if(model, result, int(row), output_index, settings, background_data)


def what_if(model, result, row, output_index, settings: ShapleySettings, background_data) -> None:
    with st.expander("What if? Edit this row's values and explain it"):
        edited = st.data_editor(result.rows.iloc[[row]], key=f"fi_edit_{row}", hide_index=True, width="stretch")
        if st.button("Explain the edited row", key="fi_edit_go"):
            with user_errors():
                single = explain_table(model, edited, "shapley", settings, background=background_data)
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

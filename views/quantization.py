"""Quantization: the model with float weights against the same model with quantized weights, side by side."""

from __future__ import annotations

import streamlit as st

from xai_core.datasets import ImageSet, TableSet
from xai_core.quantization import (FP32, ComparisonSettings, ImageDriftReference, VariantSpec, assemble,
                                   bits_curve_for, builders, catalogue, default_batch_sizes, default_specs,
                                   prepare_comparison, speed_verdicts, try_compare_variant)
from xai_core.viz.quantization import (bits_curve_figure, drift_image_figure, drift_summary_figure, drift_tabular_figure,
                                       tradeoff_figure)
from ui import state
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Quantization", "What changes when this model's weights are stored in fewer bits: its answers, its size, "
                            "its speed — and what it looks at?")

BY_LABEL = {spec.label: spec for spec in catalogue()}
LARGE_BATCHES = [32, 64, 128, 256, 512]
VERDICT = {"warning": lambda text: st.warning(text, icon=":material/hourglass_bottom:"), "info": lambda text: st.info(text, icon=":material/info:"),
           "caption": st.caption}


# fp32's side (answers, the graph lifted once, timing context, explanations) is shared by every variant and every
# session: a resource, read-only once built.
@st.cache_resource(max_entries=4, show_spinner=False)
def cached_context(model_sha: str, data_key: str, settings: ComparisonSettings, _model, _data, _background):
    bar = st.progress(0.0, text="fp32: answers, lifting the graph, explanations…")
    try:
        return prepare_comparison(_model, _data, settings, _background)
    finally:
        bar.empty()  # also on an error: a bar must never stay on screen


@st.cache_data(max_entries=64, show_spinner=False)
def cached_variant(model_sha: str, data_key: str, settings: ComparisonSettings, spec: VariantSpec, _context,
                   _position: str = ""):
    """One variant against fp32, cached on its own: adding a variant to the list computes only that one."""
    bar = st.progress(0.0, text=f"{_position}{spec.label}…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total, text=f"{_position}step {done}/{total}: {message}")

    try:
        return try_compare_variant(_context, spec, progress)
    finally:
        bar.empty()


@st.cache_data(max_entries=16, show_spinner="Rounding the weights to 8, 6, 4, 3 and 2 bits…")
def cached_bits_curve(model_sha: str, data_key: str, settings: ComparisonSettings, _context):
    """Computed after the comparison is on screen, so the main answer does not wait for it."""
    return bits_curve_for(_context)


def controls(model) -> tuple[tuple[VariantSpec, ...], tuple[int, ...]]:
    defaults = [s.label for s in default_specs(model) if s.label in BY_LABEL]
    c = st.columns([4, 1.4, 1.2])
    chosen = c[0].multiselect("Variants to compare with fp32", list(BY_LABEL), default=defaults, key="q_variants",
                              help=" ".join(b.description for b in builders() if b.description))
    sparsity = c[1].slider("Magnitude pruning", 0, 90, 0, 10, format="%d%%", key="q_sparsity",
                           help="Share of the smallest weights of every conv/linear layer set to zero before "
                                "quantizing. Adds 'fp32 + pruned' so pruning alone can be compared.") / 100
    large = default_batch_sizes(model)[1]
    batch = c[2].selectbox("Large batch for timing", LARGE_BATCHES, index=LARGE_BATCHES.index(large), key="q_batch",
                           help="Latency is measured at batch 1 and at this batch. Each variant is timed in a run of "
                                "its own, interleaved round by round with fp32.")
    specs = [BY_LABEL[label].pruned(sparsity) for label in chosen]
    if sparsity > 0:
        specs.insert(0, FP32.pruned(sparsity))
    return tuple(specs), (1, int(batch))


def compute(selection: state.Selection, specs: tuple[VariantSpec, ...], settings: ComparisonSettings):
    model, data = selection.model, selection.data
    context = cached_context(model.sha256, selection.data_key, settings, model, data, selection.background)
    outcomes = []
    for i, spec in enumerate((FP32, *specs)):
        outcomes.append(cached_variant(model.sha256, selection.data_key, settings, spec, context,
                                       f"variant {i + 1}/{len(specs) + 1}, "))
    return context, assemble(context, outcomes)


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    specs, batch_sizes = controls(model)
    if not specs:
        st.info("Pick at least one variant to compare with fp32.")
        return
    settings = ComparisonSettings(batch_sizes=batch_sizes, n_drift=12)
    context, comparison = compute(selection, specs, settings)
    for label, why in comparison.errors.items():
        st.warning(f"**{label}** could not be built: {why}", icon=":material/warning:")

    unit = "images" if isinstance(data, ImageSet) else "rows" if isinstance(data, TableSet) else "inputs"
    card("Trade-offs", f"Each variant against fp32 on the same {comparison.n_rows} {unit} "
                       f"({comparison.settings['threads']} CPU threads; computing it took {comparison.seconds:.1f} s, "
                       "each variant cached on its own).")
    figure(tradeoff_figure(comparison), "Left: quality, higher is better. Middle: how many times smaller the stored "
           "weights are (serialized size; wN variants: packed size). Right: fp32 time / variant time, above the "
           "dashed line is faster. Each variant is timed in a run of its own, interleaved round by round with fp32, "
           "and its speedup is fp32's time in that same run divided by its own; variants that run the same kernels "
           "(wN and pruned fp32 run fp32's) share one run.", key="q_tradeoff", download_name="quantization_tradeoffs")
    for verdict in speed_verdicts(comparison):
        VERDICT[verdict.level](verdict.text)
    frame = comparison.to_frame()
    st.dataframe(frame, width="stretch", hide_index=True, column_config={
        "size (bytes)": st.column_config.NumberColumn(format="%d"),
        **{c: st.column_config.NumberColumn(format="%.4f") for c in frame.columns
           if frame[c].dtype.kind == "f" and "ms" not in c and "speedup" not in c and "ratio" not in c},
        **{c: st.column_config.NumberColumn(format="%.2f") for c in frame.columns
           if "ms" in c or "speedup" in c or "ratio" in c},
    })
    table_download(frame, "quantization_comparison", "Comparison (CSV)")
    with st.expander("How each variant was built"):
        for r in comparison.results[1:]:
            st.markdown(f"**{r.label}** — " + " ".join(r.notes))

    left, right = st.columns([3, 2], gap="large")
    with left:
        card("Bits curve", "Weight-only quantization from 8 down to 2 bits: where does the model break?")
        curve = cached_bits_curve(model.sha256, selection.data_key, settings, context)
        figure(bits_curve_figure(curve, comparison.score_name, comparison.task),
               "Solid: score against the labels; dotted: agreement with fp32. Per channel keeps one scale per output "
               "channel, per tensor one for the whole layer.", key="q_bits", download_name="bits_curve")
        table_download(curve, "bits_curve", "Bits curve (CSV)")
    with right:
        card("Explanation drift", "Does the quantized model look at the same evidence as fp32?")
        reference = comparison.drift_reference
        if reference is None:
            st.caption("Explanation drift is measured for image and tabular models.")
        elif reference.note:
            st.info(reference.note, icon=":material/info:")
        if any(r.drift for r in comparison.results):
            figure(drift_summary_figure(comparison), "Rank correlation: Spearman's ρ between fp32's and the variant's "
                   "attributions, averaged over the explained inputs. Overlap: the share of fp32's top evidence the "
                   "variant also ranks on top.", key="q_drift_summary", download_name="explanation_drift")
    if comparison.drift_variants:
        drift_detail(comparison, data)


def drift_detail(comparison, data) -> None:
    ref = comparison.drift_reference
    by_label = {r.label: r for r in comparison.results}
    labels = list(comparison.drift_variants)
    # Show the variants whose explanations moved most first: they are the ones worth looking at.
    moved = sorted(labels, key=lambda label: min(by_label[label].drift.values(), default=1.0))
    c = st.columns([3, 2])
    shown = c[0].multiselect("Variants to show beside fp32", labels, default=moved[:3], key="q_drift_variants")
    image = isinstance(ref, ImageDriftReference)
    if image:
        index = c[1].selectbox("Image", range(len(ref.images)), format_func=lambda i: ref.names[i].rsplit("/", 1)[-1],
                               key="q_drift_image")
    else:
        index = c[1].selectbox("Row", range(len(ref.values)), key="q_drift_row")
    for label in shown:
        r = by_label[label]
        st.caption(f"**{label}**: " + ", ".join(f"{k} {v:.3f}" for k, v in r.drift.items()) + f" — {r.drift_method}.")
    if not shown:
        return
    if image:
        where = f" on layer {ref.layer}" if ref.layer else ""
        figure(drift_image_figure(comparison, index, shown),
               f"{ref.method_name}{where} for the class fp32 predicts, the same class for every variant. Real int8 "
               "variants are explained through their fake-quant twin (gradients need float weights; it holds exactly "
               "the int8 weights).", key="q_drift_maps")
    else:
        figure(drift_tabular_figure(comparison, index, shown),
               f"{ref.method.capitalize()} Shapley values (baseline: the mean row) of the class fp32 predicts; "
               "features ranked by fp32's magnitude. Real int8 variants are explained directly (Shapley values only "
               "run the model).", key="q_drift_bars")


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind == "text":
        st.info("This page is for image and tabular models: quantizing text models is not supported yet. Text models "
                "are explained on **Text explanations**.")
    elif selection.data is None:
        st.info("Load data on the Model & data page: the comparison needs inputs to run every variant on.")
    else:
        show(selection)

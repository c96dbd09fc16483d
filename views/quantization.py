"""Quantization: the model with float weights against the same model with quantized weights, side by side."""

from __future__ import annotations

import streamlit as st

from xai_core.datasets import ImageSet, TableSet
from xai_core.quantization import (ComparisonSettings, ImageDriftReference, VariantSpec, assemble,
                                   catalogue, speed_verdicts)
from xai_core.viz.quantization import (bits_curve_figure, drift_image_figure, drift_summary_figure, drift_tabular_figure,
                                       tradeoff_figure)
from xai_core.quantization.audit import AuditSettings, audit_variants
from xai_core.quantization.scorecard import faithfulness_scorecard
from xai_core.viz.audit import (audit_bits_figure, flip_pairs_figure, flip_table_figure, group_drift_figure,
                                group_maps_figure)
from ui import state
from ui.quantization import VERDICT, cached_bits_curve, cached_context, compared, threads_phrase, variant_controls
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Quantization", "What changes when this model's weights are stored in fewer bits: its answers, its size, "
                            "its speed — and what it looks at?")

BY_LABEL = {spec.label: spec for spec in catalogue()}
LARGE_BATCHES = [32, 64, 128, 256, 512]


def controls(model) -> tuple[tuple[VariantSpec, ...], tuple[int, ...]]:
    return variant_controls(
        model, BY_LABEL, LARGE_BATCHES, "q", variants_note="",
        pruning_help="Share of the smallest weights of every conv/linear layer set to zero before quantizing. Adds "
                     "'fp32 + pruned' so pruning alone can be compared.",
        batch_help="Latency is measured at batch 1 and at this batch: the variants in one run, interleaved round by "
                   "round with fp32, while nothing else of the comparison runs.")


def compute(selection: state.Selection, specs: tuple[VariantSpec, ...], settings: ComparisonSettings):
    model, data = selection.model, selection.data
    context = cached_context(model.sha256, selection.data_key, settings, model, data, selection.background)
    return context, assemble(context, compared(context, specs))


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
    threads = threads_phrase(comparison)
    card("Trade-offs", f"Each variant against fp32 on the same {comparison.n_rows} {unit} "
                       f"({threads}; computing it took {comparison.seconds:.1f} s, "
                       "each variant cached on its own).")
    figure(tradeoff_figure(comparison), "Left: quality, higher is better. Middle: how many times smaller the stored "
           "weights are (serialized size; wN variants: packed size). Right: fp32 time / variant time, above the "
           "dashed line is faster. The variants are timed in one run, interleaved round by round with fp32 (a variant "
           "added later: in a run of its own), and each speedup is fp32's time in that same run divided by the "
           "variant's; variants that run the same kernels (wN and pruned fp32 run fp32's) share one timing.",
           key="q_tradeoff", download_name="quantization_tradeoffs")
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
    audit_section(selection, context, settings, tuple(s for s in specs if s.label not in comparison.errors))


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


# ---------------------------------------------------------------------------------------- the compression audit


@st.cache_data(max_entries=16, show_spinner=False)
def cached_audit(model_sha: str, data_key: str, settings: ComparisonSettings, specs: tuple[VariantSpec, ...],
                 audit_settings: AuditSettings, _context, _background):
    """The audit of the compared variants, keyed by the model, the data and every setting."""
    bar = st.progress(0.0, text="Compression audit…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total, text=f"audit step {done}/{total}: {message}")

    try:
        return audit_variants(_context, list(specs), audit_settings, _background, progress=progress)
    finally:
        bar.empty()


@st.cache_data(max_entries=16, show_spinner=False)
def cached_scorecard(model_sha: str, data_key: str, settings: ComparisonSettings, specs: tuple[VariantSpec, ...],
                     n_samples: int, heavy: bool, _context, _background):
    bar = st.progress(0.0, text="Faithfulness scorecard…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / max(total, 1), text=f"scoring {done}/{total}: {message}")

    try:
        return faithfulness_scorecard(_context, list(specs), n_samples=n_samples, heavy=heavy, background=_background,
                                      progress=progress)
    finally:
        bar.empty()


def audit_section(selection: state.Selection, context, settings: ComparisonSettings,
                  specs: tuple[VariantSpec, ...]) -> None:
    card("Compression audit", "Which samples does quantization change, and do explanations drift before accuracy "
                              "does? (Hooker et al. 2020: a compressed model's errors concentrate on a few samples.)")
    if not st.toggle("Run the compression audit", key="q_audit",
                     help="Flip sets per compared variant, the bits curve with explanation agreement, per-class drift "
                          "and a faithfulness scorecard. Takes seconds to minutes; cached once computed."):
        return
    model = selection.model
    image = model.info.input_kind == "image"
    c = st.columns([2, 1.4, 1.4])
    method = c[0].radio("Explain with", ["gradient", "perturbation"], horizontal=True, key="q_audit_method",
                        format_func=lambda m: {"gradient": ("Grad-CAM" if image else "integrated gradients")
                                               + " (real int8: its fake-quant twin)",
                                               "perturbation": ("occlusion" if image else "leave-one-feature-out")
                                               + " (real int8: the real model)"}[m])
    n_explain = c[1].slider("Samples explained", 8, 64, 16, 8, key="q_audit_n",
                            help="Explanations are compared on the first samples of the comparison; predictions on "
                                 "all of them.")
    per_channel = c[2].radio("Bits curve rounding", ["per channel", "per tensor"], key="q_audit_granularity",
                             horizontal=True) == "per channel"
    audit_settings = AuditSettings(method=method, n_explain=n_explain, per_channel=per_channel)
    audit = cached_audit(model.sha256, selection.data_key, settings, specs, audit_settings, context,
                         selection.background)
    for label, why in audit.errors.items():
        st.warning(f"**{label}** could not be audited: {why}", icon=":material/warning:")
    if audit.explainer.note:
        st.info(audit.explainer.note, icon=":material/info:")

    if audit.bits is not None:
        st.markdown(audit.bits.verdict())
        warning = audit.bits.warning()
        if warning:
            st.warning(warning, icon=":material/warning:")
        figure(audit_bits_figure(audit.bits), "Solid: the score against the labels; dotted: agreement of the "
               f"{audit.explainer.name} explanations with fp32's on {len(audit.explained_ids)} samples; bands: 95% "
               "bootstrap intervals over samples. Accuracy holds while the upper bound of its paired drop from fp32 "
               f"stays within {audit_settings.accuracy_tolerance:.0%}; explanations hold while the lower bounds of the "
               f"overlap and rank correlation stay at or above {audit_settings.overlap_floor:g} (dashed line).",
               key="q_audit_bits", download_name="audit_bits_curve")
        table_download(audit.bits.frame, "audit_bits_curve", "Bits curve with intervals (CSV)")

    if not audit.flip_sets:
        st.info("No variant could be audited.")
        return
    st.markdown("**Flip sets**: per variant, the samples whose prediction flips, then those whose explanation moved "
                f"most (top-k overlap with fp32's below {audit_settings.moved_overlap:g}).")
    st.dataframe(audit.summary(), width="stretch", hide_index=True)
    table_download(audit.to_frame(), "compression_audit_flip_sets", "Flip sets: sample ids and scores (CSV)")
    label = st.selectbox("Variant", list(audit.flip_sets), key="q_audit_variant")
    flips = audit.flip_sets[label]
    st.caption(f"{flips.n_flipped} of {flips.n_samples} samples flip ({flips.share:.1%}); {flips.n_moved} of "
               f"{flips.n_explained} explained samples moved. Explained with {flips.method}. Per class by "
               f"{flips.class_column}.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.dataframe(flips.frame.head(200), width="stretch", hide_index=True)
    with right:
        st.dataframe(flips.per_class, width="stretch", hide_index=True)
    shown = [s for s in flips.frame["sample"] if s in set(audit.explained_ids)][:4]
    if shown and image:
        figure(flip_pairs_figure(audit, label, selection_images(context), shown),
               f"The top-ranked explained samples of the flip set: fp32's {audit.explainer.name} (left) and "
               f"{label}'s (right), for fp32's class.", key="q_audit_pairs")
    elif shown:
        sample = st.selectbox("Row", shown, key="q_audit_row")
        figure(flip_table_figure(audit, label, sample, list(context.data.feature_names)),
               f"{audit.explainer.name} of fp32's class by fp32 and by {label}, features ranked by fp32's magnitude.",
               key="q_audit_row_bars")

    card("Group drift", "Which classes' explanations moved most?")
    figure(group_drift_figure(audit, label), "Each class's mean explanation (images: maps scaled to peak 1, tables: "
           "mean |value|) over its explained samples, fp32 against the variant.", key="q_audit_groups")
    top_class = audit.group_drift[label].frame["class"].iloc[0]
    if image:
        figure(group_maps_figure(audit, label, top_class, selection_images(context)[0]),
               f"Mean maps of the class that drifted most ({top_class}).", key="q_audit_group_maps")
    table_download(audit.group_drift[label].frame, f"group_drift_{label}", "Group drift (CSV)")

    card("Faithfulness scorecard", "Which explanation method should I believe, and does that change under "
                                   "quantization?")
    heavy = st.toggle("Add infidelity and ROAD (slower)", key="q_audit_heavy")
    card_result = cached_scorecard(model.sha256, selection.data_key, settings, specs, 4, heavy, context,
                                   selection.background)
    st.markdown(card_result.verdict())
    st.dataframe(card_result.frame, width="stretch", hide_index=True)
    st.caption("On the first 4 samples. Deletion AUC: lower is better; insertion AUC, sparseness (Gini): higher is "
               "better; completeness error (integrated gradients only), infidelity, ROAD (mean probability of the "
               "class after removing the top 10/30/50% pixels): lower is better. Gradient methods on a real int8 "
               "variant explain its fake-quant twin; the metrics run the real int8 model. Seconds per sample: "
               + ", ".join(f"{k} {v:.3f}" for k, v in card_result.metric_seconds.items()) + ".")
    table_download(card_result.frame, "faithfulness_scorecard", "Scorecard (CSV)")


def selection_images(context):
    return context.data.images


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind == "text":
        from views.quantization_text import show as show_text
        show_text(selection)
    elif selection.data is None:
        st.info("Load data on the Model & data page: the comparison needs inputs to run every variant on.")
    else:
        show(selection)

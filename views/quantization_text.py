"""Quantization of a text model: fp32 against its quantized variants on token-id inputs, and how far the word
attributions drift. Called by the Quantization page for text models (`show(selection)`)."""

from __future__ import annotations

import streamlit as st

from xai_core.quantization import (ComparisonSettings, TextDriftReference, VariantSpec, assemble, catalogue, refused_layers, speed_verdicts, variant_word_attribution, word_drift_frame)
from xai_core.viz.quantization import bits_curve_figure, drift_summary_figure, tradeoff_figure
from xai_core.viz.text import word_highlight_html
from ui import state
from ui.quantization import VERDICT, cached_bits_curve, cached_context, compared, threads_phrase, variant_controls
from ui.look import card, figure, table_download

# Static int8 is refused for text models (xai_core says why); it is not offered here.
BY_LABEL = {spec.label: spec for spec in catalogue() if spec.kind != "int8-static"}
LARGE_BATCHES = [8, 16, 32, 64, 128]


def controls(model) -> tuple[tuple[VariantSpec, ...], tuple[int, ...]]:
    return variant_controls(
        model, BY_LABEL, LARGE_BATCHES, "qt",
        variants_note=" Static int8 is not offered for text models (token ids have no range to calibrate).",
        pruning_help="Share of the smallest weights of every weight matrix (embeddings, LSTM gates, linear layers) set "
                     "to zero before quantizing. Adds 'fp32 + pruned'.",
        batch_help="Latency is measured at batch 1 and at this many documents: the variants in one run, "
                   "interleaved round by round with fp32, while nothing else of the comparison runs.")


def show(selection: state.Selection) -> None:
    """The text-model comparison: trade-offs, the table, what could not be quantized, the bits curve, word drift."""
    model, data = selection.model, selection.data
    if data is None or len(data) == 0:
        st.info("Load documents on the Model & data page: the comparison needs texts to run every variant on.")
        return
    specs, batch_sizes = controls(model)
    if not specs:
        st.info("Pick at least one variant to compare with fp32.")
        return
    settings = ComparisonSettings(batch_sizes=batch_sizes, n_drift=12)
    context = cached_context(model.sha256, selection.data_key, settings, model, data,
                             _what="Integrated Gradients on the drift documents")
    comparison = assemble(context, compared(context, specs))
    for label, why in comparison.errors.items():
        st.warning(f"**{label}** could not be built: {why}", icon=":material/warning:")
    refused = refused_layers(model)
    if refused and any(r.spec.real_int8 for r in comparison.results):
        st.info(refused, icon=":material/info:")

    threads = threads_phrase(comparison)
    card("Trade-offs", f"Each variant against fp32 on the same {comparison.n_rows} documents (token ids, "
                       f"{threads}; computing it took {comparison.seconds:.1f} s, "
                       "each variant cached on its own).")
    figure(tradeoff_figure(comparison), "Left: quality, higher is better. Middle: how many times smaller the stored "
           "weights are (serialized size; wN variants: packed size). Right: fp32 time / variant time, above the "
           "dashed line is faster, both timed in the same run.", key="qt_tradeoff",
           download_name="text_quantization_tradeoffs")
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
    table_download(frame, "text_quantization_comparison", "Comparison (CSV)")
    with st.expander("How each variant was built"):
        for r in comparison.results[1:]:
            st.markdown(f"**{r.label}** — " + " ".join(r.notes))

    left, right = st.columns([3, 2], gap="large")
    with left:
        card("Bits curve", "Weights rounded from 8 down to 2 bits: where does the model break?")
        curve = cached_bits_curve(model.sha256, selection.data_key, settings, context)
        figure(bits_curve_figure(curve, comparison.score_name, comparison.task),
               "Solid: score against the labels; dotted: agreement with fp32. Every weight matrix (embeddings, LSTM "
               "gates, attention and linear layers) is rounded; per channel keeps one scale per row.",
               key="qt_bits", download_name="text_bits_curve")
        table_download(curve, "text_bits_curve", "Bits curve (CSV)")
    with right:
        card("Word-attribution drift", "Do the quantized variants credit the same words as fp32?")
        reference = comparison.drift_reference
        if reference is not None and reference.note:
            st.info(reference.note, icon=":material/info:")
        if any(r.drift for r in comparison.results):
            figure(drift_summary_figure(comparison), "Rank correlation: Spearman's ρ between fp32's and the variant's "
                   f"word values, averaged over {len(reference.documents)} documents. Overlap: the share of the "
                   f"{reference.top_k} words pushing fp32's class most that the variant also ranks top.",
                   key="qt_drift_summary", download_name="word_attribution_drift")
    if isinstance(comparison.drift_reference, TextDriftReference) and comparison.drift_variants:
        word_drift(comparison)


def word_drift(comparison) -> None:
    ref: TextDriftReference = comparison.drift_reference
    by_label = {r.label: r for r in comparison.results}
    labels = list(comparison.drift_variants)
    moved = sorted(labels, key=lambda label: min(by_label[label].drift.values(), default=1.0))
    c = st.columns([3, 2])
    shown = c[0].multiselect("Variants to show beside fp32", labels, default=moved[:2], key="qt_drift_variants")
    index = c[1].selectbox("Document", range(len(ref.documents)),
                           format_func=lambda i: f"{ref.names[i]}: {ref.documents[i].text[:60]}", key="qt_drift_doc")
    explained = ref.attribution.class_names[int(ref.targets[index])]
    rows = [("fp32", ref.attribution)] + [(label, variant_word_attribution(ref, comparison.drift_variants[label]))
                                          for label in shown]
    for label, attribution in rows:
        method = ref.method_name if label == "fp32" else by_label[label].drift_method
        st.markdown(f"**{label}** <span style='color:#52606d'>({method})</span>", unsafe_allow_html=True)
        st.markdown(word_highlight_html(attribution, index), unsafe_allow_html=True)
    st.caption(f"Each word coloured by its {ref.method_name} value for P({explained}), the class fp32 predicts (the "
               "same class for every variant): red raises it, blue lowers it, each row scaled to its own largest "
               "value. Real int8 variants are shown through their fake-quant twin (gradients need float weights; it "
               "holds exactly the int8 weights); their leave-one-word-out drift on the real int8 model is in the table.")
    frame = word_drift_frame(ref, {label: comparison.drift_variants[label] for label in shown}, index)
    st.dataframe(frame, width="stretch", hide_index=True)
    table_download(frame, "word_attribution_drift", "Word values (CSV)")

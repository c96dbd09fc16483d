"""Quantization: the model with float weights against the same model with quantized weights, side by side."""

from __future__ import annotations

import streamlit as st

from xai_core.datasets import ImageSet
from xai_core.quantization import (BITS, VariantSpec, bits_curve, compare_variants, default_batch_sizes,
                                   default_specs)
from xai_core.viz.quantization import (bits_curve_figure, drift_image_figure, drift_summary_figure, drift_tabular_figure,
                                       tradeoff_figure)
from ui import state
from ui.look import card, figure, page_header, table_download, user_errors

page_header("Quantization", "What changes when this model's weights are stored in fewer bits: its answers, its size, "
                            "its speed — and what it looks at?")

CATALOGUE = [VariantSpec("fp16"), VariantSpec("bf16")]
CATALOGUE += [VariantSpec("weights", b) for b in BITS] + [VariantSpec("weights", b, per_channel=False) for b in BITS]
CATALOGUE += [VariantSpec("int8-dynamic"), VariantSpec("int8-static")]
BY_LABEL = {spec.label: spec for spec in CATALOGUE}


@st.cache_data(max_entries=16, show_spinner=False)
def cached_comparison(model_sha: str, data_key: str, specs: tuple[VariantSpec, ...], batch_sizes: tuple[int, ...],
                      _model, _data, _background):
    """Every variant against fp32, with a counting progress bar while computing (none on a cache hit)."""
    bar = st.progress(0.0, text="building the variants…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total, text=f"step {done}/{total}: {message}")

    result = compare_variants(_model, _data, list(specs), background=_background, batch_sizes=batch_sizes,
                              bits_curve=False, progress=progress)
    bar.empty()
    return result


@st.cache_data(max_entries=16, show_spinner="Rounding the weights to 8, 6, 4, 3 and 2 bits…")
def cached_bits_curve(model_sha: str, data_key: str, _model, _data):
    """Computed after the comparison is on screen, so the main answer does not wait for it."""
    return bits_curve(_model, _data)


def controls(model) -> tuple[tuple[VariantSpec, ...], tuple[int, ...]]:
    defaults = [s.label for s in default_specs(model) if s.label in BY_LABEL]
    c = st.columns([4, 1.4, 1.2])
    chosen = c[0].multiselect("Variants to compare with fp32", list(BY_LABEL), default=defaults, key="q_variants",
                              help="fp16/bf16: the whole model in half precision. wN: weights rounded to N bits "
                                   "(simulated, so gradients and Grad-CAM still work). int8: real int8 kernels "
                                   "(torch.ao.quantization, fbgemm/x86).")
    sparsity = c[1].slider("Magnitude pruning", 0, 90, 0, 10, format="%d%%", key="q_sparsity",
                           help="Share of the smallest weights of every conv/linear layer set to zero before "
                                "quantizing. Adds 'fp32 + pruned' so pruning alone can be compared.") / 100
    large = default_batch_sizes(model)[1]
    batch = c[2].selectbox("Large batch for timing", [32, 64, 128, 256, 512], index=[32, 64, 128, 256, 512].index(large),
                           key="q_batch", help="Latency is measured at batch 1 and at this batch, every variant "
                                               "interleaved with fp32 in the same run.")
    specs = [VariantSpec(BY_LABEL[label].kind, BY_LABEL[label].bits, BY_LABEL[label].per_channel, sparsity)
             for label in chosen]
    if sparsity > 0:
        specs.insert(0, VariantSpec("fp32", sparsity=sparsity))
    return tuple(specs), (1, int(batch))


def _speeds(result) -> str:
    return ", ".join(f"{s:.2f}× at batch {b}" for b, s in result.speedup.items())


def speed_verdict(comparison) -> None:
    """Say plainly where real int8 or half precision does not make this model faster, and why."""
    base = comparison.results[0]
    for r in comparison.results:
        if not r.spec.real_int8:
            continue
        times = _speeds(r)
        if all(s < 0.9 for s in r.speedup.values()):
            st.warning(f"**{r.label} is slower than fp32 on this model** ({times}). At this size the fixed costs — "
                       "quantizing activations, packing, calling int8 kernels — outweigh the arithmetic saved. "
                       "int8 pays off on wide layers and large batches; here, keep fp32 for speed.", icon="🐢")
        elif all(s < 1.1 for s in r.speedup.values()):
            reason = ("dynamic int8 converts only Linear layers, and this model's time is spent in its convolutions."
                      if r.spec.kind == "int8-dynamic" and comparison.settings.get("kind") == "image" else
                      "the layers int8 converts are too small for their arithmetic to dominate.")
            st.info(f"**{r.label} is no faster than fp32 here** ({times}; within ±10% is measurement noise): {reason}",
                    icon="ℹ️")
        elif any(s < 1.1 for s in r.speedup.values()):
            st.info(f"**{r.label} is faster only at larger batches** ({times}): for a single input the fixed costs of "
                    "quantizing activations and calling int8 kernels cancel the arithmetic saved.", icon="ℹ️")
    half = [r for r in comparison.results if r.spec.kind in ("fp16", "bf16") and all(s < 0.9 for s in r.speedup.values())]
    if half:
        times = "; ".join(f"{r.label} {_speeds(r)}" for r in half)
        st.warning(f"**Half precision is slower than fp32 on this CPU** ({times}). Without native half-precision "
                   "kernels (AVX-512 FP16/BF16, AMX) every half operation is converted to float32 and back. fp16/bf16 "
                   "halve the stored size here, not the time.", icon="🐢")
    if any(r.spec.kind == "weights" for r in comparison.results):
        st.caption("wN variants round the weights and compute in float: their accuracy and drift are those of an "
                   "N-bit model, their size is the packed size, but they run fp32's kernels, so their time is fp32's "
                   "(not timed separately). "
                   f"fp32 takes {base.latency_ms[1]:.2f} ms for one input here.")


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    specs, batch_sizes = controls(model)
    if not specs:
        st.info("Pick at least one variant to compare with fp32.")
        return
    comparison = cached_comparison(model.sha256, selection.data_key, specs, batch_sizes, model, data,
                                   selection.background)
    for label, why in comparison.errors.items():
        st.warning(f"**{label}** could not be built: {why}", icon="⚠️")

    card("Trade-offs", f"Each variant against fp32 on the same {comparison.n_rows} "
                       f"{'images' if isinstance(data, ImageSet) else 'rows'}, timed in the same run "
                       f"({comparison.settings['threads']} CPU threads; the comparison took {comparison.seconds:.1f} s).")
    figure(tradeoff_figure(comparison), "Left: quality, higher is better. Middle: how many times smaller the stored "
           "weights are (serialized size; wN variants: packed size). Right: fp32 time / variant time, above the "
           "dashed line is faster.", key="q_tradeoff", download_name="quantization_tradeoffs")
    speed_verdict(comparison)
    frame = comparison.to_frame()
    st.dataframe(frame, width="stretch", hide_index=True, column_config={
        "size (bytes)": st.column_config.NumberColumn(format="%d"),
        **{c: st.column_config.NumberColumn(format="%.4f") for c in frame.columns
           if frame[c].dtype.kind == "f" and "ms" not in c and "speedup" not in c and "ratio" not in c},
        **{c: st.column_config.NumberColumn(format="%.2f") for c in frame.columns
           if "ms" in c or "speedup" in c or "ratio" in c},
    })
    table_download(frame, "quantization_comparison", "⬇ comparison (CSV)")
    with st.expander("How each variant was built"):
        for r in comparison.results[1:]:
            st.markdown(f"**{r.label}** — " + " ".join(r.notes))

    left, right = st.columns([3, 2], gap="large")
    with left:
        card("Bits curve", "Weight-only quantization from 8 down to 2 bits: where does the model break?")
        curve = cached_bits_curve(model.sha256, selection.data_key, model, data)
        figure(bits_curve_figure(curve, comparison.score_name, comparison.task),
               "Solid: score against the labels; dotted: agreement with fp32. Per channel keeps one scale per output "
               "channel, per tensor one for the whole layer.", key="q_bits", download_name="bits_curve")
        table_download(curve, "bits_curve", "⬇ bits curve (CSV)")
    with right:
        card("Explanation drift", "Does the quantized model look at the same evidence as fp32?")
        if comparison.drift_variants:
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
    if ref["kind"] == "image":
        index = c[1].selectbox("Image", range(len(ref["images"])),
                               format_func=lambda i: data.names[i].rsplit("/", 1)[-1], key="q_drift_image")
    else:
        index = c[1].selectbox("Row", range(len(ref["values"])), key="q_drift_row")
    for label in shown:
        r = by_label[label]
        st.caption(f"**{label}**: " + ", ".join(f"{k} {v:.3f}" for k, v in r.drift.items()) + f" — {r.drift_method}.")
    if not shown:
        return
    if ref["kind"] == "image":
        figure(drift_image_figure(comparison, index, shown),
               f"Grad-CAM on layer {ref['layer']} for the class fp32 predicts, the same class for every variant. Real "
               "int8 variants are explained through their fake-quant twin (gradients need float weights).",
               key="q_drift_maps")
    else:
        figure(drift_tabular_figure(comparison, index, shown),
               f"{ref['method'].capitalize()} Shapley values (baseline: the mean row) of the class fp32 predicts; "
               "features ranked by fp32's magnitude. Real int8 variants are explained directly (Shapley values only "
               "run the model).", key="q_drift_bars")


with user_errors():
    selection = state.current_selection()
    if selection.data is None:
        st.info("Load data on the Model & data page: the comparison needs inputs to run every variant on.")
    else:
        show(selection)

"""What the Quantization page shares between image/tabular models (views/quantization.py) and text models
(views/quantization_text.py): the cached comparison steps, the variant controls and how speed verdicts are shown."""

from __future__ import annotations

import streamlit as st

import xai_core.quantization as quantization  # looked up per call, as the pages' own scripts would
from xai_core.quantization import FP32, ComparisonSettings, VariantSpec, builders, default_batch_sizes, default_specs

VERDICT = {"warning": lambda text: st.warning(text, icon=":material/hourglass_bottom:"),
           "info": lambda text: st.info(text, icon=":material/info:"), "caption": st.caption}


# fp32's side (answers, the graph lifted once, timing context, explanations) is shared by every variant and every
# session: a resource, read-only once built.
@st.cache_resource(max_entries=4, show_spinner=False)
def cached_context(model_sha: str, data_key: str, settings: ComparisonSettings, _model, _data, _background=None,
                   _what: str = "explanations"):
    bar = st.progress(0.0, text=f"fp32: answers, lifting the graph, {_what}…")
    try:
        return quantization.prepare_comparison(_model, _data, settings, _background)
    finally:
        bar.empty()  # also on an error: a bar must never stay on screen


def compared(context, specs: tuple[VariantSpec, ...]) -> list:
    """fp32 and every variant against it. Each is computed once per comparison context (shared by every session), so
    adding a variant to the list computes only that one; new ones are built, answered and explained side by side on the
    cores torch leaves idle, and timed one at a time."""
    missing = context.missing(list(specs))
    if not missing:
        return quantization.compare_many(context, list(specs))
    bar = st.progress(0.0, text=f"Comparing {len(missing)} variant{'s' if len(missing) > 1 else ''} with fp32…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(done / total, 1.0), text=f"step {done}/{total}: {message}")

    try:
        return quantization.compare_many(context, list(specs), progress)
    finally:
        bar.empty()  # also on an error: a bar must never stay on screen


def threads_phrase(comparison) -> str:
    """'1 CPU thread', '2 variants at a time, 1 CPU thread each'… for the trade-offs card."""
    threads = comparison.settings["threads"]
    phrase = f"{threads} CPU thread" + ("" if threads == 1 else "s")
    workers = comparison.settings.get("workers", 1)
    return phrase if workers <= 1 else f"{workers} variants at a time, {phrase} each"


@st.cache_data(max_entries=16, show_spinner="Rounding the weights to 8, 6, 4, 3 and 2 bits…")
def cached_bits_curve(model_sha: str, data_key: str, settings: ComparisonSettings, _context):
    """Computed after the comparison is on screen, so the main answer does not wait for it."""
    return quantization.bits_curve_for(_context)


def variant_controls(model, by_label: dict[str, VariantSpec], large_batches: list[int], key: str, *, variants_note: str,
                     pruning_help: str, batch_help: str) -> tuple[tuple[VariantSpec, ...], tuple[int, ...]]:
    """Variants (from `by_label`), magnitude pruning and the large timing batch, as specs and batch sizes (1, large)."""
    defaults = [s.label for s in default_specs(model) if s.label in by_label]
    c = st.columns([4, 1.4, 1.2])
    chosen = c[0].multiselect("Variants to compare with fp32", list(by_label), default=defaults, key=f"{key}_variants",
                              help=" ".join(b.description for b in builders() if b.description) + variants_note)
    sparsity = c[1].slider("Magnitude pruning", 0, 90, 0, 10, format="%d%%", key=f"{key}_sparsity",
                           help=pruning_help) / 100
    large = default_batch_sizes(model)[1]
    batch = c[2].selectbox("Large batch for timing", large_batches, index=large_batches.index(large),
                           key=f"{key}_batch", help=batch_help)
    specs = [by_label[label].pruned(sparsity) for label in chosen]
    if sparsity > 0:
        specs.insert(0, FP32.pruned(sparsity))
    return tuple(specs), (1, int(batch))

"""Float vs quantized weights of one model: build the variants, then compare them with the float model.

Variants are always built on copies: the cached float model is never changed. Each kind is one builder class
(`variants.py`, registered by kind): how it is built, which timing it shares, what it says about itself.

- fp16 / bf16 (`half.py`): the whole model cast to half precision; timed as the real half model, answered and
  explained by its float32 emulation (the real thing is tens of times slower on CPUs without half kernels).
- Weight fake quantization at 2–16 bits (`weights.py`), symmetric, per output channel or per tensor: each weight is
  rounded to the nearest of 2^(b-1)-1 steps either side of zero and stored back as float, so the model keeps autograd
  and Grad-CAM still works. Its size is what the weights would take packed at b bits.
- Real int8 (`int8.py`, `torch.ao.quantization`, fbgemm/x86 kernels): dynamic (Linear and LSTM layers) and static
  (conv and linear layers calibrated on a sample of the user's data; not for text models). The model is re-exported with `torch.export` with a
  symbolic batch and its ATen graph lifted back to nn layers (`lifting.py`) — once per comparison — then quantized.
  Real int8 modules have no autograd: gradient methods use a fake-quant twin holding exactly the int8 model's
  dequantized weights; perturbation methods (occlusion, Shapley values) run on the real int8 model.
- Text models (token ids in): the same variants but static int8; layers torch.ao cannot quantize as layers
  (nn.TransformerEncoderLayer, nn.MultiheadAttention) are named in the notes, and their Linear projections run in int8
  once lifted. Drift of word attributions: Layer IG on the embeddings (twin for real int8), and leave-one-word-out on
  the real int8 model.
- Magnitude pruning (a share of the smallest weights of every conv/linear layer set to zero) before any of the above.

Comparing (`compare.py`): fp32's side once (`prepare_comparison`: answers, lifted graph, timing context, fp32's
explanations), then each variant on its own (`compare_variant`): answers against the labels and fp32's, size, latency
interleaved with fp32 in its own run (`timing.py`), explanation drift (`drift.py`). `compare_many` does several,
building, answering and explaining them side by side on the idle cores and timing each alone; `compare_variants` does
it all.
"""

from xai_core.quantization.specs import (BITS, BuildContext, SpeedVerdict, Variant, VariantBuilder, VariantSpec,
                                         builder_for, builders, catalogue, default_batch_sizes, register, variant_kinds)
from xai_core.quantization.weights import (copy_with_weights, fake_quantize, magnitude_prune, packed_size,
                                           serialized_size, weight_parameters)
from xai_core.quantization.half import cast_io, emulate_half
from xai_core.quantization.lifting import LayerOrigin, Lifted, lift, lift_to_modules
from xai_core.quantization.int8 import build_twin, dequantized_weights
from xai_core.quantization.variants import build_variant, default_specs, refused_layers
from xai_core.quantization.timing import Latency, TimingContext, measure_latency
from xai_core.quantization.drift import (DriftReference, ImageDriftReference, TabularDriftReference, TextDriftReference,
                                         VariantDrift, drift_reference, variant_drift, variant_word_attribution,
                                         word_drift_frame, word_drift_metrics)
from xai_core.quantization.compare import (FP32, ComparisonContext, ComparisonSettings, QuantizationComparison,
                                           VariantFailure, VariantResult, assemble, bits_curve, bits_curve_for,
                                           bits_curve_frame, compare_many, compare_variant, compare_variants,
                                           default_workers, divergence,
                                           prepare_comparison, speed_verdicts, try_compare_variant)

__all__ = [
    "BITS", "FP32", "BuildContext", "ComparisonContext", "ComparisonSettings", "DriftReference", "ImageDriftReference",
    "LayerOrigin", "Latency", "Lifted", "QuantizationComparison", "SpeedVerdict", "TabularDriftReference",
    "TextDriftReference", "TimingContext", "Variant", "VariantBuilder", "VariantDrift", "VariantFailure", "VariantResult", "VariantSpec",
    "assemble", "bits_curve", "bits_curve_for", "bits_curve_frame", "build_twin", "build_variant", "builder_for",
    "builders", "cast_io", "catalogue", "compare_many", "compare_variant", "compare_variants", "copy_with_weights",
    "default_batch_sizes", "default_specs", "default_workers", "dequantized_weights", "divergence", "drift_reference", "emulate_half",
    "fake_quantize", "lift", "lift_to_modules", "magnitude_prune", "measure_latency", "packed_size",
    "prepare_comparison", "refused_layers", "register", "serialized_size", "speed_verdicts", "try_compare_variant",
    "variant_drift", "variant_kinds", "variant_word_attribution", "weight_parameters", "word_drift_frame",
    "word_drift_metrics",
]

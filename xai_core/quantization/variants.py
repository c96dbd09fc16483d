"""The builders: one class per kind of variant (fp32/pruned, fp16, bf16, weights rounded to N bits, int8 dynamic,
int8 static), each with how it is built, which timing it shares, what it says about itself. Always built on copies:
the cached float model is never changed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.model import LoadedModel
from xai_core.quantization import int8 as int8_ops
from xai_core.quantization.half import cast_io, emulate_half
from xai_core.quantization.specs import (BITS, TORCHSCRIPT_HIDES_LAYERS, BuildContext, SpeedVerdict, Variant,
                                         VariantBuilder, VariantSpec, builders, register)
from xai_core.quantization.timing import FP32 as FP32_TIMING
from xai_core.quantization.weights import copy_with_weights, packed_size, serialized_size
from xai_core.torch_internals import copy_module

if TYPE_CHECKING:
    from xai_core.quantization.compare import QuantizationComparison, VariantResult


def build_variant(model: LoadedModel, spec: VariantSpec, calibration: torch.Tensor | None = None,
                  context: BuildContext | None = None) -> Variant:
    """The variant `spec` of `model`, built on a copy. Static int8 needs `calibration` inputs (a sample of the data).
    Pass one `context` to build several variants of the same model: its graph is then lifted once for all."""
    if context is None:
        context = BuildContext(model, calibration)
    elif context.model is not model:
        raise XaiError("The build context belongs to another model.")
    return spec.builder.build(spec, context)


def default_specs(model: LoadedModel) -> list[VariantSpec]:
    """The variants the page starts with: half precisions, 8/4-bit weights, and the real int8 paths that apply."""
    return [spec for builder in builders() for spec in builder.defaults(model)]


def _pruning_notes(spec: VariantSpec) -> list[str]:
    if spec.sparsity <= 0:
        return []
    return [f"The smallest {spec.sparsity:.0%} of the weights of every conv/linear layer set to zero first "
            "(stored densely: the size counts them only where packing is estimated)."]


def _float_module(context: BuildContext, spec: VariantSpec) -> nn.Module:
    """The float model a variant starts from: the model itself, or a pruned copy."""
    module = context.model.module
    return copy_with_weights(module, None, True, spec.sparsity) if spec.sparsity > 0 else module


def _as_model(context: BuildContext, spec: VariantSpec, module: nn.Module, size: int, notes: list[str],
              suffix: str = "", autograd: bool = True) -> LoadedModel:
    return dataclasses.replace(context.model, module=module.eval(), sha256=f"{context.model.sha256}:{spec.label}{suffix}",
                               size_bytes=size, notes=list(notes), autograd=autograd, private=True)


def _speeds(result: "VariantResult") -> str:
    return ", ".join(f"{s:.2f}× at batch {b}" for b, s in result.speedup.items())


STATIC_NOT_FOR_TEXT = ("Static int8 is not offered for text models: their input is token ids, which have no activation "
                       "range to calibrate, and torch.ao's static path has no int8 embedding-bag/LSTM/attention "
                       "kernels for them. Use int8 dynamic (Linear and LSTM layers in int8).")
# Layers torch.ao.quantization cannot quantize as a whole (its dynamic path replaces nn.Linear/nn.LSTM/nn.GRU modules
# only; quantize_dynamic on an nn.TransformerEncoder fails at inference, pytorch#109987). After lifting, their Linear
# projections are plain nn.Linear layers and run in int8; the rest of them stays float32.
UNQUANTIZABLE_LAYERS = {
    "TransformerEncoderLayer": "attention (scaled dot-product) and layer norms",
    "TransformerDecoderLayer": "attention (scaled dot-product) and layer norms",
    "MultiheadAttention": "the attention itself (scaled dot-product)",
}


def refused_layers(model: LoadedModel) -> str:
    """A sentence naming the layers torch.ao cannot quantize as layers, and what of them still runs in int8 ('' if
    there are none)."""
    found: dict[str, list[str]] = {}
    for name, kind in model.layer_types.items():
        if kind in UNQUANTIZABLE_LAYERS and name:
            if not any(name.startswith(other + ".") for names in found.values() for other in names):
                found.setdefault(kind, []).append(name)
    if not found:
        return ""
    parts = [f"{kind} ({', '.join(names)})" for kind, names in found.items()]
    kept = "; ".join(f"{kind}: {UNQUANTIZABLE_LAYERS[kind]}" for kind in found)
    return ("torch.ao.quantization cannot quantize these layers as layers: " + ", ".join(parts) + " (quantize_dynamic "
            "on an nn.TransformerEncoder fails at inference, pytorch#109987). What it can is quantized: after lifting, "
            "their Linear projections (attention's in/out projections, the feed-forward layers) run in int8; what stays "
            f"float32 — {kept}.")


# ---------------------------------------------------------------------------------------- float variants


@register
class Fp32(VariantBuilder):
    kind = "fp32"
    title = "fp32"
    description = "fp32: the model as it is; with pruning, its smallest weights set to zero."

    def offered(self) -> list[VariantSpec]:
        return []  # fp32 is always compared; its pruned form comes with the pruning slider

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        return []

    def build(self, spec: VariantSpec, context: BuildContext) -> Variant:
        if spec.sparsity == 0:
            return Variant(spec, context.model, serialized_size(context.model.module), "serialized")
        module = _float_module(context, spec)
        notes = _pruning_notes(spec)
        size = serialized_size(module)
        return Variant(spec, _as_model(context, spec, module, size, notes), size, "serialized", notes=notes)

    def timing_group(self, spec: VariantSpec) -> str:
        return FP32_TIMING

    def timed_module(self, variant: Variant, context: BuildContext) -> nn.Module:
        return context.flat_fp32()


class HalfPrecision(VariantBuilder):
    """The whole model cast to half precision; its answers read from a float32 emulation (see `half`)."""

    dtype: ClassVar[torch.dtype]

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        return [VariantSpec(self.kind)]

    def build(self, spec: VariantSpec, context: BuildContext) -> Variant:
        model = context.model
        base = _float_module(context, spec)
        module = cast_io(copy_module(base), self.dtype)
        size = serialized_size(module)
        notes = _pruning_notes(spec) + [
            f"Every weight and activation in {self.kind}; inputs cast in, outputs cast back to float32. Speed is the "
            f"real {self.kind} model's; answers and explanations come from its float32 emulation (every weight, input "
            f"and layer output rounded to {self.kind}), which matches it to within one rounding step and runs fast on "
            "CPUs without half-precision kernels."
            + (" TorchScript hides its layers, so there only the weights, the input and the output are rounded."
               if model.format == "torchscript" else "")]
        emulated = dataclasses.replace(model, module=emulate_half(base, self.dtype), notes=[], size_bytes=size,
                                       sha256=f"{model.sha256}:{spec.label}:emulated", private=True)
        return Variant(spec, _as_model(context, spec, module, size, notes), size, "serialized", notes=notes,
                       emulated=emulated)

    def timing_group(self, spec: VariantSpec) -> str:
        return self.kind  # pruned or not, the same half kernels

    def timed_module(self, variant: Variant, context: BuildContext) -> nn.Module:
        module = cast_io(copy_module(context.flat_fp32()), self.dtype)
        try:
            with torch.no_grad():
                module(context.example()[:1])
        except Exception as exc:  # an op without a half kernel on this CPU, or a tensor the model makes in float32
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise XaiError(f"The real {self.kind} model does not run on this CPU ({first}), so it cannot be timed; "
                           "its float32 emulation would still answer, but a variant that cannot run is not compared."
                           ) from None
        return module

    def speed_verdicts(self, results, comparison) -> list[SpeedVerdict]:
        slow = [r for r in results if all(s < 0.9 for s in r.speedup.values())]
        if not slow:
            return []
        times = "; ".join(f"{r.label} {_speeds(r)}" for r in slow)
        return [SpeedVerdict("warning", f"**Half precision is slower than fp32 on this CPU** ({times}). Without native "
                             "half-precision kernels (AVX-512 FP16/BF16, AMX) every half operation is converted to "
                             "float32 and back. fp16/bf16 halve the stored size here, not the time.")]


@register
class Fp16(HalfPrecision):
    kind = "fp16"
    title = "fp16"
    dtype = torch.float16
    description = "fp16/bf16: the whole model in half precision."


@register
class Bf16(HalfPrecision):
    kind = "bf16"
    title = "bf16"
    dtype = torch.bfloat16
    description = ""


@register
class RoundedWeights(VariantBuilder):
    """Conv/linear weights rounded to 2–16 bits (symmetric, per output channel or per tensor) and stored back as
    float: the model keeps autograd and Grad-CAM works; its size is what the weights would take packed."""

    kind = "weights"
    title = "wN"
    description = "wN: weights rounded to N bits (simulated, so gradients and Grad-CAM still work)."

    def validate(self, spec: VariantSpec) -> None:
        if not 2 <= spec.bits <= 16:
            raise XaiError(f"Weight quantization takes 2 to 16 bits, not {spec.bits}.")

    def label(self, spec: VariantSpec) -> str:
        return f"w{spec.bits} {'per-channel' if spec.per_channel else 'per-tensor'}"

    def offered(self) -> list[VariantSpec]:
        return [VariantSpec(self.kind, b, per_channel) for per_channel in (True, False) for b in BITS]

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        return [VariantSpec(self.kind, 8), VariantSpec(self.kind, 4)]

    def build(self, spec: VariantSpec, context: BuildContext) -> Variant:
        module = copy_with_weights(context.model.module, spec.bits, spec.per_channel, spec.sparsity)
        size = packed_size(module, spec.bits, spec.per_channel, spec.sparsity)
        notes = _pruning_notes(spec) + [
            f"Weights rounded to {spec.bits} bits ({2 ** spec.bits - 1} levels) and computed in float: the accuracy is "
            "the quantized model's; the speed is fp32's, since it runs fp32's kernels (no low-bit kernels run), so it "
            "is not timed separately."]
        return Variant(spec, _as_model(context, spec, module, size, notes), size, "packed", notes=notes)

    def timing_group(self, spec: VariantSpec) -> str:
        return FP32_TIMING

    def timed_module(self, variant: Variant, context: BuildContext) -> nn.Module:
        return context.flat_fp32()

    def speed_verdicts(self, results, comparison) -> list[SpeedVerdict]:
        batch, ms = next(iter(comparison.results[0].latency_ms.items()))
        return [SpeedVerdict("caption", "wN variants round the weights and compute in float: their accuracy and drift "
                             "are those of an N-bit model, their size is the packed size, but they run fp32's kernels, "
                             "so their time is fp32's (not timed separately). "
                             f"fp32 takes {ms:.2f} ms for a batch of {batch} here.")]


# ---------------------------------------------------------------------------------------- real int8


class RealInt8(VariantBuilder):
    """Real int8 kernels (`torch.ao.quantization`) on the lifted graph, with a fake-quant twin for gradients."""

    real_int8 = True
    simulate_activations: ClassVar[bool]
    no_gain_reason: ClassVar[str] = "the layers int8 converts are too small for their arithmetic to dominate."

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        return [VariantSpec(self.kind)]

    def quantize(self, graph: torch.fx.GraphModule, context: BuildContext) -> nn.Module:
        raise NotImplementedError

    def notes(self, lifted, int8: nn.Module, context: BuildContext) -> list[str]:
        raise NotImplementedError

    def build(self, spec: VariantSpec, context: BuildContext) -> Variant:
        model = context.model
        if model.format == "torchscript":
            raise XaiError(TORCHSCRIPT_HIDES_LAYERS)
        lifted = context.lifted()
        graph = lifted.copy()
        if spec.sparsity > 0:
            graph = copy_with_weights(graph, None, True, spec.sparsity)
        module = self.quantize(graph, context)
        int8_ops.check_runs(module, context.example(), self.title, lifted)
        notes = _pruning_notes(spec) + self.notes(lifted, module, context)
        size = serialized_size(module)
        twin = None
        try:
            twin_module = int8_ops.build_twin(_float_module(context, spec), lifted, module, self.simulate_activations)
            twin = _as_model(context, spec, twin_module, size, [], ":twin")
        except XaiError as exc:
            notes.append(f"No fake-quant twin ({exc}): gradient methods cannot explain this variant.")
        return Variant(spec, _as_model(context, spec, module, size, notes, autograd=False), size, "serialized", twin,
                       notes)

    def speed_verdicts(self, results, comparison) -> list[SpeedVerdict]:
        verdicts = []
        for r in results:
            times = _speeds(r)
            if all(s < 0.9 for s in r.speedup.values()):
                verdicts.append(SpeedVerdict("warning", f"**{r.label} is slower than fp32 on this model** ({times}). At "
                                "this size the fixed costs — quantizing activations, packing, calling int8 kernels — "
                                "outweigh the arithmetic saved. int8 pays off on wide layers and large batches; here, "
                                "keep fp32 for speed."))
            elif all(s < 1.1 for s in r.speedup.values()):
                reason = r.spec.builder.reason_for_no_gain(comparison)
                verdicts.append(SpeedVerdict("info", f"**{r.label} is no faster than fp32 here** ({times}; within ±10% "
                                             f"is measurement noise): {reason}"))
            elif any(s < 1.1 for s in r.speedup.values()):
                verdicts.append(SpeedVerdict("info", f"**{r.label} is faster only at larger batches** ({times}): for a "
                                             "single input the fixed costs of quantizing activations and calling int8 "
                                             "kernels cancel the arithmetic saved."))
        return verdicts

    def reason_for_no_gain(self, comparison: "QuantizationComparison") -> str:
        return self.no_gain_reason


@register
class Int8Dynamic(RealInt8):
    kind = "int8-dynamic"
    title = "int8 dynamic"
    description = "int8 dynamic / static: real int8 kernels (torch.ao.quantization, fbgemm/x86)."
    simulate_activations = False  # their scale is computed per batch at run time

    def quantize(self, graph, context):
        return int8_ops.quantize_dynamic(graph)

    def notes(self, lifted, int8, context) -> list[str]:
        has_conv = any(isinstance(m, nn.Conv2d) for m in lifted.module.modules())
        has_lstm = any(isinstance(m, nn.LSTM) for m in lifted.module.modules())
        notes = [("Linear and LSTM layers" if has_lstm else "Linear layers") + " run in int8 (weights int8 per "
                 "tensor, activations quantized per batch on the fly); everything else stays float32"
                 + (", including the convolutions." if has_conv else
                    ", including the embeddings." if context.model.info.input_kind == "text" else "."),
                 "Its fake-quant twin (for gradient methods) holds exactly the int8 weights, dequantized; its "
                 "activations stay float."]
        refused = refused_layers(context.model)
        if refused:
            notes.append(refused)
        if context.model.info.input_kind == "text" and lifted.float_ops:
            notes.append("Ops that stay in float32: " + ", ".join(lifted.float_ops) + ".")
        return notes

    def reason_for_no_gain(self, comparison) -> str:
        if comparison.settings.get("kind") == "image":
            return "dynamic int8 converts only Linear layers, and this model's time is spent in its convolutions."
        return self.no_gain_reason


@register
class Int8Static(RealInt8):
    kind = "int8-static"
    title = "int8 static"
    description = ""
    simulate_activations = True
    builds_slowly = True  # calibration (a histogram per activation) and conversion: ~1.3 s of the ViT demo's

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        return [VariantSpec(self.kind)] if model.info.input_kind == "image" else []

    def quantize(self, graph, context):
        if context.model.info.input_kind == "text":
            raise XaiError(STATIC_NOT_FOR_TEXT)
        return int8_ops.quantize_static(graph, context.calibration)

    def notes(self, lifted, int8, context) -> list[str]:
        notes = [f"Calibrated on {len(context.calibration)} inputs from the data (activation ranges); conv + BN + ReLU "
                 "fused; weights int8 per channel.",
                 "Its fake-quant twin (for gradient methods) holds exactly the int8 weights, dequantized, and rounds "
                 "the input and every int8 conv/linear output with the calibrated scales; residual additions and "
                 "pooling are simulated in float."]
        if lifted.float_ops:
            notes.append("Ops that stay in float (they run between dequantize and quantize): "
                         + ", ".join(lifted.float_ops) + ".")
        return notes

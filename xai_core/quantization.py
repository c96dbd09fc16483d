"""Float vs quantized weights of one model: build the variants, then compare them with the float model.

Variants are always built on copies: the cached float model is never changed.

- fp16 / bf16: the whole model cast to half precision (inputs cast in, outputs cast back to float32). CPUs without
  native half kernels (no AVX-512 FP16/BF16) run it tens of times slower than float32, so the comparison times the real
  half model but reads its answers and explanations from an emulation: the same computation in float32 with every
  weight, input and layer output rounded to the half type (half kernels accumulate in float32 too; the two agree to
  within one rounding step of the output, tested).
- Weight fake quantization at 2–8 bits, symmetric, per output channel or per tensor: each weight is rounded to
  the nearest of 2^(b-1)-1 steps either side of zero and stored back as float, so the model keeps autograd and
  Grad-CAM still works. Its size is what the weights would take packed at b bits.
- Real int8 (`torch.ao.quantization`, whose fbgemm/x86 kernels are the working int8 path on CPU):
  dynamic (Linear layers: int8 weights, activations quantized on the fly) and static (convolutions and linear
  layers calibrated on a sample of the user's data). The model is re-exported with `torch.export`, its ATen
  graph lifted back to `nn.Conv2d` / `nn.Linear` / `nn.BatchNorm2d` / `nn.ReLU` modules, then quantized by
  FX graph mode (which fuses conv + BN + ReLU). Ops it cannot quantize stay in float and are listed.
  Real int8 modules have no autograd: gradient methods use a fake-quant twin (the same int8 weights,
  simulated), perturbation methods (occlusion, Shapley values) run on the real int8 model.
- Magnitude pruning (a share of the smallest weights of every conv/linear layer set to zero) before any of the above.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import operator
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from xai_core.datasets import ImageSet, TableSet
from xai_core.errors import XaiError
from xai_core import scoring
from xai_core.evaluation import model_inputs
from xai_core.model import LoadedModel
from xai_core.torch_internals import ensure_subsystems, tracing_confined_to_this_thread

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]
VariantKind = Literal["fp32", "fp16", "bf16", "weights", "int8-dynamic", "int8-static"]

BITS = (8, 6, 4, 3, 2)
# torch.ao.quantization announces its move to torchao (and its quantized-tensor helpers theirs); only those
# deprecation notices are silenced, and only around the quantization calls.
_DEPRECATION = r"(?s).*deprecat"


# ---------------------------------------------------------------------------------------- what a variant is


@dataclass(frozen=True)
class VariantSpec:
    """One way of storing the weights. `bits` and `per_channel` apply to kind="weights"; `sparsity` to every kind."""

    kind: VariantKind
    bits: int = 32
    per_channel: bool = True
    sparsity: float = 0.0

    def __post_init__(self):
        if self.kind not in ("fp32", "fp16", "bf16", "weights", "int8-dynamic", "int8-static"):
            raise XaiError(f"Unknown variant kind {self.kind!r}.")
        if self.kind == "weights" and not 2 <= self.bits <= 16:
            raise XaiError(f"Weight quantization takes 2 to 16 bits, not {self.bits}.")
        if not 0.0 <= self.sparsity < 1.0:
            raise XaiError(f"Sparsity is a share of weights in [0, 1), not {self.sparsity}.")

    @property
    def label(self) -> str:
        if self.kind == "weights":
            text = f"w{self.bits} {'per-channel' if self.per_channel else 'per-tensor'}"
        else:
            text = {"int8-dynamic": "int8 dynamic", "int8-static": "int8 static"}.get(self.kind, self.kind)
        if self.sparsity > 0:
            text += f" + {self.sparsity:.0%} pruned"
        return text

    @property
    def real_int8(self) -> bool:
        return self.kind in ("int8-dynamic", "int8-static")


FP32 = VariantSpec("fp32")


def default_specs(model: LoadedModel) -> list[VariantSpec]:
    """The variants the page starts with: half precisions, 8/4-bit weights, and the real int8 paths that apply."""
    specs = [VariantSpec("fp16"), VariantSpec("bf16"), VariantSpec("weights", 8), VariantSpec("weights", 4),
             VariantSpec("int8-dynamic")]
    if model.info.input_kind == "image":
        specs.append(VariantSpec("int8-static"))
    return specs


def default_batch_sizes(model: LoadedModel) -> tuple[int, int]:
    """The batches the page times at: one input, and a batch typical of serving this kind of model."""
    return (1, 256) if model.info.input_kind == "tabular" else (1, 32)


@dataclass
class Variant:
    """A variant as a model every method accepts (float32 in, float32 out), plus how big it is."""

    spec: VariantSpec
    model: LoadedModel
    size_bytes: int
    size_basis: str  # "serialized" (torch.save of its state_dict) or "packed" (b bits per weight + scales)
    twin: LoadedModel | None = None  # real int8 only: fake-quant twin with autograd, for gradient methods
    notes: list[str] = field(default_factory=list)
    emulated: LoadedModel | None = None  # fp16/bf16 only: float32 emulation (same answers, fast on any CPU)

    @property
    def answer_model(self) -> LoadedModel:
        """What the comparison reads answers and perturbation explanations from."""
        return self.emulated if self.emulated is not None else self.model

    @property
    def gradient_model(self) -> LoadedModel:
        """What gradient methods (Grad-CAM) explain: the fake-quant twin of a real int8 model, else `answer_model`."""
        return self.twin if self.twin is not None else self.answer_model


# ---------------------------------------------------------------------------------------- weights


def _weight_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv and linear weights: parameters named '*weight' with two or more dimensions (not BN, not biases)."""
    return [(n, p) for n, p in module.named_parameters() if n.rsplit(".", 1)[-1] == "weight" and p.ndim >= 2]


def fake_quantize(weight: torch.Tensor, bits: int, per_channel: bool = True) -> torch.Tensor:
    """Symmetric quantize-dequantize: round to a multiple of scale = max|w| / (2^(bits-1) - 1), per row or tensor."""
    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    if per_channel:
        peak = w.abs().reshape(len(w), -1).amax(dim=1).reshape(-1, *([1] * (w.ndim - 1)))
    else:
        peak = w.abs().amax()
    scale = torch.where(peak > 0, peak / qmax, torch.ones_like(peak))
    return (torch.clamp(torch.round(w / scale), -qmax, qmax) * scale).to(weight.dtype)


def magnitude_prune(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the `sparsity` share of entries with the smallest magnitude (ties may zero a few more)."""
    k = int(round(sparsity * weight.numel()))
    if k <= 0:
        return weight
    threshold = weight.detach().abs().flatten().kthvalue(k).values
    return torch.where(weight.abs() <= threshold, torch.zeros_like(weight), weight)


def _copy_with_weights(module: nn.Module, bits: int | None, per_channel: bool, sparsity: float) -> nn.Module:
    clone = copy.deepcopy(module)
    with torch.no_grad():
        for _, parameter in _weight_parameters(clone):
            value = magnitude_prune(parameter.data, sparsity) if sparsity > 0 else parameter.data
            if bits is not None:
                value = fake_quantize(value, bits, per_channel)
            parameter.data.copy_(value)
    return clone.eval()


def packed_size(module: nn.Module, bits: int, per_channel: bool, sparsity: float = 0.0) -> int:
    """Bytes the model takes with conv/linear weights packed at `bits` (plus a float32 scale per channel or tensor)
    and every other tensor in float32. Pruned weights are counted as a 1-bit mask plus the kept values, when smaller."""
    weights = {n for n, _ in _weight_parameters(module)}
    total = 0.0
    for name, tensor in module.state_dict().items():
        if name in weights:
            n = tensor.numel()
            kept = int(torch.count_nonzero(tensor)) if sparsity > 0 else n
            values = min(n * bits / 8, n / 8 + kept * bits / 8)
            total += values + 4 * (tensor.shape[0] if per_channel else 1)
        else:
            total += tensor.numel() * (4 if tensor.is_floating_point() else tensor.element_size())
    return int(np.ceil(total))


def serialized_size(module: nn.Module) -> int:
    """Bytes of `torch.save(module.state_dict())`: what storing this variant really takes."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


# ---------------------------------------------------------------------------------------- half precision


def _cast_io(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The module in `dtype`, taking and returning float32, with its layer names unchanged (Grad-CAM finds them)."""
    cast = module.to(dtype)
    base = type(cast)
    if isinstance(cast, torch.jit.ScriptModule):
        return _CastWrapper(cast, dtype)

    def forward(self, x, *args, **kwargs):
        return base.forward(self, x.to(dtype), *args, **kwargs).float()

    return _with_forward(cast, forward)


def _with_forward(module: nn.Module, forward) -> nn.Module:
    """`module` with `forward` in place of its class's (a subclass of the same name: layer names and hooks unchanged)."""
    base = type(module)
    module.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__})
    return module


def _round_to(value, dtype: torch.dtype):
    return value.to(dtype).float() if torch.is_tensor(value) and value.is_floating_point() else value


def emulate_half(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A float32 copy of `module` that computes what it computes in `dtype`: every parameter and buffer, the input and
    the output of every submodule rounded to `dtype`. Layer names unchanged, autograd kept."""
    clone = copy.deepcopy(module)
    with torch.no_grad():
        for tensor in [*clone.parameters(), *clone.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).float())
    if isinstance(clone, torch.jit.ScriptModule):  # its submodules cannot be changed: round what goes in and out
        return _CastWrapper(clone, dtype, emulate=True)
    for name, sub in clone.named_modules():
        base = type(sub)

        def forward(self, *args, _base=base, _root=not name, **kwargs):
            if _root:
                args = tuple(_round_to(a, dtype) for a in args)
            return _round_to(_base.forward(self, *args, **kwargs), dtype)

        _with_forward(sub, forward)
    return clone.eval()


class _CastWrapper(nn.Module):
    def __init__(self, inner: nn.Module, dtype: torch.dtype, emulate: bool = False):
        super().__init__()
        self.inner, self.dtype, self.emulate = inner, dtype, emulate

    def forward(self, x):
        if self.emulate:  # float32 inner model: round the input and output only
            return _round_to(self.inner(_round_to(x, self.dtype)), self.dtype)
        return self.inner(x.to(self.dtype)).float()


# ---------------------------------------------------------------------------------------- real int8

_aten = torch.ops.aten


def _attr(root: nn.Module, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


def lift_to_modules(module: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """Export `module` and turn its ATen graph back into nn layers FX quantization understands.

    conv2d / linear / batch_norm (eval) / relu / pools become `nn` modules named after the original layers;
    add, mul, flatten, cat, reshape become their torch functions. Anything else stays as the ATen op (it will run
    in float between dequantize and quantize). The result computes exactly what `module` does.
    """
    try:
        with warnings.catch_warnings(), tracing_confined_to_this_thread():  # export is not thread-safe either
            warnings.simplefilter("ignore")
            program = torch.export.export(copy.deepcopy(module).eval(), (example,), strict=False)
    except Exception as exc:
        raise XaiError(f"Real int8 needs the model re-exported with torch.export, which failed: "
                       f"{str(exc).strip().splitlines()[0][:200]}") from None
    gm = program.module()
    graph = gm.graph
    used: set[str] = set()

    def add_module(node, base: str, mod: nn.Module, x):
        name = base.replace(".", "_") or "layer"
        while name in used or hasattr(gm, name):
            name += "_"
        used.add(name)
        gm.add_submodule(name, mod)
        with graph.inserting_before(node):
            new = graph.call_module(name, (x,))
        node.replace_all_uses_with(new)
        graph.erase_node(node)

    def tensor(node):
        return _attr(gm, node.target).detach().clone()

    def owner(node) -> str:
        return node.target.rsplit(".", 1)[0] if node is not None and node.op == "get_attr" else ""

    for node in list(graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            graph.erase_node(node)
            continue
        if node.op != "call_function":
            continue
        target, args = node.target, list(node.args)
        if target is _aten.conv2d.default and args[1].op == "get_attr" and not node.kwargs:
            x, w, b, *rest = args + [None] * (3 - len(args))
            stride, padding, dilation, groups = (list(rest) + [1, 0, 1, 1][len(rest):])[:4]
            weight = tensor(w)
            if isinstance(padding, str):  # padding="same"/"valid": leave the ATen op (it runs in float)
                continue
            conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=stride,
                             padding=padding, dilation=dilation, groups=groups, bias=b is not None)
            conv.weight = nn.Parameter(weight)
            if b is not None:
                conv.bias = nn.Parameter(tensor(b))
            add_module(node, owner(w), conv, x)
        elif target is _aten.linear.default and args[1].op == "get_attr":
            x, w, b = (args + [None])[:3]
            weight = tensor(w)
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=b is not None)
            linear.weight = nn.Parameter(weight)
            if b is not None:
                linear.bias = nn.Parameter(tensor(b))
            add_module(node, owner(w), linear, x)
        elif target is _aten.batch_norm.default and args[5] is False and all(a is not None for a in args[1:5]):
            x, w, b, mean, var, _, momentum, eps, _ = args
            rank = len(x.meta["val"].shape) if "val" in x.meta else 4
            bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(tensor(mean).numel(), eps=eps, momentum=momentum)
            bn.weight, bn.bias = nn.Parameter(tensor(w)), nn.Parameter(tensor(b))
            bn.running_mean.copy_(tensor(mean))
            bn.running_var.copy_(tensor(var))
            bn.to(tensor(w).dtype)
            add_module(node, owner(mean), bn, x)
        elif target is _aten.relu.default:
            add_module(node, f"relu_{len(used)}", nn.ReLU(), args[0])
        elif target is _aten.adaptive_avg_pool2d.default:
            add_module(node, f"pool_{len(used)}", nn.AdaptiveAvgPool2d(tuple(args[1])), args[0])
        elif target is _aten.max_pool2d.default:
            x, kernel, *rest = args
            stride, padding, dilation, ceil = (list(rest) + [kernel, 0, 1, False][len(rest):])[:4]
            add_module(node, f"maxpool_{len(used)}", nn.MaxPool2d(kernel, stride or kernel, padding, dilation,
                                                                  ceil_mode=ceil), x)
        elif target is _aten.add.Tensor and len(args) == 2 and not node.kwargs:
            node.target = operator.add
        elif target is _aten.mul.Tensor and len(args) == 2 and not node.kwargs:
            node.target = operator.mul
        elif target is _aten.flatten.using_ints:
            node.target = torch.flatten
        elif target in (_aten.view.default, _aten.reshape.default):
            node.target = torch.reshape
        elif target is _aten.cat.default:
            node.target = torch.cat
    graph.eliminate_dead_code()
    float_ops = []
    for node in graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            where = f" in {stack[-1][0]}" if stack and stack[-1][0] else ""
            float_ops.append(f"{node.target.__name__.split('.')[0]}{where}")
        node.meta = {}
    graph.lint()
    lifted = torch.fx.GraphModule(gm, graph)  # a plain GraphModule (the exported one refuses .eval())
    lifted.delete_all_unused_submodules()
    lifted.float_ops = list(dict.fromkeys(float_ops))  # ATen ops no int8 kernel will take, with their layer
    return lifted.eval()


def _quantize_dynamic(lifted: nn.Module) -> nn.Module:
    ensure_subsystems()
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION)
        return quantize_dynamic(lifted, {nn.Linear}, dtype=torch.qint8)


def _quantize_static(lifted: nn.Module, calibration: torch.Tensor, example: torch.Tensor) -> nn.Module:
    ensure_subsystems()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION)
        try:
            with tracing_confined_to_this_thread():
                prepared = prepare_fx(lifted, get_default_qconfig_mapping("x86"), (example,))
        except Exception as exc:
            raise XaiError(f"Static int8 could not prepare this model: {_blocking_layer(exc)}") from None
        with torch.no_grad():
            for start in range(0, len(calibration), 64):
                prepared(calibration[start : start + 64])
        try:
            with tracing_confined_to_this_thread():
                return convert_fx(prepared)
        except Exception as exc:
            raise XaiError(f"Static int8 could not convert this model: {_blocking_layer(exc)}") from None


def _blocking_layer(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ---------------------------------------------------------------------------------------- building variants


def build_variant(model: LoadedModel, spec: VariantSpec, calibration: torch.Tensor | None = None) -> Variant:
    """The variant `spec` of `model`, built on a copy. Static int8 needs `calibration` inputs (a sample of the data)."""
    if spec.kind in ("int8-dynamic", "int8-static") and model.format == "torchscript":
        raise XaiError("Real int8 needs the model's layers, which TorchScript hides. Upload a torch.export `.pt2` "
                       "or a state_dict with its architecture; fp16/bf16 and weight fake quantization still work.")
    if spec == FP32:
        return Variant(spec, model, serialized_size(model.module), "serialized")
    notes: list[str] = []
    if spec.sparsity > 0:
        notes.append(f"The smallest {spec.sparsity:.0%} of the weights of every conv/linear layer set to zero first "
                     "(stored densely: the size counts them only where packing is estimated).")
    base = model.module
    if spec.sparsity > 0 or spec.kind == "weights":
        base = _copy_with_weights(base, spec.bits if spec.kind == "weights" else None, spec.per_channel, spec.sparsity)
    twin = emulated = None
    if spec.kind == "fp32":  # pruned only
        module = base
        size, basis = serialized_size(module), "serialized"
    elif spec.kind in ("fp16", "bf16"):
        dtype = torch.float16 if spec.kind == "fp16" else torch.bfloat16
        module = _cast_io(copy.deepcopy(base), dtype)
        size, basis = serialized_size(module), "serialized"
        emulated = dataclasses.replace(model, module=emulate_half(base, dtype), notes=[], size_bytes=size,
                                       sha256=f"{model.sha256}:{spec.label}:emulated")
        notes.append(f"Every weight and activation in {spec.kind}; inputs cast in, outputs cast back to float32. Speed "
                     f"is the real {spec.kind} model's; answers and explanations come from its float32 emulation (every "
                     f"weight, input and layer output rounded to {spec.kind}), which matches it to within one rounding "
                     "step and runs fast on CPUs without half-precision kernels."
                     + (" TorchScript hides its layers, so there only the weights, the input and the output are "
                        "rounded." if model.format == "torchscript" else ""))
    elif spec.kind == "weights":
        module = base
        size, basis = packed_size(module, spec.bits, spec.per_channel, spec.sparsity), "packed"
        notes.append(f"Weights rounded to {spec.bits} bits ({2 ** spec.bits - 1} levels) and computed in float: the "
                     "accuracy is the quantized model's; the speed is fp32's, since it runs fp32's kernels (no low-bit "
                     "kernels run), so it is not timed separately.")
    else:
        example = torch.zeros((2, *model.info.input_shape))
        lifted = lift_to_modules(base, example)
        if spec.kind == "int8-dynamic":
            if not any(isinstance(m, nn.Linear) for m in lifted.modules()):
                raise XaiError("Dynamic int8 quantizes Linear layers, and this model has none. Use static int8.")
            module = _quantize_dynamic(lifted)
            twin_per_channel = False
            notes.append("Linear layers run in int8 (weights int8 per tensor, activations quantized per batch on the "
                         "fly); everything else stays float32"
                         + (", including the convolutions." if any(isinstance(m, nn.Conv2d) for m in lifted.modules())
                            else "."))
        else:
            if calibration is None or len(calibration) == 0:
                raise XaiError("Static int8 needs calibration data: load some images or rows first.")
            module = _quantize_static(lifted, calibration, example)
            twin_per_channel = True
            notes.append(f"Calibrated on {len(calibration)} inputs from the data (activation ranges); conv + BN + "
                         "ReLU fused; weights int8 per channel.")
        if spec.kind == "int8-static" and lifted.float_ops:
            notes.append("Ops that stay in float (they run between dequantize and quantize): "
                         + ", ".join(lifted.float_ops) + ".")
        size, basis = serialized_size(module), "serialized"
        twin_module = _copy_with_weights(base, 8, twin_per_channel, 0.0)
        twin = dataclasses.replace(model, module=twin_module, sha256=f"{model.sha256}:{spec.label}:twin",
                                   notes=[], size_bytes=size)
    variant_model = dataclasses.replace(model, module=module.eval(), sha256=f"{model.sha256}:{spec.label}",
                                        size_bytes=size, notes=list(notes), autograd=not spec.real_int8)
    return Variant(spec, variant_model, size, basis, twin, notes, emulated)


# ---------------------------------------------------------------------------------------- comparing


@dataclass
class VariantResult:
    """One row of the comparison: the variant against fp32 on the same data, in the same run."""

    label: str
    spec: VariantSpec
    score: float | None  # accuracy or R² against the labels (None when unlabelled)
    agreement: float | None  # top-1 agreement with fp32 (classification)
    divergence: float  # mean KL(fp32 ‖ variant) for classifiers, MSE against fp32's output for regression
    size_bytes: int
    size_basis: str
    latency_ms: dict[int, float]  # batch size → median ms per batch
    speedup: dict[int, float]  # batch size → fp32 time / variant time, measured in the same run
    drift: dict[str, float] = field(default_factory=dict)  # metric → value (rank correlation, top-k overlap)
    drift_method: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class QuantizationComparison:
    """Every variant of one model compared with fp32 on the same data; the page and notebooks read this."""

    model_name: str
    task: str
    score_name: str | None
    n_rows: int
    results: list[VariantResult]
    bits_curve: pd.DataFrame  # bits, granularity, score, agreement
    drift_reference: dict  # what the drift compares: {"kind": "image"|"tabular", "method", "maps"/"values", ...}
    drift_variants: dict[str, np.ndarray]  # label → maps (n, H, W) or φ (n, d) of the explained class
    errors: dict[str, str]  # variants that could not be built: label → why
    settings: dict
    seconds: float

    def to_frame(self) -> pd.DataFrame:
        """One row per variant: the side-by-side table (also the CSV download)."""
        rows = []
        base = next(r for r in self.results if r.spec.kind == "fp32")
        for r in self.results:
            row = {"variant": r.label}
            if self.score_name:
                row[self.score_name] = r.score
                row[f"Δ {self.score_name}"] = None if r.score is None or base.score is None else r.score - base.score
            if self.task == "classification":
                row["agreement with fp32"] = r.agreement
                row["mean KL vs fp32"] = r.divergence
            else:
                row["MSE vs fp32"] = r.divergence
            row["size (bytes)"] = r.size_bytes
            row["size basis"] = r.size_basis
            row["size ratio vs fp32"] = base.size_bytes / r.size_bytes if r.size_bytes else None
            for batch, ms in r.latency_ms.items():
                row[f"ms / batch {batch}"] = ms
                row[f"speedup at batch {batch}"] = r.speedup.get(batch)
            for name, value in r.drift.items():
                row[name] = value
            row["drift method"] = r.drift_method
            rows.append(row)
        return pd.DataFrame(rows)


def _score(task: str, out: np.ndarray, labels: np.ndarray | None) -> float | None:
    return scoring.score(task, out, labels)


def _divergence(task: str, reference: np.ndarray, other: np.ndarray) -> float:
    if task == "classification":
        p, q = np.clip(reference, 1e-12, 1), np.clip(other, 1e-12, 1)
        return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))
    return float(np.mean((reference[:, 0] - other[:, 0]) ** 2))


def _flat_fp32(model: LoadedModel, example: torch.Tensor) -> nn.Module:
    """The float model as a flat graph of nn layers, as real int8 variants are, so that timing them against it compares
    kernels, not Python overhead (an unflattened export interprets its graph node by node, which would flatter int8)."""
    if model.format == "torchscript":
        return model.module
    try:
        return lift_to_modules(model.module, example)
    except XaiError:
        return model.module


def _timed_modules(variants: dict[str, "Variant"], flat: nn.Module) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """What to time, and which timing each variant reads. Float variants run dense float kernels whatever their weights
    (rounded or pruned), so their speed is fp32's or the half type's: each is timed once. Real int8 are timed each."""
    modules: dict[str, nn.Module] = {FP32.label: flat}
    reads: dict[str, str] = {}
    for label, variant in variants.items():
        kind = variant.spec.kind
        if kind in ("fp32", "weights"):
            reads[label] = FP32.label
        elif kind in ("fp16", "bf16"):
            if kind not in modules:
                modules[kind] = _cast_io(copy.deepcopy(flat), torch.float16 if kind == "fp16" else torch.bfloat16)
            reads[label] = kind
        else:
            modules[label] = variant.model.module
            reads[label] = label
    return modules, reads


def measure_latency(modules: dict[str, nn.Module], x: torch.Tensor, batch_sizes=(1, 256),
                    budget_s: float = 0.1, max_rounds: int = 40) -> dict[str, dict[int, float]]:
    """Median ms per batch of every module, interleaved round by round so that all share the same machine state.

    Each module is warmed up once (first calls pay one-off costs: packing, allocation), then timed for at least 5
    rounds and about `budget_s` per module; a module whose single call already exceeds the budget (half precision on a
    CPU without half kernels takes seconds) is timed once per batch size, so it cannot hold the page up.
    """
    result: dict[str, dict[int, float]] = {name: {} for name in modules}
    with torch.inference_mode():
        for module in modules.values():
            module(x[:1])
        for batch in batch_sizes:
            reps = -(-batch // len(x))
            xb = x.repeat((reps,) + (1,) * (x.ndim - 1))[:batch].contiguous()
            times: dict[str, list[float]] = {name: [] for name in modules}
            active = list(modules)
            start = time.perf_counter()
            rounds = 0
            while active:
                for name in active:
                    t0 = time.perf_counter()
                    modules[name](xb)
                    times[name].append(time.perf_counter() - t0)
                rounds += 1
                over_budget = time.perf_counter() - start >= budget_s * len(modules)
                active = [name for name in active if rounds < max_rounds
                          and not (over_budget and rounds >= (1 if times[name][0] >= budget_s else 5))]
            for name in modules:
                result[name][batch] = float(np.median(times[name]) * 1000)
    return result


def compare_variants(
    model: LoadedModel,
    data: ImageSet | TableSet,
    specs: list[VariantSpec] | None = None,
    background: TableSet | None = None,
    batch_sizes: tuple[int, ...] = (1, 256),
    n_drift: int = 12,
    n_calibration: int = 128,
    max_rows: int = 2000,
    bits_curve: bool = True,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> QuantizationComparison:
    """Build every variant in `specs` (fp32 is always first) and compare it with fp32 on `data`.

    Accuracy/agreement/divergence on up to `max_rows` rows; latency at `batch_sizes`, all variants interleaved in
    one run; explanation drift on `n_drift` rows or images (Grad-CAM for images, Shapley values for tables).
    """
    started = time.perf_counter()
    specs = [FP32] + [s for s in (specs if specs is not None else default_specs(model)) if s != FP32]
    rng = np.random.default_rng(seed)
    subset, x, labels = _compared_rows(model, data, max_rows, rng)
    task = model.info.task
    calibration = x[torch.from_numpy(rng.permutation(len(x))[:n_calibration])]
    steps = len(specs) + 2 + (1 if bits_curve else 0)
    step = 0

    def tick(message: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(min(step, steps), steps, message)

    variants: dict[str, Variant] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        tick(f"building {spec.label}")
        try:
            variants[spec.label] = build_variant(model, spec, calibration)
        except XaiError as exc:
            if spec == FP32:
                raise
            errors[spec.label] = str(exc)
    outputs = {label: v.answer_model.predict_proba(x) for label, v in variants.items()}
    reference = outputs[FP32.label]
    tick("timing every variant in one run")
    flat = _flat_fp32(model, torch.zeros((2, *model.info.input_shape)))
    timed, reads = _timed_modules(variants, flat)
    measured = measure_latency(timed, x, batch_sizes)
    latency = {label: measured[reads[label]] for label in variants}
    tick("explaining with every variant")
    drift_reference, drift_values, drift_rows = _drift(model, subset, x, variants, background, n_drift, seed)

    results = []
    for label, variant in variants.items():
        out = outputs[label]
        results.append(VariantResult(
            label=label, spec=variant.spec, score=_score(task, out, labels),
            agreement=scoring.agreement(reference, out) if task == "classification" else None,
            divergence=_divergence(task, reference, out), size_bytes=variant.size_bytes, size_basis=variant.size_basis,
            latency_ms=latency[label],
            speedup={b: latency[FP32.label][b] / latency[label][b] for b in batch_sizes},
            drift=drift_rows.get(label, {}).get("metrics", {}), drift_method=drift_rows.get(label, {}).get("method", ""),
            notes=variant.notes,
        ))
    curve = pd.DataFrame()
    if bits_curve:
        tick("bits curve")
        curve = bits_curve_frame(model, x, labels, reference, module=flat)
    score_name = None if labels is None else ("accuracy" if task == "classification" else "R²")
    return QuantizationComparison(
        model_name=model.info.name, task=task, score_name=score_name, n_rows=len(x), results=results,
        bits_curve=curve, drift_reference=drift_reference, drift_variants=drift_values, errors=errors,
        settings={"kind": model.info.input_kind, "batch_sizes": list(batch_sizes), "n_drift": n_drift, "n_calibration": len(calibration),
                  "rows": len(x), "seed": seed, "threads": torch.get_num_threads()},
        seconds=time.perf_counter() - started,
    )


def _compared_rows(model: LoadedModel, data: ImageSet | TableSet, max_rows: int, rng: np.random.Generator):
    """Up to `max_rows` rows of `data` (a seeded sample, in order), the model's inputs for them, and their labels."""
    if len(data) == 0:
        raise XaiError("There is no data to compare the variants on.")
    index = np.sort(rng.choice(len(data), size=min(len(data), max_rows), replace=False))
    subset = data.subset(index) if isinstance(data, ImageSet) else TableSet(data.X.iloc[index], None if data.y is None
                                                                            else data.y.iloc[index], data.target_name)
    labels = subset.labels if isinstance(subset, ImageSet) else (None if subset.y is None else subset.y.to_numpy())
    return subset, model_inputs(model, subset), labels


def bits_curve(model: LoadedModel, data: ImageSet | TableSet, max_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The bits curve of `compare_variants`, on its own (the same rows for the same `max_rows` and `seed`)."""
    _, x, labels = _compared_rows(model, data, max_rows, np.random.default_rng(seed))
    return bits_curve_frame(model, x, labels, module=_flat_fp32(model, torch.zeros((2, *model.info.input_shape))))


def bits_curve_frame(model: LoadedModel, x: torch.Tensor, labels: np.ndarray | None,
                     reference: np.ndarray | None = None, module: nn.Module | None = None) -> pd.DataFrame:
    """Score and agreement with fp32 for weight fake quantization at 8, 6, 4, 3, 2 bits, per channel and per tensor.
    `module`: the model's module in a form that runs faster (its flat graph), if there is one."""
    task = model.info.task
    module = model.module if module is None else module
    if reference is None:
        reference = model.predict_proba(x)
    rows = [{"bits": 32, "granularity": g, "score": _score(task, reference, labels),
             "agreement": 1.0 if task == "classification" else None, "divergence": 0.0}
            for g in ("per-channel", "per-tensor")]
    for per_channel in (True, False):
        for bits in BITS:
            rounded = dataclasses.replace(model, module=_copy_with_weights(module, bits, per_channel, 0.0))
            out = rounded.predict_proba(x)
            rows.append({"bits": bits, "granularity": "per-channel" if per_channel else "per-tensor",
                         "score": _score(task, out, labels),
                         "agreement": scoring.agreement(reference, out) if task == "classification" else None,
                         "divergence": _divergence(task, reference, out)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- explanation drift


def _drift(model, data, x, variants: dict[str, Variant], background, n: int, seed: int):
    """Explanations of the same inputs by fp32 and by every variant, and how far each variant's moved."""
    from xai_core.metrics import rank_correlation, top_k_overlap

    if n <= 0:
        return {}, {}, {}
    n = min(n, len(x))
    rows: dict[str, dict] = {}
    values: dict[str, np.ndarray] = {}
    if model.info.input_kind == "image":
        from xai_core.attribution.image import explain_batch

        images = data.images[:n]
        base = explain_batch(model, images, "grad_cam")
        targets = base.targets
        reference = {"kind": "image", "method": "Grad-CAM", "maps": base.maps, "targets": targets, "images": images,
                     "layer": base.layer}
        occlusion_base = None
        window = max(4, images.shape[2] // 8)
        occlusion = {"window": window, "stride": window}  # non-overlapping patches: 64 model runs per image
        for label, variant in variants.items():
            if variant.spec == FP32:
                continue
            maps = explain_batch(variant.gradient_model, images, "grad_cam", targets=targets, layer=base.layer).maps
            values[label] = maps
            metrics = {"Grad-CAM rank correlation": _mean_pairs(rank_correlation, base.maps, maps),
                       "Grad-CAM top-10% pixel overlap": _mean_pairs(lambda a, b: top_k_overlap(a, b, 0.1), base.maps, maps)}
            method = ("Grad-CAM on the fake-quant twin" if variant.twin is not None else
                      "Grad-CAM on its float32 emulation" if variant.emulated is not None else "Grad-CAM")
            if variant.twin is not None:
                if occlusion_base is None:
                    occlusion_base = explain_batch(model, images, "occlusion", targets=targets, **occlusion).maps
                occ = explain_batch(variant.model, images, "occlusion", targets=targets, **occlusion).maps
                metrics["occlusion rank correlation"] = _mean_pairs(rank_correlation, occlusion_base, occ)
                method += "; occlusion on the real int8 model"
            rows[label] = {"metrics": metrics, "method": method}
        return reference, values, rows

    from xai_core.attribution.shapley import make_background, model_output_fn, shapley_values

    X = data.X.iloc[:n]
    bg = make_background(background.X if background is not None else data.X, kind="mean")
    base = shapley_values(model_output_fn(model), X, background=bg, seed=seed)
    outputs = base.outputs
    explained = outputs.argmax(axis=1) if model.info.task == "classification" else np.zeros(n, dtype=int)
    rows_idx = np.arange(n)
    ref_values = base.values[rows_idx, :, explained]
    k = min(5, ref_values.shape[1])
    reference = {"kind": "tabular", "method": base.method, "values": ref_values, "feature_names": base.feature_names,
                 "explained": [base.output_names[i] for i in explained], "rows": X}
    for label, variant in variants.items():
        if variant.spec == FP32:
            continue
        phi = shapley_values(model_output_fn(variant.answer_model), X, background=bg, seed=seed).values[rows_idx, :, explained]
        values[label] = phi
        rows[label] = {"metrics": {"SHAP rank correlation": _mean_pairs(rank_correlation, ref_values, phi),
                                   f"SHAP top-{k} feature overlap": _mean_pairs(lambda a, b: top_k_overlap(np.abs(a), np.abs(b), k), ref_values, phi)},
                       "method": base.method + (" on the real int8 model" if variant.spec.real_int8 else
                                                " on its float32 emulation" if variant.emulated is not None else "")}
    return reference, values, rows


def _mean_pairs(fn, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([fn(x, y) for x, y in zip(a, b)]))

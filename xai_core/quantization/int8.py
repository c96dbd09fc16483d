"""Real int8 with `torch.ao.quantization` (fbgemm/x86 kernels, the working int8 path on CPU), and its fake-quant twin.

Both quantizers take the lifted graph (see `lifting`): dynamic int8 swaps its Linear and LSTM layers for int8 ones
(weights int8 per tensor, activations quantized per batch on the fly, so an answer depends on the batch it ran in); static int8 runs FX graph mode (conv + BN + ReLU fused,
weights int8 per channel, activation ranges calibrated on a sample of the data).

Real int8 modules have no autograd, so gradient methods explain a *twin*: the float model, in its own layer structure
(Grad-CAM finds the same layers), holding exactly the int8 model's dequantized weights and biases (an LSTM's too). Where static int8
folded a batch norm into the convolution before it, the twin's convolution holds the folded weight and the batch
norm is replaced by the folded bias. For static int8 the twin also rounds what the int8 model rounds at the layers it
can map: the model's input, the input of every int8 layer that follows a float op, and the output of every int8
convolution and linear layer (with the calibrated scales and zero points; rounding is differentiable by the
straight-through rule). The rounding of residual additions and pooling is not simulated; dynamic int8's activations
are not either (their scale changes with every batch).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.quantization.half import with_forward
from xai_core.quantization.lifting import Lifted
from xai_core.torch_internals import (copy_module, ensure_subsystems, static_int8_qconfig_mapping,
                                     tracing_confined_to_this_thread)

# torch.ao.quantization announces its move to torchao (and its quantized-tensor helpers theirs); only those
# deprecation notices are silenced, and only around the quantization calls.
_DEPRECATION = r"(?s).*deprecat"


DYNAMIC_LAYERS = (nn.Linear, nn.LSTM)  # what dynamic int8 converts (LSTMs once lifted from aten.lstm, see lifting)


def quantize_dynamic(lifted: nn.Module) -> nn.Module:
    """Linear and LSTM layers of `lifted` (a copy is made) in int8, activations quantized per batch."""
    ensure_subsystems()
    from torch.ao.quantization import quantize_dynamic as ao_quantize_dynamic

    if not any(isinstance(m, DYNAMIC_LAYERS) for m in lifted.modules()):
        raise XaiError("Dynamic int8 quantizes Linear and LSTM layers, and this model has none. Use static int8.")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION)
        return ao_quantize_dynamic(lifted, set(DYNAMIC_LAYERS), dtype=torch.qint8).eval()


def quantize_static(lifted: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """`lifted` (consumed: pass a copy) calibrated on `calibration` and converted to int8 by FX graph mode."""
    ensure_subsystems()
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if calibration is None or len(calibration) == 0:
        raise XaiError("Static int8 needs calibration data: load some images or rows first.")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION)
        try:
            with tracing_confined_to_this_thread():
                prepared = prepare_fx(lifted, static_int8_qconfig_mapping(), (calibration[:2],))
        except Exception as exc:
            raise XaiError(f"Static int8 could not prepare this model: {_first_line(exc)}") from None
        with torch.no_grad():
            for start in range(0, len(calibration), 64):
                prepared(calibration[start : start + 64])
        try:
            with tracing_confined_to_this_thread():
                return convert_fx(prepared).eval()
        except Exception as exc:
            raise XaiError(f"Static int8 could not convert this model: {_first_line(exc)}") from None


def check_runs(int8: torch.fx.GraphModule | nn.Module, example: torch.Tensor, kind: str, lifted: Lifted) -> None:
    """Run the int8 model once per node on `example`; a failure names the node and the layer it came from."""
    from torch.fx import Interpreter

    if not isinstance(int8, torch.fx.GraphModule):
        return
    with torch.no_grad():
        interpreter = Interpreter(int8)
        current = {"node": None}
        run_node = interpreter.run_node

        def tracked(node):
            current["node"] = node
            return run_node(node)

        interpreter.run_node = tracked
        try:
            interpreter.run(example)
        except Exception as exc:
            node = current["node"]
            where = "?" if node is None else lifted.layer_of(node.target if node.op == "call_module" else node.name)
            raise XaiError(f"{kind} builds, but its layer {where} cannot run in int8 on this CPU "
                           f"({_first_line(exc)[:160]}). Use the other int8 mode or weight fake quantization.") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ---------------------------------------------------------------------------------------- the twin


def _quantized_layers(int8: nn.Module) -> dict[str, nn.Module]:
    """name → int8 conv/linear module (static, fused or not, and dynamic), as named in the lifted graph."""
    import torch.ao.nn.quantized as nnq
    from torch.ao.nn.quantized.modules.conv import _ConvNd

    return {name: m for name, m in int8.named_modules() if isinstance(m, (nnq.Linear, _ConvNd))}


def dequantized_weights(int8: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """name → (weight().dequantize(), bias()) of every int8 conv/linear layer: what the twin holds."""
    out = {}
    for name, layer in _quantized_layers(int8).items():
        bias = layer.bias()
        out[name] = (layer.weight().dequantize(), None if bias is None else bias.detach().clone())
    return out


class FoldedBias(nn.Module):
    """What is left of a batch norm that static int8 folded into the convolution before it: the folded bias,
    and (in a static twin) the rounding of the fused layer's output."""

    def __init__(self, bias: torch.Tensor | None, out_qparams: tuple[float, int, int, int] | None = None):
        super().__init__()
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.out_qparams = out_qparams

    def forward(self, x):
        if self.bias is not None:
            x = x + self.bias.view(1, -1, *([1] * (x.ndim - 2)))
        return _fake_quant(x, self.out_qparams)


def _fake_quant(x: torch.Tensor, qparams: tuple[float, int, int, int] | None) -> torch.Tensor:
    if qparams is None:
        return x
    scale, zero_point, low, high = qparams
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, low, high)


def _range(dtype: torch.dtype) -> tuple[int, int]:
    return (0, 255) if dtype == torch.quint8 else (-128, 127)


def _output_qparams(layer: nn.Module) -> tuple[float, int, int, int] | None:
    """Scale, zero point and integer range a static int8 layer rounds its (quint8) output to."""
    scale, zero_point = getattr(layer, "scale", None), getattr(layer, "zero_point", None)
    if not isinstance(scale, float) or not isinstance(zero_point, int):
        return None
    return scale, zero_point, *_range(torch.quint8)


def _quantize_qparams(int8: torch.fx.GraphModule, node: torch.fx.Node) -> tuple[float, int, int, int]:
    scale, zero_point, dtype = node.args[1:4]
    scale = getattr(int8, scale.target) if isinstance(scale, torch.fx.Node) else scale
    zero_point = getattr(int8, zero_point.target) if isinstance(zero_point, torch.fx.Node) else zero_point
    return float(scale), int(zero_point), *_range(dtype)


def _quantized_inputs(int8: nn.Module) -> tuple[tuple | None, dict[str, tuple]]:
    """Where static int8 quantizes a float tensor: the model's input, and the input of int8 layers fed by float ops
    (name → scale, zero point, integer range)."""
    if not isinstance(int8, torch.fx.GraphModule):
        return None, {}
    model_input, layers = None, {}
    for node in int8.graph.nodes:
        if node.op != "call_function" or node.target is not torch.quantize_per_tensor:
            continue
        qparams = _quantize_qparams(int8, node)
        if getattr(node.args[0], "op", None) == "placeholder":
            model_input = qparams
        for user in node.users:
            if user.op == "call_module":
                layers[user.target] = qparams
    return model_input, layers


def _dynamic_lstms(int8: nn.Module) -> dict[str, nn.Module]:
    """name → int8 dynamic LSTM (as named in the lifted graph: `<LiftedLSTM>.lstm`)."""
    import torch.ao.nn.quantized.dynamic as nnqd

    return {name: m for name, m in int8.named_modules() if isinstance(m, nnqd.LSTM)}


def dequantized_lstm_weights(int8: nn.Module, lifted: Lifted) -> dict[str, torch.Tensor]:
    """Original parameter path → the int8 LSTM's weight, dequantized (or its float bias), for every dynamic LSTM."""
    out = {}
    for name, layer in _dynamic_lstms(int8).items():
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        sources = getattr(lifted.module.get_submodule(parent), "sources", None) if parent else None
        if not sources:
            raise XaiError(f"The fake-quant twin cannot find the float LSTM of int8 layer {name}.")
        packed = layer._weight_bias()
        for key, value in {**packed["weight"], **packed["bias"]}.items():
            if key not in sources:
                raise XaiError(f"The fake-quant twin cannot find {key} of int8 LSTM {name}.")
            value = value.dequantize() if value.is_quantized else value
            out[sources[key]] = value.detach().float().clone()
    return out


def _folded_batch_norms(lifted: Lifted, int8: nn.Module) -> dict[str, str]:
    """Lifted conv/linear name → the lifted batch norm that static int8 folded into it."""
    present = dict(int8.named_modules())
    folded = {}
    for node in lifted.module.graph.nodes:
        if node.op != "call_module" or not isinstance(lifted.module.get_submodule(node.target),
                                                      nn.modules.batchnorm._BatchNorm):
            continue
        source = node.args[0]
        if (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1
                and source.target in lifted.origins and node.target not in present):
            folded[source.target] = node.target
    return folded


def build_twin(float_module: nn.Module, lifted: Lifted, int8: nn.Module, simulate_activations: bool) -> nn.Module:
    """The twin of `int8` (built from `lifted`) in `float_module`'s own structure: see the module docstring.
    `float_module` is the float model the int8 one was built from (after pruning); it is copied, not changed."""
    twin = copy_module(float_module).eval()
    parameters = dict(twin.named_parameters())
    modules = dict(twin.named_modules())
    folded = _folded_batch_norms(lifted, int8)
    model_input, layer_inputs = _quantized_inputs(int8) if simulate_activations else (None, {})
    wrapped: set[str] = set()
    for name, layer in _quantized_layers(int8).items():
        origin = lifted.origins.get(name)
        if origin is None or origin.weight not in parameters:
            raise XaiError(f"The fake-quant twin cannot find the float layer of int8 layer {name}.")
        weight = layer.weight().dequantize()
        bias = layer.bias()
        target = parameters[origin.weight]
        if target.shape != weight.shape:
            raise XaiError(f"The fake-quant twin's layer {origin.module} does not match int8 layer {name}.")
        qparams = _output_qparams(layer) if simulate_activations else None
        leaf = modules.get(origin.module)
        simulated = leaf is not None and origin.module not in wrapped and _computes_only(leaf, origin)
        if simulated and (name in layer_inputs or (qparams is not None and name not in folded)):
            wrapped.add(origin.module)
            with_forward(leaf, _rounding(type(leaf), layer_inputs.get(name), None if name in folded else qparams))
        with torch.no_grad():
            target.copy_(weight)
            if name in folded:  # the batch norm after it was folded in: its bias and rounding move to the BN's place
                if origin.bias is not None:
                    parameters[origin.bias].zero_()
                bn_path = lifted.origins[folded[name]].module
                if not bn_path or bn_path not in modules or bn_path == origin.module:
                    raise XaiError(f"The fake-quant twin cannot replace the batch norm folded into {origin.module}.")
                twin.set_submodule(bn_path, FoldedBias(bias, qparams))
                continue
            if origin.bias is not None:
                parameters[origin.bias].copy_(bias)
            elif bias is not None and bool(torch.any(bias != 0)):
                raise XaiError(f"The fake-quant twin's layer {origin.module} has no bias for int8 layer {name}'s.")
    for path, value in dequantized_lstm_weights(int8, lifted).items():
        if path not in parameters or parameters[path].shape != value.shape:
            raise XaiError(f"The fake-quant twin has no LSTM parameter {path} shaped like the int8 model's.")
        with torch.no_grad():
            parameters[path].copy_(value)
    if model_input is not None:
        with_forward(twin, _rounding(type(twin), model_input, None))
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    return twin


def _computes_only(module: nn.Module, origin) -> bool:
    """Whether `module` is the conv/linear layer itself (its output is the layer's), not a block owning its weight."""
    own = {n for n, _ in module.named_parameters()}
    allowed = {origin.weight.rsplit(".", 1)[-1]} | ({origin.bias.rsplit(".", 1)[-1]} if origin.bias else set())
    return own == allowed and not any(True for _ in module.children())


def _rounding(base: type, inputs, outputs):
    """A forward that rounds the first input and the output as int8 does (either may be None: not rounded)."""
    def forward(self, x, *args, **kwargs):
        return _fake_quant(base.forward(self, _fake_quant(x, inputs), *args, **kwargs), outputs)

    return forward

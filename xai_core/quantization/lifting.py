"""Lifting: re-export a model with `torch.export` and turn its ATen graph back into the nn layers FX quantization knows.

The export keeps the batch dimension symbolic (`torch.export.Dim`), so reshapes read the batch size from the input
instead of freezing the example's: the lifted graph, and the int8 models built from it, run at any batch size.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.torch_internals import EXPORT_LOCK, copy_module, tracing_confined_to_this_thread

_aten = torch.ops.aten
MAX_BATCH = 1 << 16


@dataclass(frozen=True)
class LayerOrigin:
    """Where a lifted layer's tensors live in the original model: dotted paths as in `named_parameters()`."""

    module: str  # the module owning the weight (conv/linear) or the running statistics (batch norm)
    weight: str | None = None
    bias: str | None = None


@dataclass
class Lifted:
    """A model lifted once (see `lift`): variants copy `module`, never change it."""

    module: torch.fx.GraphModule
    origins: dict[str, LayerOrigin]  # lifted conv/linear/batch-norm name → where its tensors live in the model
    float_ops: list[str]  # ATen ops left (they run in float between dequantize and quantize), with their layer
    node_layers: dict[str, str]  # graph node name → the model's layer it computes (for error messages)

    def copy(self) -> torch.fx.GraphModule:
        return copy_module(self.module)

    def layer_of(self, name: str) -> str:
        """The model's own name for lifted module or node `name`."""
        origin = self.origins.get(name)
        return origin.module if origin is not None else self.node_layers.get(name, name)


class LiftedLSTM(nn.Module):
    """`aten.lstm.input` as a module: an `nn.LSTM` (which dynamic int8 converts), called as the ATen op is: input and
    [h0, c0] in, (output, h, c) out. `sources`: each LSTM parameter → its dotted path in the original model."""

    def __init__(self, lstm: nn.LSTM, sources: dict[str, str]):
        super().__init__()
        self.lstm, self.sources = lstm, dict(sources)

    def forward(self, x, hx):
        # The export made the initial state in float32; a half-precision copy runs it in its own type.
        out, (h, c) = self.lstm(x, (hx[0].to(x.dtype), hx[1].to(x.dtype)))
        return out, h, c


def _attr(root: nn.Module, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


def export_with_dynamic_batch(module: nn.Module, example: torch.Tensor):
    """`torch.export` of a copy of `module` in eval mode, with the batch dimension left symbolic."""
    if example.shape[0] < 2:  # export specialises sizes 0 and 1: an example of 1 would freeze the batch
        example = example.expand(2, *example.shape[1:]).contiguous()
    shapes = torch.export.ShapesCollection()  # by tensor, whatever the forward's signature (*args when unflattened)
    shapes[example] = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    try:
        with warnings.catch_warnings(), tracing_confined_to_this_thread():  # export is not thread-safe either
            warnings.simplefilter("ignore")
            return torch.export.export(copy_module(module).eval(), (example,), dynamic_shapes=shapes,
                                       strict=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        hint = (" The model fixes its batch size somewhere (e.g. a reshape with a constant first dimension); write "
                "it with x.shape[0] or -1." if "batch" in str(exc) or "Constraint" in type(exc).__name__ else "")
        raise XaiError(f"Real int8 needs the model re-exported with torch.export, which failed: {first}.{hint}") from None


def reusable_program(module: nn.Module):
    """The program `module` was loaded from, when lifting can start from it instead of exporting again: a `.pt2`
    whose one input already has a symbolic batch dimension (None otherwise: then `export_with_dynamic_batch`)."""
    from xai_core.loading import exported_program

    program = exported_program(module)
    if program is None:
        return None
    inputs = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in inputs]
    if len(placeholders) != 1 or "val" not in placeholders[0].meta:
        return None
    shape = placeholders[0].meta["val"].shape
    return program if len(shape) > 0 and isinstance(shape[0], torch.SymInt) else None


def _own_tensors(gm: nn.Module) -> None:
    """Give every parameter and buffer of `gm` a copy of its own."""
    with torch.no_grad():
        for sub in gm.modules():
            for key, value in list(sub._parameters.items()):
                if value is not None:
                    sub._parameters[key] = nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad)
            for key, value in list(sub._buffers.items()):
                if value is not None:
                    sub._buffers[key] = value.clone()


def _constant_weights(args) -> bool:
    """A conv/linear call whose weight and bias are the model's own tensors (not computed, like swin_v2's q/v bias):
    only those become layers int8 can take."""
    weight, bias = args[1], args[2] if len(args) > 2 else None
    return (isinstance(weight, torch.fx.Node) and weight.op == "get_attr"
            and (bias is None or isinstance(bias, torch.fx.Node) and bias.op == "get_attr"))


def _inplace_is_safe(node: torch.fx.Node) -> bool:
    """An in-place op can become its out-of-place form when nothing reads its input after it."""
    source = node.args[0]
    if not isinstance(source, torch.fx.Node):
        return False
    later = False
    for other in node.graph.nodes:
        if other is node:
            later = True
        elif later and source in other.all_input_nodes:
            return False
    return True


# ATen ops that become the torch functions or tensor methods FX quantization recognises (shape ops share the
# quantization parameters of their input and run on int8 tensors; anything left as an ATen op runs in float).
_FUNCTIONS = {
    _aten.add.Tensor: operator.add,
    _aten.mul.Tensor: operator.mul,
    _aten.flatten.using_ints: torch.flatten,
    _aten.cat.default: torch.cat,
    _aten.transpose.int: torch.transpose,
    _aten.unsqueeze.default: torch.unsqueeze,
}  # not mean: quantized mean over (2, 3) of a channels-last tensor fails ("required rank 4 tensor") in torch 2.14
_METHODS = {_aten.view.default: "reshape", _aten.reshape.default: "reshape", _aten.permute.default: "permute",
            _aten.contiguous.default: "contiguous"}
_INPLACE = {_aten.add_.Tensor: operator.add, _aten.mul_.Tensor: operator.mul}
_ACTIVATIONS = {_aten.relu.default: nn.ReLU, _aten.relu_.default: nn.ReLU, _aten.hardswish.default: nn.Hardswish,
                _aten.hardswish_.default: nn.Hardswish, _aten.hardsigmoid.default: nn.Hardsigmoid,
                _aten.hardsigmoid_.default: nn.Hardsigmoid}
_INPLACE_ACTIVATIONS = {_aten.relu_.default, _aten.hardswish_.default, _aten.hardsigmoid_.default,
                        _aten.hardtanh_.default}
_NOT_COMPUTING = {_aten.sym_size.int, _aten.sym_numel.default, _aten._assert_scalar.default,
                  _aten.sym_constrain_range_for_size.default, _aten._assert_tensor_metadata.default}


def _lift_lstm(node, args, gm, tensor, add_module) -> bool:
    """Replace an `aten.lstm.input` call by a `LiftedLSTM` (False, left as it is, when it cannot be)."""
    if len(args) != 9 or node.kwargs:
        return False
    x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
    if train or not params or not all(isinstance(p, torch.fx.Node) and p.op == "get_attr" for p in params):
        return False
    w_ih, w_hh = tensor(params[0]), tensor(params[1])
    if w_hh.shape[1] * 4 != w_ih.shape[0]:
        return False  # projections (proj_size) are not lifted
    lstm = nn.LSTM(w_ih.shape[1], w_hh.shape[1], num_layers=num_layers, bias=has_biases, batch_first=batch_first,
                   dropout=dropout, bidirectional=bidirectional)
    names = list(lstm._flat_weights_names)
    if len(names) != len(params):
        return False
    with torch.no_grad():
        for name, p in zip(names, params):
            value = tensor(p)
            if getattr(lstm, name).shape != value.shape:
                return False
            getattr(lstm, name).copy_(value)
    sources = {name: p.target for name, p in zip(names, params)}
    owner = params[0].target.rsplit(".", 1)[0] if "." in params[0].target else ""
    add_module(node, owner or "lstm", LiftedLSTM(lstm, sources), x, LayerOrigin(owner), extra=(hx,))
    return True


def lift_to_modules(module: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """`lift(module, example).module`: the lifted graph, with `float_ops` and `origins` as attributes."""
    lifted = lift(module, example)
    graph = lifted.module
    graph.float_ops, graph.origins = lifted.float_ops, lifted.origins
    return graph


def lift(module: nn.Module, example: torch.Tensor) -> Lifted:
    """Export `module` (batch left symbolic) and turn its ATen graph back into nn layers FX quantization understands.

    conv2d / linear / batch_norm (eval) / relu, hardswish, hardsigmoid, relu6 / pools become `nn` modules named after
    the original layers; add, mul, flatten, cat, reshape, transpose… become their torch functions; eval dropout goes.
    Anything else stays as the ATen op (it will run in float between dequantize and quantize). The result computes
    exactly what `module` does, at any batch size.
    """
    program = reusable_program(module)
    reused = program is not None
    if not reused:
        program = export_with_dynamic_batch(module, example)
    with EXPORT_LOCK:
        gm = program.module()  # a new graph module: the program itself is never edited
    if reused:  # the loaded program holds the shared model's own tensors: the lifted graph gets copies
        _own_tensors(gm)
    graph = gm.graph
    used: set[str] = set()
    origins: dict[str, LayerOrigin] = {}

    def add_module(node, base: str, mod: nn.Module, x, origin: LayerOrigin | None = None, extra: tuple = ()) -> None:
        name = base.replace(".", "_") or "layer"
        while name in used or hasattr(gm, name):
            name += "_"
        used.add(name)
        gm.add_submodule(name, mod)
        if origin is not None:
            origins[name] = origin
        with graph.inserting_before(node):
            new = graph.call_module(name, (x, *extra))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)

    def tensor(node):
        return _attr(gm, node.target).detach().clone()

    def owner(node) -> str:
        return node.target.rsplit(".", 1)[0] if node is not None and node.op == "get_attr" else ""

    def retarget(node, op: str, target) -> None:
        with graph.inserting_before(node):
            new = graph.create_node(op, target, node.args, dict(node.kwargs))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)

    for node in list(graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            graph.erase_node(node)
            continue
        if node.op != "call_function":
            continue
        target, args = node.target, list(node.args)
        if target in _INPLACE_ACTIVATIONS | set(_INPLACE) and not _inplace_is_safe(node):
            continue
        if target is _aten.conv2d.default and _constant_weights(args) and not node.kwargs:
            x, w, b, *rest = args + [None] * (3 - len(args))
            stride, padding, dilation, groups = (list(rest) + [1, 0, 1, 1][len(rest):])[:4]
            if isinstance(padding, str):  # padding="same"/"valid": leave the ATen op (it runs in float)
                continue
            weight = tensor(w)
            conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=stride,
                             padding=padding, dilation=dilation, groups=groups, bias=b is not None)
            conv.weight = nn.Parameter(weight)
            if b is not None:
                conv.bias = nn.Parameter(tensor(b))
            add_module(node, owner(w), conv, x, LayerOrigin(owner(w), w.target, None if b is None else b.target))
        elif target is _aten.linear.default and _constant_weights(args):
            x, w, b = (args + [None])[:3]
            weight = tensor(w)
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=b is not None)
            linear.weight = nn.Parameter(weight)
            if b is not None:
                linear.bias = nn.Parameter(tensor(b))
            add_module(node, owner(w), linear, x, LayerOrigin(owner(w), w.target, None if b is None else b.target))
        elif target is _aten.batch_norm.default and args[5] is False and all(a is not None for a in args[1:5]):
            x, w, b, mean, var, _, momentum, eps, _ = args
            rank = len(x.meta["val"].shape) if "val" in x.meta else 4
            bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(tensor(mean).numel(), eps=eps, momentum=momentum)
            bn.weight, bn.bias = nn.Parameter(tensor(w)), nn.Parameter(tensor(b))
            bn.running_mean.copy_(tensor(mean))
            bn.running_var.copy_(tensor(var))
            bn.to(tensor(w).dtype)
            add_module(node, owner(mean), bn, x, LayerOrigin(owner(mean)))
        elif target is _aten.lstm.input and _lift_lstm(node, args, gm, tensor, add_module):
            pass
        elif target in _ACTIVATIONS:
            add_module(node, f"{_ACTIVATIONS[target].__name__.lower()}_{len(used)}", _ACTIVATIONS[target](), args[0])
        elif target in (_aten.hardtanh.default, _aten.hardtanh_.default):
            low, high = (list(args[1:]) + [-1.0, 1.0][len(args) - 1:])[:2]
            layer = nn.ReLU6() if (low, high) == (0.0, 6.0) else nn.Hardtanh(low, high)
            add_module(node, f"hardtanh_{len(used)}", layer, args[0])
        elif target is _aten.adaptive_avg_pool2d.default:
            add_module(node, f"pool_{len(used)}", nn.AdaptiveAvgPool2d(tuple(args[1])), args[0])
        elif target is _aten.max_pool2d.default:
            x, kernel, *rest = args
            stride, padding, dilation, ceil = (list(rest) + [kernel, 0, 1, False][len(rest):])[:4]
            add_module(node, f"maxpool_{len(used)}", nn.MaxPool2d(kernel, stride or kernel, padding, dilation,
                                                                  ceil_mode=ceil), x)
        elif target in (_aten.dropout.default, _aten.dropout_.default) and args[2] is False:
            node.replace_all_uses_with(args[0])
            graph.erase_node(node)
        elif target in _INPLACE and len(args) == 2 and not node.kwargs:
            retarget(node, "call_function", _INPLACE[target])
        elif target in _FUNCTIONS and not (target in (_aten.add.Tensor, _aten.mul.Tensor)
                                           and (len(args) != 2 or node.kwargs)):
            node.target = _FUNCTIONS[target]
        elif target in _METHODS:
            retarget(node, "call_method", _METHODS[target])
    graph.eliminate_dead_code()
    float_ops, node_layers = [], {}
    for node in graph.nodes:
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        if stack and stack[-1][0]:
            node_layers[node.name] = stack[-1][0]
        if (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
                and node.target not in _NOT_COMPUTING):
            where = f" in {stack[-1][0]}" if stack and stack[-1][0] else ""
            float_ops.append(f"{node.target.__name__.split('.')[0]}{where}")
        node.meta = {}
    graph.lint()
    lifted = torch.fx.GraphModule(gm, graph)  # a plain GraphModule (the exported one refuses .eval())
    lifted.delete_all_unused_submodules()
    return Lifted(lifted.eval(), {name: origin for name, origin in origins.items() if hasattr(lifted, name)},
                  list(dict.fromkeys(float_ops)), node_layers)

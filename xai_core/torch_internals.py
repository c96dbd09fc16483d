"""Everything that reaches into torch's private machinery, in one place, checked against the torch it was written for.

- `ensure_subsystems()`: torch.export, dynamo, FX and torch.ao quantization are imported once, under one lock, before
  any caller uses them. Two browser sessions importing them at the same time get partially initialised modules
  ("cannot import name … from partially initialized module 'torch._dynamo.source'") and, worse, a process whose
  `torch._dynamo` stays broken for every later call. A failed import is rolled back so that the next call retries.
- `weights_only_unpickling()`: while `torch.export.load` runs, every `torch.load` is weights_only and raw pickle refused.
- `tracing_confined_to_this_thread()`: FX symbolic tracing patches process-wide functions; this confines the patches to
  the tracing thread.
- `hook_snapshot()` / `restore_hooks()`: a pooled model copy goes back to exactly the hooks it had, no more, no fewer.
- `run_generated_code()`: an unflattened torch.export program runs its generated code, not the FX interpreter.
- `copy_module()`: a deep copy whose unflattened submodules share their generated code instead of compiling it again.
- `static_int8_qconfig_mapping()`: torch.ao's default x86 mapping, its HistogramObservers' range search run on Python
  floats instead of one-element tensors (the same ranges, bit for bit).

`check_torch_version()` names the torch releases these patches were checked on; a test fails loudly on any other, so
an upgrade is a deliberate step (re-run the tests, then widen `CHECKED_TORCH`).
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import importlib
import pickle
import struct
import sys
import threading

import torch
from torch import nn

from xai_core.errors import XaiError

# torch releases (major, minor) whose private APIs below were read and tested.
CHECKED_TORCH = ((2, 13), (2, 14))

# Imported together, in this order, by `ensure_subsystems` (torch.export pulls in dynamo and FX).
SUBSYSTEMS = (
    "torch.fx",
    "torch._dynamo",
    "torch.export",
    "torch.export.pt2_archive._package",
    "torch.ao.quantization",
    "torch.ao.quantization.quantize_fx",
    "torch.fx._symbolic_trace",
)
_ROLLBACK_PREFIXES = ("torch._dynamo", "torch.export", "torch._export", "torch.ao.quantization", "torch._functorch",
                      "torch._inductor", "torch.fx.experimental")

_import_lock = threading.Lock()
_imported = False


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def check_torch_version() -> None:
    """Raise if torch is not a release the private patches here were checked on."""
    if torch_version() not in CHECKED_TORCH:
        raise RuntimeError(f"xai_core.torch_internals was checked on torch {CHECKED_TORCH}, this is {torch.__version__}: "
                           "re-run the test suite and update CHECKED_TORCH after reviewing the patched private APIs.")


def ensure_subsystems() -> None:
    """Import torch.export / dynamo / FX / torch.ao quantization once, one thread at a time; roll back a failure."""
    global _imported
    if _imported:
        return
    with _import_lock:
        if _imported:
            return
        before = set(sys.modules)
        try:
            for name in SUBSYSTEMS:
                importlib.import_module(name)
        except Exception as exc:
            for name in set(sys.modules) - before:
                if name.startswith(_ROLLBACK_PREFIXES):
                    sys.modules.pop(name, None)
            raise XaiError(f"PyTorch's export and quantization machinery failed to import ({type(exc).__name__}: "
                           f"{str(exc)[:200]}). Try again; if it persists, reinstall torch.") from exc
        _imported = True


# ---------------------------------------------------------------------------------------- export loading


@contextlib.contextmanager
def weights_only_unpickling(refusal: str):
    """While the block runs, every `torch.load` is weights_only and raw unpickling raises `XaiError(refusal)`.

    Process-wide: callers hold their own lock around it (see `loading._export_load_lock`).
    """
    ensure_subsystems()
    from torch.export.pt2_archive import _package

    original_load = torch.load
    original_pickle = _package.pickle
    original_pickle_load_obj = torch._C._pickle_load_obj

    def strict_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original_load(*args, **kwargs)

    def refuse(*_args, **_kwargs):
        raise XaiError(refusal)

    class _NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)
        UnpicklingError = pickle.UnpicklingError

    torch.load = strict_load
    _package.pickle = _NoPickle
    torch._C._pickle_load_obj = refuse
    try:
        yield
    finally:
        torch.load = original_load
        _package.pickle = original_pickle
        torch._C._pickle_load_obj = original_pickle_load_obj


# ---------------------------------------------------------------------------------------- FX tracing

# torch.export (export, load, unflatten) and FX tracing share global state (fake-tensor modes, shape environments,
# process-wide patches): one of them at a time. Re-entrant, since exporting happens inside confined tracing.
EXPORT_LOCK = threading.RLock()


@contextlib.contextmanager
def tracing_confined_to_this_thread():
    """FX symbolic tracing (inside prepare_fx / convert_fx, and torch.export) patches `nn.Module.__call__`,
    `__getattr__` and some functions for the whole process while it runs, so a forward pass in another browser session
    at that moment would be traced too and fail ("module is not installed as a submodule"). While this is held, each
    patch FX makes acts only in the thread that made it; every other thread gets the original. One tracing at a time."""
    ensure_subsystems()
    from torch.fx import _symbolic_trace as fx_trace

    def confined(new_fn, original):
        owner = threading.get_ident()

        def guarded(*args, **kwargs):
            if threading.get_ident() == owner:
                return new_fn(*args, **kwargs)
            return original(*args, **kwargs)

        functools.update_wrapper(guarded, new_fn)
        return guarded

    patch, patch_method = fx_trace._Patcher.patch, fx_trace._Patcher.patch_method

    def confined_patch(self, frame_dict, name, new_fn, deduplicate=True):
        original = frame_dict[name] if name in frame_dict else getattr(builtins, name, None)
        return patch(self, frame_dict, name, confined(new_fn, original), deduplicate)

    def confined_patch_method(self, cls, name, new_fn, deduplicate=True):
        return patch_method(self, cls, name, confined(new_fn, getattr(cls, name)), deduplicate)

    with EXPORT_LOCK:
        fx_trace._Patcher.patch, fx_trace._Patcher.patch_method = confined_patch, confined_patch_method
        try:
            yield
        finally:
            fx_trace._Patcher.patch, fx_trace._Patcher.patch_method = patch, patch_method


# ---------------------------------------------------------------------------------------- hooks

HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
              "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
              "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
HookSnapshot = dict[tuple[int, str], dict]


def hook_snapshot(module: nn.Module) -> HookSnapshot:
    """The hooks every submodule holds now (a copy of each hook dict), to restore later."""
    snapshot: HookSnapshot = {}
    for sub in module.modules():
        for name in HOOK_DICTS:
            hooks = getattr(sub, name, None)
            if hooks is not None:
                snapshot[(id(sub), name)] = dict(hooks)
    return snapshot


def restore_hooks(module: nn.Module, snapshot: HookSnapshot) -> None:
    """Put every hook dict of `module` back to `snapshot`: hooks added since are removed, the original ones kept."""
    for sub in module.modules():
        for name in HOOK_DICTS:
            hooks = getattr(sub, name, None)
            if hooks is None:
                continue
            before = snapshot.get((id(sub), name), {})
            if hooks.keys() != before.keys():
                hooks.clear()
                hooks.update(before)


def hook_count(module: nn.Module) -> int:
    """Number of forward/backward hooks on `module` and its submodules (for tests and assertions)."""
    return sum(len(getattr(sub, name, None) or {}) for sub in module.modules()
               for name in HOOK_DICTS[:7])


def run_generated_code(module: nn.Module) -> int:
    """Make every unflattened submodule run its graph's generated Python code instead of `torch.fx.Interpreter`.

    The interpreter walks the graph node by node on every call (≈0.4–1 ms per call of the breast cancer MLP, most of a
    small perturbation batch's cost); the generated code is what torch itself runs under dynamo. The tree, its
    submodules and hooks are unchanged (they are still called as modules). A graph edited later must be finalized
    again (`finalize()`), as transformer probes do. Returns how many submodules were switched.
    """
    switched = 0
    for submodule in module.modules():
        if hasattr(submodule, "_run_with_interpreter"):  # torch.export.unflatten's per-module switch (torch 2.13/2.14)
            # Unflattening rewrites graphs after generating their code (a module called twice, like ResNet's shared
            # ReLU, is renamed from `relu@1` back to `relu`): regenerate the code from the graph as it is now.
            submodule.finalize()
            submodule._run_with_interpreter = False
            switched += 1
    return switched


def copy_module(module: nn.Module) -> nn.Module:
    """`copy.deepcopy(module)`, except that unflattened torch.export submodules share their generated code.

    Each unflattened submodule keeps a GraphModule (`graph_module`, outside the module tree: no parameters of its own
    are used) only for its generated code, which `run_generated_code` makes its forward run on the submodule itself:
    every attribute the code reads is the submodule's, so the copy's. `copy.deepcopy` generated and compiled that code
    again for every submodule (57 in the ViT demo: ~80 ms a copy against ~13 ms shared, all of it holding the GIL, and
    a comparison copies the model about ten times). The copy gets the code alone (`_code_only`), not the original's
    GraphModule, so it holds no reference to the original's submodules. Its graphs are its own: a graph edited on the
    copy (transformer probes) and finalized gets code of its own, and the original's never changes.
    """
    memo: dict[int, object] = {}
    for submodule in module.modules():
        code = submodule.__dict__.get("graph_module") if hasattr(submodule, "_run_with_interpreter") else None
        if isinstance(code, nn.Module) and id(code) not in memo:
            memo[id(code)] = _code_only(code)
    return copy.deepcopy(module, memo)


def _code_only(graph_module: nn.Module) -> nn.Module:
    """An empty module of `graph_module`'s class, which holds its generated forward (FX makes a class per instance):
    the code and nothing else. The original GraphModule holds the original submodules and parameters; a copy holding
    it would keep the whole original model alive (and in a pickle of the copy) for as long as the copy lives."""
    holder = object.__new__(type(graph_module))  # not GraphModule.__new__, which would make yet another class
    nn.Module.__init__(holder)
    return holder


# ---------------------------------------------------------------------------------------- static int8 calibration


_FLOAT32 = struct.Struct("f")


def _float32(value: float) -> float:
    """`value` rounded to float32 (to nearest, as a C cast), as a Python float."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _non_linear_param_search(self) -> tuple[torch.Tensor, torch.Tensor]:
    """`HistogramObserver._non_linear_param_search` of torch 2.13/2.14, step for step, with its loop on Python floats.

    torch's walks the cumulative histogram one element at a time as 0-dim tensors (`cSum[l] < next_alpha * total`):
    for a ViT's 101 observers ~0.2 s of tiny ops, each of which gives up and takes back the GIL, so the static int8
    build crawled beside any other Python thread. Here the cumulative histogram is a list of the same float32 values,
    and each bound is rounded to float32 before it is compared, as torch compares a float32 tensor with a Python float.
    The quantization error of each candidate range is torch's own `_compute_quantization_error`.
    """
    if self.histogram.size()[0] != self.bins:
        raise AssertionError("bins mismatch")
    bin_width = (self.max_val - self.min_val) / self.bins
    total = torch.sum(self.histogram).item()
    cumulative = torch.cumsum(self.histogram, dim=0).tolist()
    stepsize = 1e-5
    alpha, beta = 0.0, 1.0
    start_bin, end_bin = 0, self.bins - 1
    norm_min = float("inf")
    while alpha < beta:
        next_alpha = alpha + stepsize
        next_beta = beta - stepsize
        low, high = _float32(next_alpha * total), _float32(next_beta * total)
        left, right = start_bin, end_bin
        while left < end_bin and cumulative[left] < low:
            left += 1
        while right > start_bin and cumulative[right] > high:
            right -= 1
        next_start_bin, next_end_bin = start_bin, end_bin
        if (left - start_bin) > (end_bin - right):
            next_start_bin = left
            alpha = next_alpha
        else:
            next_end_bin = right
            beta = next_beta
        if next_start_bin == start_bin and next_end_bin == end_bin:
            continue
        norm = self._compute_quantization_error(next_start_bin, next_end_bin)
        if norm > norm_min:
            break
        norm_min = norm
        start_bin, end_bin = next_start_bin, next_end_bin
    return self.min_val + bin_width * start_bin, self.min_val + bin_width * (end_bin + 1)


@functools.cache
def fast_histogram_observer() -> type:
    """`HistogramObserver` with the range search above (a class made on first use: torch.ao imports slowly)."""
    ensure_subsystems()
    from torch.ao.quantization.observer import HistogramObserver

    observer = type("FastHistogramObserver", (HistogramObserver,), {
        "_non_linear_param_search": _non_linear_param_search, "__module__": __name__,
        "__doc__": "HistogramObserver whose range search runs on Python floats (`_non_linear_param_search`)."})
    globals()["FastHistogramObserver"] = observer  # where its name says it is: a prepared model can be pickled
    return observer


def static_int8_qconfig_mapping():
    """`get_default_qconfig_mapping("x86")` with every HistogramObserver (the activations') a `fast_histogram_observer`
    with the same arguments; everything else, weights' observers and fixed-range ops' included, as torch has it."""
    ensure_subsystems()
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import HistogramObserver

    fast = fast_histogram_observer()

    def swapped(qconfig):
        if qconfig is None:
            return None
        activation = qconfig.activation
        partial = getattr(activation, "p", None)
        if activation is HistogramObserver:
            return QConfig(activation=fast, weight=qconfig.weight)
        if partial is not None and partial.func is HistogramObserver and not partial.args:
            return QConfig(activation=fast.with_args(**partial.keywords), weight=qconfig.weight)
        return qconfig

    mapping = get_default_qconfig_mapping("x86")
    mapping.global_qconfig = swapped(mapping.global_qconfig)
    for table in (mapping.object_type_qconfigs, mapping.module_name_regex_qconfigs, mapping.module_name_qconfigs,
                  mapping.module_name_object_type_order_qconfigs):
        for key, qconfig in table.items():
            table[key] = swapped(qconfig)
    return mapping

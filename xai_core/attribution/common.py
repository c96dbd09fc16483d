"""What the image, table and text methods share: private model copies, seeded randomness, the method registry lookup."""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Callable, Mapping, TypeVar

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.model import LoadedModel
from xai_core.torch_internals import copy_module, hook_snapshot, restore_hooks
from xai_core.validation import did_you_mean

Spec = TypeVar("Spec")


class CopyPool:
    """Deep copies of shared models, lent to one call at a time. Hooks go on a copy, never on the shared module.
    A private model (`LoadedModel.private`: a variant its caller built for itself) is lent as it is, with the hooks a
    call added removed after it, as a copy's are.

    A copy is made once and reused, so a call pays no copying; at most `keep` idle copies per model are kept. A copy
    goes back with exactly the hooks it was made with (those a call added are removed, the model's own are kept).
    """

    def __init__(self, keep: int = 4, max_models: int = 8, prepare: Callable[[nn.Module], object] | None = None):
        self._free: collections.OrderedDict[tuple, list[nn.Module]] = collections.OrderedDict()
        self._prepare = prepare  # applied once to each new copy (e.g. routing attention through probes)
        self._lock = threading.Lock()
        self._keep = keep
        self._max_models = max_models  # idle copies of the least recently explained models beyond this are dropped

    @contextlib.contextmanager
    def borrow(self, model: LoadedModel):
        if model.private and self._prepare is None:  # built by its caller for itself: no one else runs it meanwhile
            module = _input_gradients_only(model.module)  # as a copy's
            with _lent(module, hook_snapshot(module)):
                yield module
            return
        if model.private:  # never pooled: its sha256 repeats across comparisons and its id may be reused once freed
            module = _private_copy(model.module)
            self._prepare(module)
            yield module
            return
        key = (model.sha256, id(model.module))
        with self._lock:
            free = self._free.setdefault(key, [])
            self._free.move_to_end(key)
            while len(self._free) > self._max_models:
                self._free.popitem(last=False)
            lent = free.pop() if free else None
        if lent is None:
            module = _private_copy(model.module)
            if self._prepare is not None:
                self._prepare(module)
            lent = (module, hook_snapshot(module))
        module, hooks = lent
        try:
            with _lent(module, hooks):
                yield module
        finally:
            with self._lock:
                free = self._free.get(key)
                if free is not None and len(free) < self._keep:
                    free.append(lent)


def _private_copy(module: nn.Module) -> nn.Module:
    try:
        clone = copy_module(module)
    except Exception as exc:  # e.g. some TorchScript modules; gradient-of-input methods still work on the original
        raise XaiError(f"This model cannot be copied for explaining ({type(exc).__name__}); export it to .pt2.") from None
    return _input_gradients_only(clone.eval())


def _input_gradients_only(module: nn.Module) -> nn.Module:
    """`module` with no parameter requiring gradients: explanations differentiate with respect to the inputs."""
    for parameter in module.parameters():
        try:
            parameter.requires_grad_(False)
        except RuntimeError:  # TorchScript parameters: Captum only differentiates w.r.t. inputs anyway
            break
    return module


@contextlib.contextmanager
def _lent(module: nn.Module, hooks):
    """Lend `module` to one call, then take back the hooks the call added (those it had stay) and its gradients."""
    try:
        yield module
    finally:
        restore_hooks(module, hooks)
        module.zero_grad(set_to_none=True)


# Captum's SmoothGrad and LIME draw from torch's global generator: one seeded block at a time in this process, or
# two sessions explaining at once reseed and consume each other's stream (and neither gets its seed's noise)
_GLOBAL_RNG = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global generator seeded, and restore the caller's random state after it. Blocks run
    one at a time (across threads), so each gets exactly its seed's stream."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def method_spec(methods: Mapping[str, Spec], method: str, kind: str) -> Spec:
    """The registry entry for `method`, or an error naming the choices (and the closest one)."""
    spec = methods.get(method)
    if spec is None:
        raise XaiError(f"Unknown {kind} method {method!r}; choose one of {sorted(methods)}."
                       f"{did_you_mean(str(method), methods)}")
    return spec


def method_settings(spec, settings):
    """`settings`, or the method's defaults when None; refuses another method's settings object."""
    if settings is None:
        return spec.settings()
    if not isinstance(settings, spec.settings):
        raise XaiError(f"{spec.name} takes {spec.settings.__name__}, not {type(settings).__name__}.")
    return settings

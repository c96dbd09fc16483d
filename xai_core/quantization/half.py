"""Half precision: the real fp16/bf16 model (timed), and its float32 emulation (answers and explanations).

CPUs without native half kernels (no AVX-512 FP16/BF16, AMX) run a half model tens of times slower than float32, so the
comparison times the real half model but reads its answers from the same computation in float32 with every weight,
input and layer output rounded to the half type (half kernels accumulate in float32 too; the two agree to within one
rounding step of the output, tested).
"""

from __future__ import annotations

import torch
from torch import nn

from xai_core.torch_internals import copy_module


def cast_io(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The module in `dtype`, taking and returning float32 (integer inputs such as token ids pass as they are), with
    its layer names unchanged (Grad-CAM finds them). Casts `module` itself: pass a copy."""
    cast = module.to(dtype)
    base = type(cast)
    if isinstance(cast, torch.jit.ScriptModule):
        return _CastWrapper(cast, dtype)

    def forward(self, x, *args, **kwargs):
        return base.forward(self, x.to(dtype) if x.is_floating_point() else x, *args, **kwargs).float()

    return with_forward(cast, forward)


def with_forward(module: nn.Module, forward) -> nn.Module:
    """`module` with `forward` in place of its class's (a subclass of the same name: layer names and hooks unchanged)."""
    base = type(module)
    module.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__})
    return module


def round_to(value, dtype: torch.dtype):
    """A floating tensor rounded to `dtype` and back to float32; anything else unchanged."""
    return value.to(dtype).float() if torch.is_tensor(value) and value.is_floating_point() else value


def emulate_half(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A float32 copy of `module` that computes what it computes in `dtype`: every parameter and buffer, the input and
    the output of every submodule rounded to `dtype`. Layer names unchanged, autograd kept.
    TorchScript hides its submodules: there only the weights, the input and the output are rounded."""
    clone = copy_module(module)
    with torch.no_grad():
        for tensor in [*clone.parameters(), *clone.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).float())
    if isinstance(clone, torch.jit.ScriptModule):
        return _CastWrapper(clone, dtype, emulate=True)
    for name, sub in clone.named_modules():
        base = type(sub)

        def forward(self, *args, _base=base, _root=not name, **kwargs):
            if _root:
                args = tuple(round_to(a, dtype) for a in args)
            return round_to(_base.forward(self, *args, **kwargs), dtype)

        with_forward(sub, forward)
    return clone.eval()


class _CastWrapper(nn.Module):
    """TorchScript in half precision (or its float32 emulation), taking and returning float32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype, emulate: bool = False):
        super().__init__()
        self.inner, self.dtype, self.emulate = inner, dtype, emulate

    def forward(self, x):
        if self.emulate:  # float32 inner model: round the input and output only
            return round_to(self.inner(round_to(x, self.dtype)), self.dtype)
        return self.inner(x.to(self.dtype) if x.is_floating_point() else x).float()

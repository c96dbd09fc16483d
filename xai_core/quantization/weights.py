"""Weights of conv/linear layers: symmetric fake quantization at 2–16 bits, magnitude pruning, and sizes."""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from xai_core.torch_internals import copy_module


def weight_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weight matrices: parameters with two or more dimensions named 'weight' (conv, linear, embedding), 'weight_*'
    (an LSTM's gates: weight_ih_l0, weight_hh_l0…) or '*_weight' (attention's in_proj_weight); not BN, not biases."""
    return [(n, p) for n, p in module.named_parameters() if p.ndim >= 2 and _is_weight_name(n.rsplit(".", 1)[-1])]


def _is_weight_name(leaf: str) -> bool:
    return leaf == "weight" or leaf.startswith("weight_") or leaf.endswith("_weight")


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


def copy_with_weights(module: nn.Module, bits: int | None, per_channel: bool, sparsity: float) -> nn.Module:
    """A copy of `module` whose conv/linear weights are pruned (`sparsity` > 0), then rounded to `bits` (unless None)."""
    clone = copy_module(module)
    with torch.no_grad():
        for _, parameter in weight_parameters(clone):
            value = magnitude_prune(parameter.data, sparsity) if sparsity > 0 else parameter.data
            if bits is not None:
                value = fake_quantize(value, bits, per_channel)
            parameter.data.copy_(value)
    return clone.eval()


def packed_size(module: nn.Module, bits: int, per_channel: bool, sparsity: float = 0.0) -> int:
    """Bytes the model takes with conv/linear weights packed at `bits` (plus a float32 scale per channel or tensor)
    and every other tensor in float32. Pruned weights are counted as a 1-bit mask plus the kept values, when smaller."""
    weights = {n for n, _ in weight_parameters(module)}
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

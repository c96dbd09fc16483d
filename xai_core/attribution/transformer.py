"""What transformers need on top of the CNN machinery: token outputs seen as image grids, and attention maps.

- `grid_layout(shape, image_size)`: how a layer's output maps onto the image — a channels-first map (N, C, h, w), a
  Swin-style channels-last map (N, h, w, C), or tokens (N, extra + h·w, C) with leading extra tokens (a class token)
  that belong to no patch. `GridLayout.to_grid` gives the channels-first grid Captum's layer methods expect (the extra
  tokens dropped, as pytorch-grad-cam's `reshape_transform` does); `from_grid` puts it back, so the rest of the model
  runs unchanged.
- `instrument_attention(module)`: on a private copy, routes every attention map through an `AttentionProbe` module
  that hooks can read: `nn.MultiheadAttention` (computed explicitly from its own in-projection, since with
  `need_weights=False` torch never forms the map), and in an unflattened torch.export graph every
  `scaled_dot_product_attention` call (rewritten the same way) and every softmax whose result is multiplied with
  values.
- `attention_rollout` (Abnar & Zuidema 2020) and `gradient_weighted_rollout` (Chefer, Gur & Wolf 2021, the generic
  hook-based rule R = Π (I + E_heads[(∇A ⊙ A)⁺])) over the recorded maps, and `patch_relevance` to read one row.
"""

from __future__ import annotations

import contextlib
import math
import types
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from xai_core.errors import XaiError

Layout = Literal["channels_first", "channels_last", "tokens"]

MAX_EXTRA_TOKENS = 8  # class, distillation and register tokens that precede the patch tokens


# ---------------------------------------------------------------------------------------- token layouts


@dataclass(frozen=True)
class GridLayout:
    """How one layer's output (batch first) lies on the image: its kind, grid (h, w), channels and extra tokens."""

    kind: Layout
    grid: tuple[int, int]
    channels: int
    extra_tokens: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, h, w): the output as a channels-first map, as layer methods see it."""
        return (self.channels, *self.grid)

    def to_grid(self, out: torch.Tensor) -> torch.Tensor:
        """The output as a channels-first map (N, C, h, w); extra tokens are dropped."""
        if self.kind == "channels_first":
            return out
        if self.kind == "channels_last":
            return out.permute(0, 3, 1, 2)
        patches = out[:, self.extra_tokens:]
        return patches.transpose(1, 2).reshape(out.shape[0], self.channels, *self.grid)

    def from_grid(self, grid: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """Inverse of `to_grid`: the map back in the layer's own layout, with `original`'s extra tokens in front."""
        if self.kind == "channels_first":
            return grid
        if self.kind == "channels_last":
            return grid.permute(0, 2, 3, 1)
        patches = grid.flatten(2).transpose(1, 2)
        return torch.cat([original[:, : self.extra_tokens], patches], dim=1) if self.extra_tokens else patches

    def describe(self) -> str:
        """E.g. '768×14×14, tokens + 1 extra' (for the page's layer selector)."""
        size = "×".join(map(str, self.shape))
        if self.kind == "tokens":
            return f"{size}, tokens" + (f" + {self.extra_tokens} extra" if self.extra_tokens else "")
        return size + (", channels last" if self.kind == "channels_last" else "")


def _aspect_error(h: int, w: int, image_size: tuple[int, int]) -> float:
    height, width = image_size
    return abs(math.log((h / w) / (height / width)))


def _plausible_grid(h: int, w: int, image_size: tuple[int, int]) -> bool:
    """Could an h×w grid cover this image? At least 2×2, no larger than the image, and of its aspect ratio up to
    rounding by one cell (so MaxViT's 64 windows × 49 tokens are not read as a 64×49 map of a square image)."""
    height, width = image_size
    return 2 <= h <= height + 2 and 2 <= w <= width + 2 and abs(h * width / height - w) <= 1 + 0.05 * w


def token_grid(n_tokens: int, image_size: tuple[int, int]) -> tuple[int, tuple[int, int]] | None:
    """(extra tokens, (h, w)) for a sequence of `n_tokens` over an image, or None if no grid fits its aspect.

    The grid whose aspect ratio is closest to the image's wins; among equals, the fewest extra tokens.
    """
    best = None
    for extra in range(0, min(MAX_EXTRA_TOKENS, n_tokens - 4) + 1):
        patches = n_tokens - extra
        for divisor in range(2, math.isqrt(patches) + 1):
            if patches % divisor:
                continue
            for h, w in ((divisor, patches // divisor), (patches // divisor, divisor)):
                if not _plausible_grid(h, w, image_size):
                    continue
                key = (round(_aspect_error(h, w, image_size), 6), extra)
                if best is None or key < best[0]:
                    best = (key, extra, (h, w))
    return None if best is None else (best[1], best[2])


_LAST_DIM_TYPES = ("LayerNorm", "RMSNorm", "Linear", "GELU", "Dropout", "MLP")


def grid_layout(shape: Sequence[int], image_size: tuple[int, int], type_name: str = "") -> GridLayout | None:
    """The layout of an output of `shape` (batch first) for an image of `image_size`, or None if it is not a map.

    4-D outputs are channels-first (N, C, h, w) or channels-last (N, h, w, C), whichever has a grid of the image's
    aspect; when both do, channels-first, unless the layer (`type_name`) works on the last dimension (LayerNorm,
    Linear…). 3-D outputs (N, T, C) are tokens when T = extra + h·w for a grid of the image's aspect.
    """
    if len(shape) == 4:
        _, a, b, c = shape
        first = _plausible_grid(b, c, image_size)
        last = _plausible_grid(a, b, image_size)
        if last and (not first or type_name.startswith(_LAST_DIM_TYPES) and type_name != "LayerNorm2d"):
            return GridLayout("channels_last", (a, b), c)
        if first:
            return GridLayout("channels_first", (b, c), a)
        return None
    if len(shape) == 3:
        found = token_grid(shape[1], image_size)
        if found is None:
            return None
        extra, grid = found
        return GridLayout("tokens", grid, shape[2], extra)
    return None


# ---------------------------------------------------------------------------------------- attention probes


class AttentionProbe(nn.Module):
    """Identity on an attention map (…, T, T): the one place hooks read attention and its gradient."""

    def forward(self, attention: torch.Tensor) -> torch.Tensor:
        return attention


def _attention(q, k, v, probe: AttentionProbe, attn_mask=None, is_causal=False, scale=None, enable_gqa=False):
    """softmax(q·kᵀ·scale + mask)·v with the softmax routed through `probe` (scaled_dot_product_attention's semantics)."""
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
    scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    attention = probe(torch.softmax(scores, dim=-1))
    return attention @ v


class ExplicitAttention(nn.Module):
    """Stands in for a scaled-dot-product-attention call in a graph: the same result, with the map through a probe.

    `flash_signature`: the CPU flash kernel's call, (q, k, v, dropout_p, is_causal, *, attn_mask, scale) returning
    (output, logsumexp); otherwise `scaled_dot_product_attention`'s (q, k, v, attn_mask, dropout_p, is_causal, *, scale).
    """

    def __init__(self, flash_signature: bool = False):
        super().__init__()
        self.probe = AttentionProbe()
        self.flash_signature = flash_signature

    def forward(self, q, k, v, *args, **kwargs):
        names = ("dropout_p", "is_causal") if self.flash_signature else ("attn_mask", "dropout_p", "is_causal")
        options = {**dict(zip(names, args)), **kwargs}
        scale = options.get("scale")
        out = _attention(q, k, v, self.probe, options.get("attn_mask"), bool(options.get("is_causal", False)), scale,
                         bool(options.get("enable_gqa", False)))
        if self.flash_signature:
            scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
            return out, torch.logsumexp(scores, dim=-1)
        return out


def _explicit_multihead_forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                                average_attn_weights=True, is_causal=False):
    """nn.MultiheadAttention's forward for plain self-attention, computed explicitly so the map passes the probe.

    Anything else (cross-attention, masks, bias_k/v, separate q/k/v weights, unbatched input) runs torch's own
    forward, unrecorded.
    """
    plain = (query is key and key is value and query.dim() == 3 and key_padding_mask is None and attn_mask is None
             and not is_causal and self._qkv_same_embed_dim and self.bias_k is None and not self.add_zero_attn)
    if not plain:
        return nn.MultiheadAttention.forward(self, query, key, value, key_padding_mask=key_padding_mask,
                                             need_weights=need_weights, attn_mask=attn_mask,
                                             average_attn_weights=average_attn_weights, is_causal=is_causal)
    x = query if self.batch_first else query.transpose(0, 1)
    n, t, e = x.shape
    heads = self.num_heads
    q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(n, t, 3, heads, e // heads).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-2, -1) / math.sqrt(e // heads)
    attention = self.xai_attention_probe(torch.softmax(scores, dim=-1))
    out = self.out_proj((attention @ v).transpose(1, 2).reshape(n, t, e))
    if not self.batch_first:
        out = out.transpose(0, 1)
    weights = (attention.mean(dim=1) if average_attn_weights else attention) if need_weights else None
    return out, weights


_SDPA_TARGETS = {"aten.scaled_dot_product_attention.default": False,
                 "aten._scaled_dot_product_flash_attention_for_cpu.default": True}
_SOFTMAX_TARGETS = {"aten.softmax.int", "aten._softmax.default", "aten._safe_softmax.default"}
_PASS_THROUGH = {"aten.view.default", "aten.reshape.default", "aten.clone.default", "aten.dropout.default",
                 "aten.expand.default", "aten.contiguous.default", "aten._to_copy.default", "aten.alias.default",
                 "aten.to.dtype", "aten.type_as.default", "aten.native_dropout.default", "_operator.getitem"}
_MATMUL_TARGETS = {"aten.matmul.default", "aten.bmm.default", "aten.baddbmm.default", "aten.einsum.default"}


def _feeds_matmul(node, depth: int = 4) -> bool:
    """Does this graph node's value reach a matrix product (through views, copies and dropout)?"""
    for user in node.users:
        target = str(user.target)
        if target in _MATMUL_TARGETS:
            return True
        if depth and target in _PASS_THROUGH and _feeds_matmul(user, depth - 1):
            return True
    return False


def _rewrite_graph_attention(graph_module: nn.Module) -> int:
    """In one unflattened submodule's graph: route each attention map through a probe; returns how many."""
    graph = graph_module.graph
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target = str(node.target)
        name = f"xai_attention_{count}"
        if target in _SDPA_TARGETS:
            graph_module.add_module(name, ExplicitAttention(flash_signature=_SDPA_TARGETS[target]))
            with graph.inserting_before(node):
                replacement = graph.create_node("call_module", name, node.args, dict(node.kwargs))
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
            count += 1
        elif target in _SOFTMAX_TARGETS and _feeds_matmul(node):
            graph_module.add_module(name, AttentionProbe())
            with graph.inserting_after(node):
                probe = graph.create_node("call_module", name, (node,))
            node.replace_all_uses_with(probe, delete_user_cb=lambda user: user is not probe)
            count += 1
    if count and hasattr(graph_module, "finalize"):
        graph_module.finalize()
    elif count and hasattr(graph_module, "recompile"):
        graph_module.recompile()
    return count


def instrument_attention(module: nn.Module) -> int:
    """Make every attention map of `module` (a private copy: it is changed for good) pass an `AttentionProbe`.

    Returns the number of attention sites instrumented (0: none could be located).
    """
    count = 0
    for sub in list(module.modules()):
        if isinstance(sub, nn.MultiheadAttention):
            sub.add_module("xai_attention_probe", AttentionProbe())
            sub.forward = types.MethodType(_explicit_multihead_forward, sub)
            count += 1
        elif isinstance(getattr(sub, "graph", None), torch.fx.Graph):
            count += _rewrite_graph_attention(sub)
    return count


def count_attention_sites(module: nn.Module) -> int:
    """How many attention maps `instrument_attention` would route through probes, without changing anything."""
    count = 0
    for sub in module.modules():
        if isinstance(sub, nn.MultiheadAttention):
            count += 1
        elif isinstance(getattr(sub, "graph", None), torch.fx.Graph):
            count += sum(1 for node in sub.graph.nodes if node.op == "call_function" and (
                str(node.target) in _SDPA_TARGETS or str(node.target) in _SOFTMAX_TARGETS and _feeds_matmul(node)))
    return count


def attention_probes(module: nn.Module) -> list[AttentionProbe]:
    return [m for m in module.modules() if isinstance(m, AttentionProbe)]


@contextlib.contextmanager
def recorded_attention(module: nn.Module, differentiable: bool = False):
    """Yields a list that fills, during forward passes inside the block, with each probed attention map in call order.

    `differentiable`: a map that does not depend on anything requiring gradients (attention fixed by the weights alone)
    is made a leaf that requires them, so the class score can still be differentiated with respect to it.
    """
    maps: list[torch.Tensor] = []

    def record(_module, _inputs, out):
        if differentiable and torch.is_grad_enabled() and not out.requires_grad:
            out = out.detach().requires_grad_(True)
        maps.append(out)
        return out

    handles = [p.register_forward_hook(record) for p in attention_probes(module)]
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------- rollout


def no_attention_reason(module: nn.Module) -> str:
    """Why no attention map was recorded in `module` (an instrumented copy), in words a user can act on."""
    kinds = sorted({type(m).__name__ for m in module.modules() if "attention" in type(m).__name__.lower()
                    and not isinstance(m, (AttentionProbe, ExplicitAttention))})
    if kinds:
        return (f"This model has attention layers ({', '.join(kinds[:3])}), but they compute attention in their own "
                "code, where its maps cannot be read. Attention methods read nn.MultiheadAttention layers, and in an "
                "exported .pt2 every scaled_dot_product_attention or softmax over attention scores: export the model "
                "to .pt2, or use Grad-CAM on a token layer.")
    return ("No attention map was found in this model (no nn.MultiheadAttention layer, no scaled_dot_product_attention "
            "or softmax over attention scores), so there is nothing to roll out. Attention methods explain "
            "transformers; use Grad-CAM or Integrated Gradients.")


def global_attention(maps: Sequence[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """The recorded maps as (N, heads, T, T), one per block; raises `XaiError` if they are not global self-attention.

    Maps that are not square (…, T, S≠T) are not self-attention and are skipped; (N·heads, T, T) is reshaped. Maps
    over windows (Swin: (N·windows, heads, 49, 49)) or over different token counts cannot be rolled out.
    """
    square = [a for a in maps if a.dim() >= 3 and a.shape[-1] == a.shape[-2]]
    if not square:
        raise XaiError("This model's attention maps are not self-attention (queries and keys differ in number), so "
                       "they cannot be rolled out. Use Grad-CAM on a token layer instead.")
    out = []
    for a in square:
        if a.dim() == 4 and a.shape[0] == batch:
            out.append(a)
        elif a.dim() == 3 and a.shape[0] % batch == 0:
            out.append(a.reshape(batch, a.shape[0] // batch, *a.shape[-2:]))
        else:
            raise XaiError(f"This model's attention is computed within windows or groups (a map of shape "
                           f"{list(a.shape)} for a batch of {batch}, as in Swin or MaxViT), so attention cannot be "
                           "rolled out over the whole image. Use Grad-CAM on a token layer instead.")
    sizes = sorted({a.shape[-1] for a in out})
    if len(sizes) > 1:
        raise XaiError(f"This model's attention blocks attend over different numbers of tokens ({sizes}), as in a "
                       "hierarchical transformer, so attention cannot be rolled out. Use Grad-CAM on a token layer.")
    return out


def attention_rollout(attentions: Sequence[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema's rollout (N, T, T): Â = (1 − r)·mean_heads(A) + r·I per block, rows renormalised, and
    R = Â_L ⋯ Â_1 (first block rightmost). Row i says how much each input token flows into output token i."""
    batch, _, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=attentions[0].dtype)
    rollout = eye.expand(batch, t, t)
    for a in attentions:
        mixed = (1.0 - residual) * a.mean(dim=1) + residual * eye
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    return rollout


def gradient_weighted_rollout(attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """Chefer et al.'s relevance (N, T, T): R = I, then per block R ← R + Ā·R with Ā = mean_heads((∇A ⊙ A)⁺)."""
    batch, _, t, _ = attentions[0].shape
    relevance = torch.eye(t, dtype=attentions[0].dtype).expand(batch, t, t)
    for a, g in zip(attentions, gradients):
        weighted = (g * a).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance


def patch_relevance(relevance: torch.Tensor, extra_tokens: int, grid: tuple[int, int]) -> torch.Tensor:
    """(N, h, w): the first token's row of `relevance` over the patch tokens (a class token is the first extra
    token); without extra tokens the output is pooled over every token, so the mean of the rows."""
    row = relevance[:, 0] if extra_tokens else relevance.mean(dim=1)
    return row[:, extra_tokens:].reshape(relevance.shape[0], *grid)

"""Image attribution methods: one registry, one verb, all built on Captum.

Every method maps a batch of normalised images (n, C, H, W) and target classes to one 2-D map per image
at input resolution. Shared machinery lives here once: batching, targets, layer lookup, private model
copies (the cached model is shared by every browser session: it is never hooked, put in train mode or
given gradients), upsampling. Each method is a few lines.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from xai_core.attribution.common import CopyPool, method_spec, seeded
from xai_core.attribution.transformer import (GridLayout, attention_rollout, count_attention_sites, global_attention,
                                              gradient_weighted_rollout, grid_layout, instrument_attention,
                                              no_attention_reason, patch_relevance, recorded_attention,
                                              token_grid)
from xai_core.datasets import images_to_tensor
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, cache_friendly_batch, output_scores

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------------------- private copies


_POOL = CopyPool()
_ATTENTION_POOL = CopyPool(keep=2, prepare=instrument_attention)  # copies whose attention maps pass probes


# ---------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class SpatialLayer:
    """A layer whose output lies on the image: a channels-first or channels-last map, or patch tokens."""

    name: str
    layout: GridLayout
    type_name: str  # the layer's original class name, e.g. 'LayerNorm'
    gets_gradient: bool  # does the class score reach its grid (not only extra tokens)? Checked on token layouts only

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, h, w) as layer methods see it."""
        return self.layout.shape


_LAYERS: collections.OrderedDict[tuple, list[SpatialLayer]] = collections.OrderedDict()
_LAYERS_LOCK = threading.Lock()


def layer_catalogue(model: LoadedModel) -> list[SpatialLayer]:
    """Every submodule whose output lies on the image, in forward order (found once per model, then cached).

    One forward pass on a batch of 2 (so batch-first outputs are told from sequence-first ones) records each output's
    layout; for token and channels-last layouts one backward pass from the top class score says whether the grid gets
    any gradient (in a ViT, layers after the last attention only pass the class token on, so their patch tokens get none).
    """
    if not model.supports_layer_methods:
        return []
    key = (model.sha256, id(model.module), tuple(model.info.input_shape))
    with _LAYERS_LOCK:
        if key in _LAYERS:
            _LAYERS.move_to_end(key)
            return _LAYERS[key]
    image_size = model.info.image_size
    found: dict[str, tuple[GridLayout, torch.Tensor]] = {}
    types: dict[str, str] = {}
    with _POOL.borrow(model) as module:
        def record(name):
            def hook(sub, _inputs, output):
                if name in found or not isinstance(output, torch.Tensor) or output.shape[:1] != (2,):
                    return
                types[name] = model.layer_types.get(name) or type(sub).__name__
                layout = grid_layout(tuple(output.shape), image_size, types[name])
                if layout is not None:
                    found[name] = (layout, output)
            return hook

        for name, sub in module.named_modules():
            if name:
                sub.register_forward_hook(record(name))
        x = torch.randn((2, *model.info.input_shape), generator=torch.Generator().manual_seed(0))
        with torch.enable_grad():
            out = module(x.requires_grad_(True))
            gradients = _grid_gradients(out, found)
    layers = [SpatialLayer(name, layout, types[name], gradients.get(name, True)) for name, (layout, _) in found.items()]
    with _LAYERS_LOCK:
        _LAYERS[key] = layers
        while len(_LAYERS) > 32:
            _LAYERS.popitem(last=False)
    return layers


def _grid_gradients(out: torch.Tensor, found: dict[str, tuple[GridLayout, torch.Tensor]]) -> dict[str, bool]:
    """For token and channels-last layers: does the top class score have a non-zero gradient on the grid?"""
    names = [n for n, (layout, t) in found.items() if layout.kind != "channels_first" and t.requires_grad]
    if not names or not out.requires_grad:
        return {}
    score = out.reshape(len(out), -1).max(dim=1).values.sum()
    grads = torch.autograd.grad(score, [found[n][1] for n in names], allow_unused=True)
    return {n: g is not None and bool(found[n][0].to_grid(g).abs().amax() > 0) for n, g in zip(names, grads)}


def spatial_layers(model: LoadedModel) -> list[tuple[str, tuple[int, ...]]]:
    """(name, (C, h, w)) of every layer whose output lies on the image, in forward order; token outputs as their grid."""
    return [(layer.name, layer.shape) for layer in layer_catalogue(model)]


def default_layer(model: LoadedModel) -> str:
    """Grad-CAM's usual choice: for a CNN, the last spatial layer that is not inside another such layer's output; for
    a transformer, the last block's input norm (the last token layer whose patch tokens the class score reaches)."""
    layers = layer_catalogue(model)
    if not layers:
        raise XaiError("This model has no layer with a spatial output, so Grad-CAM has nothing to weight. "
                       "Use Integrated Gradients, Saliency or Occlusion.")
    cnn = [layer for layer in layers if layer.layout.kind == "channels_first"]
    tokens = [layer for layer in layers if layer.layout.kind != "channels_first" and layer.gets_gradient]
    transformer = _has_attention_module(model)
    if tokens and (transformer or not cnn):
        return _block_input_norm(tokens, layers) or tokens[-1].name
    if not cnn:
        raise XaiError("No layer of this model has a spatial output that the class score reaches, so Grad-CAM has "
                       "nothing to weight. Use Integrated Gradients, Saliency or Occlusion.")
    # Prefer the outermost module among those that finish last (e.g. 'layer3' over 'layer3.1.relu').
    last = cnn[-1]
    candidates = [layer.name for layer in cnn if layer.shape == last.shape]
    top_level = [n for n in candidates if not any(n.startswith(other + ".") for other in candidates if other != n)]
    return min(top_level, key=lambda n: n.count(".")) if top_level else last.name


def _has_attention_module(model: LoadedModel) -> bool:
    """Is any layer an attention layer (by its original class name: MultiheadAttention, ShiftedWindowAttention…)?"""
    names = list(model.layer_types.values()) + [type(m).__name__ for m in model.module.modules()]
    return any("attention" in name.lower() for name in names)


def _block_input_norm(tokens: list[SpatialLayer], layers: list[SpatialLayer]) -> str | None:
    """The last norm layer that is the first layer of its block to run (ViT's `ln_1`, Swin's `norm1`) and whose grid
    the class score reaches: the tokens just before the last attention that sees the patches."""
    first_of_parent: dict[str, str] = {}
    for layer in layers:
        first_of_parent.setdefault(layer.name.rpartition(".")[0], layer.name)
    norms = [layer.name for layer in tokens if "Norm" in layer.type_name
             and first_of_parent.get(layer.name.rpartition(".")[0]) == layer.name]
    return norms[-1] if norms else None


# ---------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class ImageMethod:
    key: str
    name: str
    how_to_read: str
    needs_layer: bool = False
    signed: bool = False  # maps may be negative (evidence against the class)
    run: Callable = None  # (module, x, target, layer_module, options) -> (n, H, W)
    single_pass: bool = False  # one forward pass: the predictions are read from it instead of a pass of their own
    needs_attention: bool = False  # reads attention maps: runs on a copy whose attention passes probes


_PERTURBATION = ("occlusion", "lime")  # methods that only run the model forward (no gradients)


def _grad_cam(module, x, target, layer, options):
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(module, layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]


def _guided_grad_cam(module, x, target, layer, options):
    from captum.attr import GuidedGradCam

    return GuidedGradCam(module, layer).attribute(x, target=target).sum(dim=1)


def integrated_gradients_baseline(x: torch.Tensor, kind: str, mean, std, seed: int = 0) -> torch.Tensor:
    """'black' (all-zero pixels), 'blur' (a heavily blurred copy) or 'noise' (uniform random pixels), normalised."""
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    if kind == "black":
        return ((0.0 - mean_t) / std_t).expand_as(x).contiguous()
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        size = max(3, (min(x.shape[-2:]) // 4) | 1)
        return gaussian_blur(x, kernel_size=[size, size], sigma=[size / 3.0, size / 3.0])
    if kind == "noise":
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand(x.shape, generator=generator) - mean_t) / std_t
    raise XaiError(f"Unknown baseline {kind!r}; use 'black', 'blur' or 'noise'.")


def _integrated_gradients(module, x, target, layer, options):
    from captum.attr import IntegratedGradients, NoiseTunnel

    baselines = integrated_gradients_baseline(x, options.get("baseline", "black"), options["mean"], options["std"],
                                              options.get("seed", 0))
    ig = IntegratedGradients(module)
    steps = int(options.get("n_steps", 32))
    if options.get("smoothgrad"):
        with seeded(options.get("seed", 0)):
            attr = NoiseTunnel(ig).attribute(x, baselines=baselines, target=target, n_steps=steps,
                                             nt_type="smoothgrad", nt_samples=int(options.get("nt_samples", 8)),
                                             stdevs=float(options.get("noise_std", 0.15)), internal_batch_size=64)
    else:
        attr = ig.attribute(x, baselines=baselines, target=target, n_steps=steps, internal_batch_size=64)
    return attr.sum(dim=1)


def _saliency(module, x, target, layer, options):
    from captum.attr import Saliency

    return Saliency(module).attribute(x, target=target, abs=True).amax(dim=1)


def _occlusion(module, x, target, layer, options):
    from captum.attr import Occlusion

    window = int(options.get("window", max(4, x.shape[-1] // 8)))
    stride = int(options.get("stride", max(2, window // 2)))
    channels = x.shape[1]
    # Captum runs `perturbations_per_eval` patches of every image in one forward: keep that batch cache-friendly
    # (12 images of 64×64, 64 patches each: 0.58 s at 10 per eval, 0.87 s at 32, 1.47 s at 64)
    per_eval = max(1, cache_friendly_batch(x) // len(x))
    attr = Occlusion(module).attribute(x, target=target, sliding_window_shapes=(channels, window, window),
                                       strides=(channels, stride, stride), baselines=0.0, perturbations_per_eval=per_eval)
    return attr.sum(dim=1)


def _lime(module, x, target, layer, options):
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function
    from skimage.segmentation import slic

    pixels = options["pixels"]  # uint8 (n, H, W, C): superpixels are found on the image as shown
    maps = []
    lime = Lime(module, similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=0.75))
    for i in range(len(x)):
        image = pixels[i]
        segments = slic(image if image.shape[-1] == 3 else image[..., 0], n_segments=int(options.get("n_segments", 40)),
                        compactness=10, start_label=0, channel_axis=-1 if image.shape[-1] == 3 else None)
        mask = torch.from_numpy(segments).long().view(1, 1, *segments.shape).expand(1, x.shape[1], *segments.shape)
        with seeded(options.get("seed", 0) + i):
            attr = lime.attribute(x[i : i + 1], target=target[i : i + 1], feature_mask=mask,
                                  n_samples=int(options.get("n_samples", 200)), perturbations_per_eval=50,
                                  baselines=0.0)
        maps.append(attr[:, 0])
    return torch.cat(maps)


def _attention_rollout(module, x, target, layer, options):
    return _rollout(module, x, target, gradient_weighted=False)


def _gradient_weighted_rollout(module, x, target, layer, options):
    return _rollout(module, x, target, gradient_weighted=True)


def _rollout(module, x, target, gradient_weighted: bool):
    """One forward pass recording every attention map, then (gradient-weighted) rollout read at the patch tokens."""
    out, maps, attentions, extra, grid = _attention_pass(module, x, differentiable=gradient_weighted)
    if gradient_weighted:
        score = out.gather(1, target[:, None]).sum()
        grads = torch.autograd.grad(score, maps, allow_unused=True)
        grads = global_attention([torch.zeros_like(a) if g is None else g for a, g in zip(maps, grads)], len(x))
        relevance = gradient_weighted_rollout([a.detach() for a in attentions], grads)
    else:
        relevance = attention_rollout([a.detach() for a in attentions])
    return _upsample(patch_relevance(relevance, extra, grid)[:, None], x)[:, 0]


def _attention_pass(module, x, differentiable: bool):
    """Run `module` (an attention-probed copy) on `x`, recording its attention maps.

    Returns (output, maps as recorded, maps as (N, heads, T, T), extra tokens, patch grid); raises `XaiError` when no
    global self-attention over a grid of patches was recorded.
    """
    with torch.set_grad_enabled(differentiable), recorded_attention(module, differentiable) as maps:
        out = module(x.requires_grad_(differentiable))
    if not maps and not differentiable:
        # Some layers (nn.TransformerEncoderLayer) take a fused kernel without gradients, skipping the probed attention.
        with torch.enable_grad(), recorded_attention(module) as maps:
            out = module(x.requires_grad_(True))
    if not maps:
        raise XaiError(no_attention_reason(module))
    attentions = global_attention(maps, len(x))
    found = token_grid(attentions[0].shape[-1], tuple(x.shape[-2:]))
    if found is None:
        raise XaiError(f"This model's attention runs over {attentions[0].shape[-1]} tokens, which do not form a grid of "
                       f"patches of the {x.shape[-2]}×{x.shape[-1]} image, so its rollout cannot be drawn on the image.")
    return out, maps, attentions, found[0], found[1]


def _upsample(maps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import LayerAttribution

    return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")


METHODS: dict[str, ImageMethod] = {m.key: m for m in (
    ImageMethod("grad_cam", "Grad-CAM", "Where the chosen layer's features that raise this class sit (class-specific, "
                "coarse: the layer's resolution, upsampled).", needs_layer=True, run=_grad_cam, single_pass=True),
    ImageMethod("guided_grad_cam", "Guided Grad-CAM", "Grad-CAM multiplied by guided backpropagation: fine edges inside "
                "the Grad-CAM region.", needs_layer=True, signed=True, run=_guided_grad_cam),
    ImageMethod("integrated_gradients", "Integrated Gradients", "Each pixel's share of the change in the class score "
                "from the baseline image to this one (red raises the class, blue lowers it).", signed=True,
                run=_integrated_gradients),
    ImageMethod("saliency", "Saliency", "How strongly the class score reacts to a tiny change of each pixel "
                "(gradient magnitude; noisy, not signed).", run=_saliency),
    ImageMethod("occlusion", "Occlusion", "How much the class probability drops when a patch is greyed out "
                "(model-agnostic; resolution = the window).", signed=True, run=_occlusion),
    ImageMethod("lime", "LIME (superpixels)", "A linear model of the class score on superpixels present/absent: "
                "each region's weight (model-agnostic, sampled).", signed=True, run=_lime),
    ImageMethod("attention_rollout", "Attention rollout", "How much each patch flows into the class token through "
                "the attention of every block (heads averaged, half of each step kept for the residual path; not "
                "class-specific: every class gets the same map).", run=_attention_rollout, single_pass=True,
                needs_attention=True),
    ImageMethod("gradient_rollout", "Gradient-weighted attention", "Attention weighted by its gradient for this "
                "class, positive parts only, accumulated over the blocks with the identity for the residual path "
                "(Chefer et al. 2021; class-specific).", run=_gradient_weighted_rollout, single_pass=True,
                needs_attention=True),
)}

_OCCLUSION_WRAP = {"occlusion", "lime"}  # perturbation methods explain probabilities, not logits


class _GridProbe(nn.Module):
    """Identity on a token or channels-last layer's output seen as a channels-first grid: layer methods hook this."""

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return grid


@contextlib.contextmanager
def _grid_view(layer: nn.Module, layout: GridLayout):
    """Yield a probe module whose output is `layer`'s output as an (N, C, h, w) grid, for Captum to hook.

    A forward hook on `layer` (a pooled private copy's) sends its output through the probe and back to its own layout,
    so the rest of the model runs unchanged and gradients reach the grid through the probe.
    """
    probe = _GridProbe()

    def hook(_module, _inputs, output):
        return layout.from_grid(probe(layout.to_grid(output)), output)

    handle = layer.register_forward_hook(hook)
    try:
        yield probe
    finally:
        handle.remove()


class _Recorder(nn.Module):
    """Runs the model once and keeps its logits; in 'predicted' mode returns only each row's top logit (target 0).

    The gradient of the top logit equals the gradient of the predicted class's logit (argmax is locally constant),
    so Grad-CAM for the predicted class needs no separate forward pass to find that class.
    """

    def __init__(self, module: nn.Module, predicted: bool):
        super().__init__()
        self.module = module
        self.predicted = predicted
        self.logits: torch.Tensor | None = None

    def forward(self, x):
        out = self.module(x)
        self.logits = out.detach()
        return out.gather(1, out.argmax(dim=1, keepdim=True)) if self.predicted else out


class _Softmax(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return output_scores(self.module(x), "classification")


# ---------------------------------------------------------------------------------------- the verb


@dataclass
class ImageExplanation:
    """Maps (n, H, W) for n images, with what was explained and how."""

    maps: np.ndarray
    method: str
    method_name: str
    signed: bool
    layer: str | None
    targets: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray  # (n, n_classes)
    settings: dict
    notes: list[str] = field(default_factory=list)


def explain_batch(
    model: LoadedModel,
    images: np.ndarray | torch.Tensor,
    method: str,
    targets: np.ndarray | list[int] | None = None,
    layer: str | None = None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
    **options,
) -> ImageExplanation:
    """Explain `images` (uint8 (n, H, W, C) as loaded, or a normalised tensor) for `targets` (default: predicted)."""
    if model.info.input_kind != "image":
        raise XaiError("These methods explain image models; this model takes a table.")
    if model.info.task != "classification":
        raise XaiError("Image explanations need a classifier (one score per class).")
    spec = method_spec(METHODS, method, "image")
    if isinstance(images, np.ndarray):
        pixels = images
        x_all = images_to_tensor(images, model.info)
    else:
        pixels, x_all = None, images.float()
    if spec.key == "lime" and pixels is None:
        raise XaiError("LIME finds superpixels on the images themselves: pass the uint8 images.")
    n = len(x_all)
    if n == 0:
        raise XaiError("No images to explain.")
    if not model.autograd and spec.key not in _PERTURBATION:
        raise XaiError(f"{spec.name} needs gradients, and a real int8 model has none. Explain its fake-quant twin "
                       "(the same int8 weights, simulated), or use Occlusion or LIME, which only run the model.")
    if (spec.needs_layer or spec.needs_attention) and not model.supports_layer_methods:
        raise XaiError(f"{spec.name} needs to hook a layer, and TorchScript hides its layers from hooks. Export the model "
                       "with torch.export to .pt2, or upload its state_dict with the torchvision architecture. "
                       "Integrated Gradients, Saliency, Occlusion and LIME work on this model.")
    given = None if targets is None else np.asarray(targets, dtype=np.int64).reshape(-1)
    if given is not None and len(given) == 1 and n > 1:
        given = np.repeat(given, n)
    if given is not None and (len(given) != n or given.min() < 0 or given.max() >= model.info.n_outputs):
        raise XaiError(f"Targets must be {n} class indices between 0 and {model.info.n_outputs - 1}.")
    probabilities = None if spec.single_pass else model.predict_proba(x_all, batch_size=64)
    target_arr = given if given is not None or probabilities is None else probabilities.argmax(axis=1)
    layer_name, layout = None, None
    if spec.needs_layer:
        layer_name = layer or default_layer(model)
        layout = next((entry.layout for entry in layer_catalogue(model) if entry.name == layer_name), None)
    options = {"mean": model.info.mean, "std": model.info.std, **options}
    maps = []
    notes: list[str] = []
    pool = _ATTENTION_POOL if spec.needs_attention else _POOL
    with pool.borrow(model) as module, contextlib.ExitStack() as stack:
        layer_module = None
        if layer_name is not None:
            try:
                layer_module = module.get_submodule(layer_name)
            except AttributeError:
                raise XaiError(f"The model has no layer named {layer_name!r}.") from None
            if layout is not None and layout.kind != "channels_first":
                layer_module = stack.enter_context(_grid_view(layer_module, layout))
        if spec.key == "guided_grad_cam" and not any(isinstance(m, nn.ReLU) for m in module.modules()):
            notes.append("This model has no nn.ReLU modules for guided backpropagation to override, so Guided "
                         "Grad-CAM here is plain gradient × Grad-CAM.")
        forward = _Softmax(module) if spec.key in _OCCLUSION_WRAP else module
        if spec.single_pass:
            forward = _Recorder(module, predicted=given is None)
        logits = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            x = x_all[start:stop].clone()
            target = torch.zeros(stop - start, dtype=torch.long) if target_arr is None else torch.from_numpy(target_arr[start:stop])
            batch_options = dict(options)
            if pixels is not None:
                batch_options["pixels"] = pixels[start:stop]
            result = spec.run(forward, x, target, layer_module, batch_options)
            maps.append(result.detach().float().numpy())
            if spec.single_pass:
                logits.append(forward.logits)
            if progress is not None:
                progress(stop, n, f"explaining {stop}/{n} images")
    if spec.single_pass:
        probabilities = output_scores(torch.cat(logits), "classification").numpy()
    predicted = probabilities.argmax(axis=1)
    if target_arr is None:
        target_arr = predicted.copy()
    settings = {k: v for k, v in options.items() if k not in ("mean", "std")}
    return ImageExplanation(
        maps=np.concatenate(maps).astype(np.float32), method=spec.key, method_name=spec.name, signed=spec.signed,
        layer=layer_name, targets=target_arr, predicted=predicted, probabilities=probabilities,
        settings=settings, notes=notes,
    )


@dataclass(frozen=True)
class AttentionSupport:
    """Can attention methods explain this model, and over what: blocks, tokens, extra tokens and the patch grid."""

    reason: str | None  # why not, in words for the user; None when they can
    blocks: int = 0
    tokens: int = 0
    extra_tokens: int = 0
    grid: tuple[int, int] = (0, 0)

    @property
    def available(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """What rollout assumes here, e.g. '12 blocks over 1 + 14×14 tokens; the first token is read as the output'."""
        if not self.available:
            return self.reason
        read = ("the map is the first (class) token's row" if self.extra_tokens else
                "no class token: the map averages every token's row (the output pools them)")
        extra = f"{self.extra_tokens} + " if self.extra_tokens else ""
        return f"{self.blocks} attention blocks over {extra}{self.grid[0]}×{self.grid[1]} tokens; {read}."


_ATTENTION_SUPPORT: collections.OrderedDict[tuple, AttentionSupport] = collections.OrderedDict()


def attention_support(model: LoadedModel) -> AttentionSupport:
    """Whether attention methods work on this model (else why not: the page then hides them), found once per model by
    recording the attention of two random images on a probed copy."""
    if model.info.input_kind != "image" or not model.supports_layer_methods:
        return AttentionSupport("Attention maps are read through hooks, which this model does not support.")
    key = (model.sha256, id(model.module), tuple(model.info.input_shape))
    with _LAYERS_LOCK:
        if key in _ATTENTION_SUPPORT:
            return _ATTENTION_SUPPORT[key]
    if not count_attention_sites(model.module):  # no private copy needed to know there is nothing to probe
        support = AttentionSupport(no_attention_reason(model.module))
    else:
        x = torch.randn((2, *model.info.input_shape), generator=torch.Generator().manual_seed(0))
        with _ATTENTION_POOL.borrow(model) as module:
            try:
                _, _, attentions, extra, grid = _attention_pass(module, x, differentiable=False)
                support = AttentionSupport(None, len(attentions), attentions[0].shape[-1], extra, grid)
            except XaiError as exc:
                support = AttentionSupport(str(exc))
    with _LAYERS_LOCK:
        _ATTENTION_SUPPORT[key] = support
        while len(_ATTENTION_SUPPORT) > 32:
            _ATTENTION_SUPPORT.popitem(last=False)
    return support


def available_methods(model: LoadedModel) -> list[str]:
    """Keys of the methods that can explain this model: layer methods need hooks, attention methods need attention."""
    keys = []
    for key, spec in METHODS.items():
        if (spec.needs_layer or spec.needs_attention) and not model.supports_layer_methods:
            continue
        if spec.needs_attention and not attention_support(model).available:
            continue
        keys.append(key)
    return keys


def default_method(model: LoadedModel, available: list[str] | None = None) -> str:
    """The method a page opens on: gradient-weighted attention for a transformer, Grad-CAM for any other model with
    layers, else the first of `available` (default: `available_methods(model)`). On a transformer, Grad-CAM reads one
    block's coarse token grid after attention has mixed the patches: on the shapes ViT demo its peak falls on the object
    in 43% of 100 scenes, gradient-weighted attention's in 88% (tests/test_transformer_demo.py)."""
    keys = available_methods(model) if available is None else available
    if not keys:
        raise XaiError("No explanation method can run on this model.")
    return next((key for key in ("gradient_rollout", "grad_cam") if key in keys), keys[0])


def top_k_probabilities(model: LoadedModel, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """For each image, its k most probable classes with their probabilities."""
    proba = model.predict_proba(x)
    names = model.info.class_names
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(names[j], float(proba[i, j])) for j in row] for i, row in enumerate(order)]

"""Every torchvision architecture family, uploaded as a .pt2 and as a state_dict (random weights, heads re-initialised):
it loads (a state_dict matched to its architecture by layer names alone), its default Grad-CAM layer is the expected one
and sees the whole image, the map is not constant, Integrated Gradients runs, and int8 dynamic, int8 static and 4-bit
weights build and run (their top-1 agreement with fp32 is recorded as a test property).

Small inputs where the architecture allows them (64×64); ViT-B/16 as a state_dict and MaxViT need 224×224 (their
position embeddings and partitions are built for it). The default run explains every architecture that fits 64×64 and
quantizes two of them (ViT-B/16 and ShuffleNet's int8 are also in test_quantization_torchvision.py); the rest, about 20
minutes on 2 cores, runs with `XAI_ZOO_FULL=1 python -m pytest tests/test_zoo.py`. The full 224×224 timings are in
benchmarks/bench_zoo.py.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from xai_core.attribution.image import default_layer, explain_batch, layer_catalogue
from xai_core.loading import _guess_architecture, load_model
from xai_core.quantization import VariantSpec, build_variant

N_CLASSES = 5
CLASS_NAMES = [f"class {i}" for i in range(N_CLASSES)]


@dataclass(frozen=True)
class Arch:
    default_layer: str  # Grad-CAM's automatic choice: the last stage for CNNs, the last block's input norm for transformers
    size: int = 64
    export_kwargs: dict = field(default_factory=dict)  # builder arguments for the .pt2 (state_dicts use the defaults)
    state_dict_size: int | None = None  # input size of the state_dict model when the defaults fix it
    slow: tuple[str, ...] = ()  # formats whose cases run only in the full zoo (224×224 inputs)


ZOO = {
    "resnet50": Arch("layer4"),
    "mobilenet_v3_small": Arch("features"),
    "efficientnet_b0": Arch("features"),
    "convnext_tiny": Arch("features"),
    # A ViT's position embedding fixes its input size: the .pt2 is built for 64×64 (4×4 patches), the state_dict
    # is torchvision's default 224×224 model (the loader builds the architecture with its defaults).
    "vit_b_16": Arch("encoder.layers.encoder_layer_11.ln_1", export_kwargs={"image_size": 64}, state_dict_size=224,
                     slow=("state_dict",)),
    "swin_t": Arch("features.7.1.norm1"),
    "densenet121": Arch("features"),
    "regnet_y_400mf": Arch("trunk_output"),
    "shufflenet_v2_x1_0": Arch("conv5"),
    "maxvit_t": Arch("blocks.3", size=224, slow=("pt2", "state_dict")),
}


def random_weights(name: str, size: int, **kwargs) -> nn.Module:
    """torchvision's architecture with seeded random weights, batch-norm statistics set by a few training-mode passes
    on noise of `size`×`size` (with fresh statistics a deep network's answers vanish: shufflenet's logits are ~1e-6, so
    any rounding ties them), and a random head (torchvision zero-initialises the ViT's head: every map constant)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torchvision.models.get_model(name, weights=None, num_classes=N_CLASSES, **kwargs)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the passes
        net.train()
        with torch.no_grad():
            for seed in range(3):
                net(torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(100 + seed)))
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) / head.weight.shape[1] ** 0.5)
        if head.bias is not None:
            head.bias.zero_()
    return net.eval()


def upload(name: str, fmt: str):
    """(model bytes, sidecar, input size) as a user would upload them."""
    arch = ZOO[name]
    if fmt == "pt2":
        net = random_weights(name, arch.size, **arch.export_kwargs)
        example = torch.randn(2, 3, arch.size, arch.size)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        return buffer.getvalue(), {"class_names": CLASS_NAMES}, arch.size
    size = arch.state_dict_size or arch.size
    buffer = io.BytesIO()
    torch.save(random_weights(name, size).state_dict(), buffer)
    return buffer.getvalue(), {"class_names": CLASS_NAMES, "input_shape": [3, size, size]}, size


_LOADED: dict[tuple[str, str], tuple] = {}


def loaded(name: str, fmt: str):
    """(LoadedModel, input size), kept for the one (architecture, format) under test: its parts run one after another
    (see `cases`)."""
    key = (name, fmt)
    if key not in _LOADED:
        _LOADED.clear()
        data, sidecar, size = upload(name, fmt)
        _LOADED[key] = (load_model(data, f"{name}.{'pt2' if fmt == 'pt2' else 'pt'}", sidecar=sidecar), size)
    return _LOADED[key]


def images(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


FULL = bool(os.environ.get("XAI_ZOO_FULL"))
FULL_ONLY = pytest.mark.skipif(not FULL, reason="full zoo only: XAI_ZOO_FULL=1 python -m pytest tests/test_zoo.py")
# int8 in the default run: a plain CNN and Swin (the rest takes 10–140 s each; all of it runs in the full zoo).
INT8_DEFAULT = {("resnet50", "pt2"), ("swin_t", "pt2")}


def cases(part: str):
    """One case per (architecture, format), the same list for every part. The tests take them with scope="module", so
    pytest runs all parts of one model back to back (the model is loaded once), and each model's parts form one xdist
    group (one worker loads it)."""
    for name, arch in ZOO.items():
        for fmt in ("pt2", "state_dict"):
            full_only = fmt in arch.slow or (part == "int8" and (name, fmt) not in INT8_DEFAULT)
            marks = [pytest.mark.xdist_group(f"zoo-{name}-{fmt}")] + ([FULL_ONLY] if full_only else [])
            yield pytest.param(name, fmt, marks=marks, id=f"{name}-{fmt}")


# ---------------------------------------------------------------------------------------- explaining


def grid_at(model, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """The layer's output on `x` as a channels-first grid (N, C, h, w), still attached to x's graph."""
    layout = next(entry.layout for entry in layer_catalogue(model) if entry.name == layer_name)
    saved = {}
    handle = model.module.get_submodule(layer_name).register_forward_hook(lambda _m, _i, out: saved.__setitem__("o", out))
    try:
        model.module(x)
    finally:
        handle.remove()
    return layout.to_grid(saved["o"])


@pytest.mark.parametrize("name, fmt", list(cases("explain")), scope="module")
@pytest.mark.slow
def test_loads_and_explains(name, fmt):
    model, size = loaded(name, fmt)
    if fmt == "state_dict":
        assert model.info.architecture == name  # matched by its layer names: nothing in the sidecar says which
    assert model.info.input_shape == (3, size, size)
    expected = ZOO[name].default_layer
    assert default_layer(model) == expected

    # The default layer sees the whole image: its top-left cell reacts to the bottom-right quarter of the input.
    # (A random mix of its channels: the plain sum of a LayerNorm's output is the same whatever the input.)
    x = images(size, 1).requires_grad_(True)
    with torch.enable_grad():
        grid = grid_at(model, expected, x)
        mix = torch.randn(grid.shape[1], generator=torch.Generator().manual_seed(3))
        corner = torch.autograd.grad((grid[:, :, 0, 0] * mix).sum(), x)[0]
    half = size // 2
    assert corner[..., half:, half:].abs().amax() > 0
    assert corner.abs().amax() > 0

    cam = explain_batch(model, images(size, 3), "grad_cam")
    assert cam.layer == expected and cam.maps.shape == (3, size, size)
    assert np.isfinite(cam.maps).all() and (cam.maps >= 0).all()
    # Not constant, relative to its own scale (random weights can make every activation tiny). With random weights a
    # map can be all zero (every cell's weighted sum negative, cut by the ReLU) for one image, not for all of them;
    # a zero-initialised head makes every map constant.
    assert any(np.abs(m).max() > 0 and np.ptp(m) > 1e-3 * np.abs(m).max() for m in cam.maps)

    ig = explain_batch(model, images(size, 1), "integrated_gradients", n_steps=4).maps
    assert ig.shape == (1, size, size) and np.isfinite(ig).all() and np.abs(ig).max() > 0


@pytest.mark.parametrize("name, fmt", list(cases("int8")), scope="module")
@pytest.mark.slow
def test_int8_and_4_bit_variants_build_and_run(name, fmt, record_property):
    model, size = loaded(name, fmt)
    x = images(size, 4, seed=1)
    reference = model.predict_proba(x)
    calibration = images(size, 8, seed=2)
    for spec in (VariantSpec("int8-dynamic"), VariantSpec("int8-static"), VariantSpec("weights", 4)):
        variant = build_variant(model, spec, calibration)
        out = variant.model.predict_proba(x)
        assert out.shape == reference.shape and np.isfinite(out).all(), spec.label
        if spec.real_int8:
            assert any("quantized" in type(m).__module__ for m in variant.model.module.modules()), spec.label
        if spec.kind == "int8-dynamic":  # int8 weights of the Linear layers only: the logits barely move
            with torch.no_grad():
                ours, theirs = variant.model.module(x).flatten(), model.module(x).flatten()
            assert theirs.std() > 1e-3  # logits that mean something (with fresh batch-norm statistics they vanish)
            assert torch.nn.functional.cosine_similarity(ours, theirs, dim=0) > 0.99, spec.label
        record_property(f"{spec.label} top-1 agreement with fp32", float((out.argmax(1) == reference.argmax(1)).mean()))


def test_regnet_weights_are_matched_by_layer_names():
    """RegNet builds its stage widths with tensor arithmetic, which the meta device cannot run: it used to match nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("regnet_y_400mf", "regnet_x_400mf"):
            state = torchvision.models.get_model(name, weights=None, num_classes=3).state_dict()
            assert _guess_architecture(state) == name

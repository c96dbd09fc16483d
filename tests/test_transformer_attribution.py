"""Transformers: token layers seen as grids, Grad-CAM on them against pytorch-grad-cam, and attention rollout and
gradient-weighted rollout against hand computations and against attention read through torch's own need_weights."""

import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from xai_core import XaiError
from xai_core.attribution.image import (_ATTENTION_POOL, METHODS, attention_support, available_methods, default_layer,
                                        explain_batch, layer_catalogue, spatial_layers)
from xai_core.attribution.transformer import (attention_rollout, grid_layout, gradient_weighted_rollout,
                                              patch_relevance, token_grid)
from xai_core.loading import load_model
from xai_core.model import LoadedModel, ModelInfo
from xai_core.torch_internals import hook_count

SIZE = 32
CLASSES = ("a", "b", "c")


def random_head(net: nn.Module, seed: int = 1) -> nn.Module:
    """torchvision zero-initialises the ViT head (every map would be constant): give the last Linear random weights."""
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        head.bias.copy_(torch.randn(head.bias.shape, generator=generator) * 0.1)
    return net.eval()


def small_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return random_head(VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                         mlp_dim=32, num_classes=len(CLASSES)))


def small_swin() -> SwinTransformer:
    torch.manual_seed(0)
    return random_head(SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                                       window_size=[4, 4], num_classes=len(CLASSES)))


def eager(net: nn.Module, name: str) -> LoadedModel:
    info = ModelInfo(name=name, input_shape=(3, SIZE, SIZE), class_names=CLASSES)
    return LoadedModel(net, info, "state_dict", f"test-{name}-{id(net)}", 0)


def exported(net: nn.Module, name: str = "m", shape=(3, SIZE, SIZE)) -> LoadedModel:
    program = torch.export.export(net.eval(), (torch.randn(2, *shape),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return load_model(buffer.getvalue(), f"{name}.pt2", sidecar={"class_names": list(CLASSES[: net_outputs(net, shape)]),
                                                                 "mean": [0.5] * shape[0], "std": [0.25] * shape[0]})


def net_outputs(net, shape):
    with torch.no_grad():
        return net(torch.zeros(1, *shape)).shape[1]


@pytest.fixture(scope="module")
def vit():
    return small_vit()


@pytest.fixture(scope="module")
def vit_pt2(vit):
    return exported(vit, "vit")


@pytest.fixture(scope="module")
def swin():
    return small_swin()


@pytest.fixture(scope="module")
def x():
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


# ---------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("shape, image, expected", [
    ((2, 197, 768), (224, 224), ("tokens", (14, 14), 768, 1)),  # ViT-B/16: class token + 14×14 patches
    ((2, 196, 768), (224, 224), ("tokens", (14, 14), 768, 0)),  # no class token
    ((2, 65, 64), (64, 64), ("tokens", (8, 8), 64, 1)),
    ((2, 2 + 8 * 16, 32), (64, 128), ("tokens", (8, 16), 32, 2)),  # class + distillation token, 1:2 image
    ((2, 7, 7, 768), (224, 224), ("channels_last", (7, 7), 768, 0)),  # Swin
    ((2, 768, 7, 7), (224, 224), ("channels_first", (7, 7), 768, 0)),  # CNN
    ((2, 512, 4, 5), (100, 150), ("channels_first", (4, 5), 512, 0)),  # stride rounding on a 2:3 image
    ((2, 512, 2, 4), (64, 100), ("channels_first", (2, 4), 512, 0)),
    ((2, 16, 16, 16), (64, 64), ("channels_first", (16, 16), 16, 0)),  # ambiguous: channels first unless a norm
])
def test_layouts_of_known_outputs(shape, image, expected):
    layout = grid_layout(shape, image)
    assert (layout.kind, layout.grid, layout.channels, layout.extra_tokens) == expected


@pytest.mark.parametrize("shape, image", [
    ((2, 2048, 49), (224, 224)),  # (N, C, h·w) of a flattened CNN map: 2048 = 32×64 is not square
    ((2, 1, 49, 512), (224, 224)),  # MaxViT's (N, windows, tokens, C)
    ((2, 49, 1, 512), (224, 224)),
    ((2, 64, 49, 64), (224, 224)),  # MaxViT's first stage: 64 windows of 49 tokens is no 64×49 map
    ((2, 10), (224, 224)),
    ((2, 768, 1, 1), (224, 224)),
])
def test_outputs_that_are_not_maps(shape, image):
    assert grid_layout(shape, image) is None


def test_channels_last_norm_breaks_the_tie():
    assert grid_layout((2, 16, 16, 16), (64, 64), "LayerNorm").kind == "channels_last"
    assert token_grid(17, (32, 32)) == (1, (4, 4))


def test_to_grid_equals_pytorch_grad_cams_reshape_transforms():
    from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

    tokens = torch.randn(2, 197, 12)
    layout = grid_layout(tokens.shape, (224, 224))
    torch.testing.assert_close(layout.to_grid(tokens), vit_reshape_transform(tokens, 14, 14), rtol=0, atol=0)
    torch.testing.assert_close(layout.from_grid(layout.to_grid(tokens), tokens), tokens, rtol=0, atol=0)
    windows = torch.randn(2, 7, 7, 12)
    layout = grid_layout(windows.shape, (224, 224))
    # pytorch-grad-cam's Swin transform takes flattened (N, h·w, C) tokens; torchvision's Swin keeps (N, h, w, C).
    expected = swinT_reshape_transform(windows.reshape(2, 49, 12), 7, 7)
    torch.testing.assert_close(layout.to_grid(windows), expected, rtol=0, atol=0)
    torch.testing.assert_close(layout.from_grid(layout.to_grid(windows), windows), windows, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- token layers


def test_vit_lists_token_layers_with_their_grid_and_picks_the_last_blocks_input_norm(vit, vit_pt2):
    for model in (eager(vit, "vit"), vit_pt2):
        layers = dict(spatial_layers(model))
        assert layers["encoder.layers.encoder_layer_1.ln_1"] == (16, 4, 4)
        assert layers["encoder.layers.encoder_layer_1.mlp.0"] == (32, 4, 4)
        assert layers["conv_proj"] == (16, 4, 4)
        assert default_layer(model) == "encoder.layers.encoder_layer_1.ln_1"
        catalogue = {layer.name: layer for layer in layer_catalogue(model)}
        # Only the class token feeds the head: after the last attention, patch tokens get no gradient.
        assert not catalogue["encoder.ln"].gets_gradient and not catalogue["encoder.layers.encoder_layer_1.ln_2"].gets_gradient
        assert catalogue["encoder.layers.encoder_layer_1.ln_1"].gets_gradient
        assert catalogue["encoder.layers.encoder_layer_1.ln_1"].layout.extra_tokens == 1


def test_swin_picks_the_last_blocks_input_norm(swin):
    model = eager(swin, "swin")
    assert default_layer(model) == "features.3.1.norm1"
    assert dict(spatial_layers(model))["features.3.1.norm1"] == (32, 4, 4)
    assert {layer.name: layer.layout.kind for layer in layer_catalogue(model)}["features.3.1.norm1"] == "channels_last"


def pytorch_grad_cam_maps(net, layer_name, layout, x, targets):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=net, target_layers=[net.get_submodule(layer_name)], reshape_transform=layout.to_grid)
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()


def pearson(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("kind", ["vit", "vit_pt2", "swin"])
def test_grad_cam_on_the_default_token_layer_matches_pytorch_grad_cam(kind, vit, vit_pt2, swin, x):
    net = swin if kind == "swin" else vit
    model = {"vit": lambda: eager(vit, "vit"), "vit_pt2": lambda: vit_pt2, "swin": lambda: eager(swin, "swin")}[kind]()
    layer = default_layer(model)
    layout = next(entry.layout for entry in layer_catalogue(model) if entry.name == layer)
    targets = np.array([0, 1, 2, 1])
    ours = explain_batch(model, x, "grad_cam", targets=targets).maps
    theirs = pytorch_grad_cam_maps(net, layer, layout, x, targets)
    assert ours.shape == theirs.shape == (4, SIZE, SIZE)
    for a, b in zip(ours, theirs):
        assert np.ptp(a) > 0
        assert pearson(a, b) >= 0.99
    for sub in model.module.modules():
        assert not sub._forward_hooks and not sub._forward_pre_hooks


def test_grad_cam_on_a_token_layer_equals_a_direct_computation(vit, x):
    """Grad-CAM of ln_1's patch tokens: weights = mean gradient per channel over the grid, ReLU of the weighted sum."""
    model = eager(vit, "vit")
    layer = vit.get_submodule("encoder.layers.encoder_layer_1.ln_1")
    saved = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("a", out))
    targets = torch.tensor([2, 0, 1, 2])
    try:
        logits = vit(x)
        grads = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), saved["a"])[0]
    finally:
        handle.remove()
    a = saved["a"][:, 1:].detach().reshape(4, 4, 4, 16).permute(0, 3, 1, 2)  # drop the class token; (N, C, 4, 4)
    g = grads[:, 1:].reshape(4, 4, 4, 16).permute(0, 3, 1, 2)
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1, keepdim=True))
    expected = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    got = explain_batch(model, x, "grad_cam", targets=targets.numpy(), layer="encoder.layers.encoder_layer_1.ln_1").maps
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_guided_grad_cam_runs_on_a_token_layer(vit, x):
    maps = explain_batch(eager(vit, "vit"), x[:2], "guided_grad_cam", targets=[0, 1]).maps
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all() and np.abs(maps).max() > 0


# ---------------------------------------------------------------------------------------- rollout by hand


class OneBlock(nn.Module):
    """8×8 RGB → a class token + 2×2 patch tokens (4×4 patches); one attention block whose map is softmax(logits),
    set by hand; the head reads the class token's output (values = the tokens themselves)."""

    def __init__(self, attention: torch.Tensor, head_weight: torch.Tensor):
        super().__init__()
        heads, t, _ = attention.shape
        self.embed = nn.Conv2d(3, head_weight.shape[1], 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, head_weight.shape[1]))
        self.logits = nn.Parameter(attention.log())
        self.head = nn.Linear(head_weight.shape[1], head_weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(head_weight)
            self.head.bias.zero_()

    def tokens(self, x):
        patches = self.embed(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), patches], dim=1)

    def forward(self, x):
        tokens = self.tokens(x)
        attention = torch.softmax(self.logits.expand(x.shape[0], -1, -1, -1), dim=-1)  # (N, heads, 5, 5)
        mixed = (attention @ tokens.unsqueeze(1)).mean(dim=1)  # heads averaged
        return self.head(mixed[:, 0])


ATTENTION = torch.tensor([
    [[0.10, 0.40, 0.20, 0.20, 0.10]] + [[0.2] * 5] * 4,
    [[0.30, 0.05, 0.05, 0.50, 0.10]] + [[0.2] * 5] * 4,
])  # 2 heads; row 0 is the class token's attention


@pytest.fixture(scope="module")
def one_block():
    torch.manual_seed(0)
    net = OneBlock(ATTENTION, torch.randn(3, 4)).eval()
    return net, exported(net, "one_block", shape=(3, 8, 8))


def upsampled(grid: torch.Tensor, size: int = 8) -> np.ndarray:
    return F.interpolate(grid[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def test_rollout_of_one_hand_set_block(one_block):
    _, model = one_block
    images = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    got = explain_batch(model, images, "attention_rollout").maps
    # Heads averaged: class row [0.2, 0.225, 0.125, 0.35, 0.1]; half kept for the residual: 0.5·row + 0.5·e₀.
    patches = torch.tensor([0.225, 0.125, 0.35, 0.1]) * 0.5
    expected = upsampled(patches.reshape(1, 2, 2).expand(2, 2, 2))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_gradient_weighted_rollout_of_one_hand_set_block(one_block):
    net, model = one_block
    images = np.random.default_rng(1).integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    x = (torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2) - 0.5) / 0.25
    targets = np.array([1, 2])
    got = explain_batch(model, images, "gradient_rollout", targets=targets).maps
    with torch.no_grad():
        tokens = net.tokens(x)  # (N, 5, E)
    # y_c = W_c · mean_h(A_h @ T)[0], so ∂y_c/∂A_h[0, j] = W_c · T_j / heads and every other row's gradient is 0.
    w = net.head.weight.detach()[torch.from_numpy(targets)]  # (N, E)
    grad = (tokens @ w[:, :, None])[:, :, 0] / 2  # (N, 5)
    weighted = (grad[:, None, :] * ATTENTION[None, :, 0, :]).clamp(min=0).mean(dim=1)  # (N, 5): Ā's class row
    # R = I + Ā·I: the class row over the patch tokens is Ā[0, 1:].
    expected = upsampled(weighted[:, 1:].reshape(2, 2, 2))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(got[0]) > 0


def test_rollout_formulas_on_two_blocks_by_hand():
    a1 = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])[None]  # (1, 1, 3, 3)
    a2 = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])[None]
    r = attention_rollout([a1, a2])
    m1 = 0.5 * a1[0, 0] + 0.5 * torch.eye(3)
    m2 = 0.5 * a2[0, 0] + 0.5 * torch.eye(3)
    torch.testing.assert_close(r[0], m2 @ m1)
    torch.testing.assert_close(r[0, 0], torch.tensor([0.375, 0.125, 0.5]))  # rows stay distributions
    g1, g2 = torch.ones_like(a1), -torch.ones_like(a2)
    relevance = gradient_weighted_rollout([a1, a2], [g1, g2])
    torch.testing.assert_close(relevance[0], torch.eye(3) + a1[0, 0])  # the second block's relevance is all negative
    torch.testing.assert_close(patch_relevance(relevance, 1, (1, 2)), torch.tensor([[[0.5, 0.0]]]))


# ---------------------------------------------------------------------------------------- rollout on torchvision's ViT


def attention_from_torch(vit: VisionTransformer, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention as torch itself reports it (need_weights=True), from the input of its attention."""
    inputs = []
    handles = [block.ln_1.register_forward_hook(lambda _m, _i, out: inputs.append(out)) for block in vit.encoder.layers]
    try:
        with torch.no_grad():
            vit(x)
            return [block.self_attention(h, h, h, need_weights=True, average_attn_weights=False)[1]
                    for block, h in zip(vit.encoder.layers, inputs)]
    finally:
        for handle in handles:
            handle.remove()


def explicit_vit(vit: VisionTransformer, x: torch.Tensor):
    """torchvision's ViT written out with every attention map a tensor of its own: (logits, maps)."""
    n = len(x)
    t = vit._process_input(x)
    t = torch.cat([vit.class_token.expand(n, -1, -1), t], dim=1) + vit.encoder.pos_embedding
    maps = []
    for block in vit.encoder.layers:
        mha = block.self_attention
        h = block.ln_1(t)
        q, k, v = F.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        heads = mha.num_heads
        split = lambda z: z.reshape(n, z.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        maps.append(a)
        t = t + mha.out_proj((a @ v).transpose(1, 2).reshape(n, -1, q.shape[1] * q.shape[-1]))
        t = t + block.mlp(block.ln_2(t))
    return vit.heads(vit.encoder.ln(t)[:, 0]), maps


def test_explicit_reference_is_the_vit(vit, x):
    with torch.no_grad():
        torch.testing.assert_close(explicit_vit(vit, x)[0], vit(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["eager", "pt2"])
def test_rollout_equals_rollout_of_torchs_own_attention_weights(vit, vit_pt2, x, fmt):
    model = eager(vit, "vit") if fmt == "eager" else vit_pt2
    got = explain_batch(model, x, "attention_rollout").maps
    rollout = torch.eye(17).expand(4, 17, 17)
    for a in attention_from_torch(vit, x):
        mixed = 0.5 * a.mean(dim=1) + 0.5 * torch.eye(17)
        rollout = mixed @ rollout
    expected = upsampled(rollout[:, 0, 1:].reshape(4, 4, 4), SIZE)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert all(np.ptp(m) > 0 for m in got)


@pytest.mark.parametrize("fmt", ["eager", "pt2"])
def test_gradient_weighted_rollout_equals_chefers_rule_on_the_explicit_vit(vit, vit_pt2, x, fmt):
    model = eager(vit, "vit") if fmt == "eager" else vit_pt2
    targets = torch.tensor([0, 2, 1, 1])
    got = explain_batch(model, x, "gradient_rollout", targets=targets.numpy()).maps
    logits, maps = explicit_vit(vit, x)
    grads = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), maps)
    relevance = torch.eye(17).expand(4, 17, 17)
    for a, g in zip(maps, grads):
        relevance = relevance + (a * g).clamp(min=0).mean(dim=1) @ relevance
    expected = upsampled(relevance[:, 0, 1:].detach().reshape(4, 4, 4), SIZE)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)
    # Class-specific: another class gives another map.
    other = explain_batch(model, x, "gradient_rollout", targets=[1, 0, 2, 0]).maps
    assert np.abs(other - got).max() > 1e-3


def test_predictions_of_the_attention_copy_are_the_models(vit, vit_pt2, x):
    for model in (eager(vit, "vit"), vit_pt2):
        result = explain_batch(model, x, "gradient_rollout")
        np.testing.assert_allclose(result.probabilities, model.predict_proba(x), atol=1e-5)
        assert (result.targets == result.predicted).all()


def test_attention_methods_leave_no_hooks_and_no_gradients(vit_pt2, x):
    before = {k: v.clone() for k, v in vit_pt2.module.state_dict().items()}
    for method in ("attention_rollout", "gradient_rollout"):
        explain_batch(vit_pt2, x, method)
    assert hook_count(vit_pt2.module) == 0
    assert all(p.grad is None for p in vit_pt2.module.parameters())
    assert all(torch.equal(before[k], v) for k, v in vit_pt2.module.state_dict().items())
    assert not any(type(m).__name__ == "AttentionProbe" for m in vit_pt2.module.modules())  # probes only on copies
    with _ATTENTION_POOL.borrow(vit_pt2) as copy:
        assert hook_count(copy) == 0  # the pooled copy went back without the recording hooks


class Raising(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_a_model_that_raises_leaves_no_hooks_on_the_attention_copy(x):
    vit = small_vit()
    model = eager(vit, "raising")
    vit.heads.add_module("boom", Raising())
    for method in ("attention_rollout", "grad_cam"):
        with pytest.raises(RuntimeError, match="boom"):
            explain_batch(model, x[:1], method, targets=[0])
    for pool_module in (_ATTENTION_POOL,):
        with pool_module.borrow(model) as copy:
            assert hook_count(copy) == 0


# ---------------------------------------------------------------------------------------- where attention is not found


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_a_cnn_has_no_attention_and_says_so(x):
    model = exported(SmallCNN(), "cnn")
    for method in ("attention_rollout", "gradient_rollout"):
        with pytest.raises(XaiError, match="No attention map was found"):
            explain_batch(model, x[:2], method)
    assert not attention_support(model).available and "No attention map" in attention_support(model).reason
    assert available_methods(model) == [k for k in METHODS if not METHODS[k].needs_attention]
    assert default_layer(model) == "features"


def test_swin_attention_in_windows_cannot_be_rolled_out(swin, x):
    with pytest.raises(XaiError, match="their own code"):  # eager: computed inside torchvision's function
        explain_batch(eager(swin, "swin"), x[:2], "attention_rollout")
    with pytest.raises(XaiError, match="within windows"):  # exported: the softmax is found, its maps are per window
        explain_batch(exported(swin, "swin"), x[:2], "attention_rollout")


def test_attention_methods_are_offered_for_a_vit(vit, vit_pt2):
    for model in (eager(vit, "vit"), vit_pt2):
        support = attention_support(model)
        assert support.available and (support.blocks, support.tokens, support.extra_tokens, support.grid) == (2, 17, 1, (4, 4))
        assert support.describe() == "2 attention blocks over 1 + 4×4 tokens; the map is the first (class) token's row."
        assert {"attention_rollout", "gradient_rollout", "grad_cam"} <= set(available_methods(model))

"""Image methods against known answers, on export and TorchScript models, with no hooks or state left behind."""

import functools
import io
import threading

import numpy as np
import pytest
import torch
from torch import nn

from xai_core import XaiError
from xai_core.attribution.image import METHODS, default_layer, explain_batch, spatial_layers
from xai_core.loading import load_model
from xai_core.metrics import faithfulness_curves, localisation, sanity_check
from xai_core.datasets import images_to_tensor

SIZE = 32
REGION = (slice(8, 20), slice(14, 26))  # rows, columns: the only pixels the region model looks at


def region_mask() -> torch.Tensor:
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., REGION[0], REGION[1]] = 1.0
    return mask


class KeepRegion(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", region_mask())

    def forward(self, x):
        return x * self.mask


class RegionNet(nn.Module):
    """A CNN whose class scores depend only on pixels inside REGION: input and feature maps are zero elsewhere."""

    def __init__(self):
        super().__init__()
        self.keep = KeepRegion()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                      KeepRegion())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(self.keep(x)).mean(dim=(2, 3)))


def exported(model: nn.Module, sidecar: dict, shape=(3, SIZE, SIZE)) -> "LoadedModel":
    model.eval()
    program = torch.export.export(model, (torch.randn(2, *shape),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=256)},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return load_model(buffer.getvalue(), "m.pt2", sidecar={"mean": [0.5] * shape[0], "std": [0.25] * shape[0], **sidecar})


@pytest.fixture(scope="module")
def region_model():
    torch.manual_seed(0)
    net = RegionNet()
    with torch.no_grad():
        net.head.weight.mul_(30.0)  # confident outputs, so removing evidence visibly changes probabilities
    return exported(net, {"class_names": ["a", "b", "c"]})


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(6, SIZE, SIZE, 3), dtype=np.uint8)


def positive_share_in_region(maps):
    positive = np.clip(maps, 0, None)
    inside = positive[:, REGION[0], REGION[1]].sum(axis=(1, 2))
    return inside / positive.sum(axis=(1, 2))


@pytest.mark.parametrize("method", ["grad_cam", "integrated_gradients"])
def test_evidence_sits_in_the_known_region(region_model, images, method):
    explanation = explain_batch(region_model, images, method, layer="features" if METHODS[method].needs_layer else None)
    assert explanation.maps.shape == (6, SIZE, SIZE)
    assert (positive_share_in_region(explanation.maps) >= 0.9).all()


def test_occlusion_is_zero_where_no_window_touches_the_region(region_model, images):
    window = 4
    maps = explain_batch(region_model, images, "occlusion", window=window, stride=2).maps
    near = np.zeros((SIZE, SIZE), bool)
    near[REGION[0].start - window + 1: REGION[0].stop + window - 1, REGION[1].start - window + 1: REGION[1].stop + window - 1] = True
    # Zero up to float rounding: batches of different sizes may take different (equally exact) kernel paths.
    assert np.abs(maps[:, near]).max() > 0
    assert np.abs(maps[:, ~near]).max() <= 1e-5 * np.abs(maps[:, near]).max()


def test_grad_cam_equals_a_direct_computation(region_model, images):
    x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2).sub(0.5).div(0.25)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    module = region_model.module
    layer = module.get_submodule("features")
    saved = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("a", out))
    try:
        with torch.enable_grad():
            xin = x.clone().requires_grad_(True)
            logits = module(xin)
            activations = saved["a"]
            grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)[0]
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True))
    expected = nn.functional.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    got = explain_batch(region_model, images, "grad_cam", targets=target.numpy(), layer="features").maps
    np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-5)


def test_default_layer_is_the_last_spatial_one(region_model):
    assert default_layer(region_model) == "features"
    assert [name for name, _ in spatial_layers(region_model)][-1] == "features"


def test_every_method_runs_and_leaves_the_shared_model_untouched(region_model, images):
    before = {k: v.clone() for k, v in region_model.module.state_dict().items()}
    for method in METHODS:
        if METHODS[method].needs_attention:  # a CNN has no attention: refused with a reason, nothing hooked
            with pytest.raises(XaiError, match="attention"):
                explain_batch(region_model, images[:2], method)
            continue
        result = explain_batch(region_model, images[:2], method, n_samples=40, n_steps=8)
        assert result.maps.shape == (2, SIZE, SIZE) and np.isfinite(result.maps).all(), method
    for name, sub in region_model.module.named_modules():
        assert not sub._forward_hooks and not sub._forward_pre_hooks and not sub._backward_hooks, name
    assert all(torch.equal(before[k], v) for k, v in region_model.module.state_dict().items())
    assert all(p.grad is None for p in region_model.module.parameters())
    assert not region_model.module.training


def test_a_model_that_raises_leaves_no_hooks(images):
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 2)
            self.armed = False

        def forward(self, x):
            a = self.conv(x)
            if self.armed:
                raise RuntimeError("boom")
            return self.head(a.mean(dim=(2, 3)))

    from xai_core.model import LoadedModel, ModelInfo

    module = Exploding().eval()
    model = LoadedModel(module, ModelInfo(input_shape=(3, SIZE, SIZE), class_names=("x", "y"), mean=(0.5,) * 3,
                                          std=(0.25,) * 3), "state_dict", "exploding", 0)
    explain_batch(model, images[:1], "grad_cam", layer="conv")  # works, and leaves a pooled copy
    from xai_core.attribution import image as image_module

    for copy_, _hooks in image_module._POOL._free[(model.sha256, id(module))]:
        copy_.armed = True
    with pytest.raises(RuntimeError, match="boom"):
        explain_batch(model, images[:1], "grad_cam", layer="conv")
    for pool in image_module._POOL._free.values():
        for copy_, _hooks in pool:
            assert all(not s._forward_hooks and not s._backward_hooks for s in copy_.modules())
    assert all(not s._forward_hooks and not s._backward_hooks for s in module.modules())


def test_a_models_own_hooks_survive_explaining_and_only_those(images):
    """A pooled copy goes back with the hooks the model came with (here one that doubles the conv output), no more."""
    from xai_core.attribution import image as image_module
    from xai_core.model import LoadedModel, ModelInfo
    from xai_core.torch_internals import hook_count

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.conv(x).relu().mean(dim=(2, 3)))

    module = Net().eval()
    module.conv.register_forward_hook(lambda _m, _i, out: out * 2)
    model = LoadedModel(module, ModelInfo(input_shape=(3, SIZE, SIZE), class_names=("x", "y"), mean=(0.5,) * 3,
                                          std=(0.25,) * 3), "state_dict", "own-hooks", 0)
    first = explain_batch(model, images[:2], "grad_cam", layer="conv").probabilities
    second = explain_batch(model, images[:2], "grad_cam", layer="conv").probabilities
    expected = model.predict_proba(images_to_tensor(images[:2], model.info))
    np.testing.assert_allclose(first, expected, atol=1e-6)
    np.testing.assert_allclose(second, expected, atol=1e-6)  # the reused copy still doubles the conv output
    (pooled, _hooks), = image_module._POOL._free[(model.sha256, id(module))]
    assert hook_count(pooled) == 1 and hook_count(module) == 1


def _one_at_a_time_and_at_once(calls):
    """Each call's result run one after another, then all of them in as many threads released together."""
    sequential = [call() for call in calls]
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def work(i):
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sequential, results


def test_eight_threads_get_the_same_maps_as_one_at_a_time(region_model, images):
    calls = [functools.partial(lambda im, t: explain_batch(region_model, im, "grad_cam", targets=t,
                                                           layer="features").maps, images[i % 6: i % 6 + 1], [i % 3])
             for i in range(8)]
    sequential, results = _one_at_a_time_and_at_once(calls)
    for got, expected in zip(results, sequential):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_seeded_methods_in_eight_threads_get_the_same_maps_as_one_at_a_time(region_model, images):
    """SmoothGrad draws its noise from torch's global generator, seeded per call: sessions explaining at once must not
    reseed or consume each other's stream (each would get another's noise, and the page's seed would mean nothing)."""
    options = {"smoothgrad": True, "nt_samples": 6, "n_steps": 4, "noise_std": 0.5}
    calls = [functools.partial(lambda im, t, seed: explain_batch(region_model, im, "integrated_gradients", targets=t,
                                                                 seed=seed, **options).maps,
                               images[i % 6: i % 6 + 1], [i % 3], i % 2) for i in range(8)]
    sequential, results = _one_at_a_time_and_at_once(calls)
    for got, expected in zip(results, sequential):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_torchscript_supports_gradients_but_not_layer_methods(images):
    from xai_core.model import LoadedModel

    net = RegionNet().eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    model = load_model(buffer.getvalue(), "m.pt", overrides={"input_shape": [3, SIZE, SIZE], "class_names": ["a", "b", "c"],
                                                             "mean": [0.5] * 3, "std": [0.25] * 3})
    scripted = explain_batch(model, images[:2], "integrated_gradients", targets=[0, 2], n_steps=8).maps
    eager = explain_batch(LoadedModel(net, model.info, "state_dict", "eager-region-net", 0), images[:2],
                          "integrated_gradients", targets=[0, 2], n_steps=8).maps
    np.testing.assert_allclose(scripted, eager, rtol=1e-4, atol=1e-6)  # the same answer as the plain module
    with pytest.raises(XaiError, match="TorchScript hides its layers"):
        explain_batch(model, images[:2], "grad_cam")
    from xai_core.attribution.image import METHODS, available_methods, default_method

    offered = available_methods(model)  # the page opens on a method it offers: here one with no layer
    assert default_method(model) == offered[0] and not METHODS[offered[0]].needs_layer
    assert default_method(region_model := LoadedModel(net, model.info, "state_dict", "eager", 0)) == "grad_cam"
    assert "gradient_rollout" not in available_methods(region_model)


def test_targets_are_checked(region_model, images):
    assert explain_batch(region_model, images[:2], "saliency", targets=[0, 2]).targets.tolist() == [0, 2]  # last class
    for bad in ([0, 3], [-1, 0], [0, 1, 2]):  # the number of classes, negative, one target too many
        with pytest.raises(XaiError, match="Targets must be 2 class indices between 0 and 2"):
            explain_batch(region_model, images[:2], "saliency", targets=bad)
    assert explain_batch(region_model, images[:2], "saliency", targets=[1]).targets.tolist() == [1, 1]  # one for all


def test_pointing_game_known_answer():
    maps = np.zeros((2, 8, 8))
    maps[0, 2, 2] = 1.0  # inside the mask
    maps[1, 7, 7] = 1.0  # far outside
    masks = np.zeros((2, 8, 8), bool)
    masks[:, 1:4, 1:4] = True
    result = localisation(maps, masks, tolerance=1)
    assert result.hits.tolist() == [True, False]
    assert result.energy_inside.tolist() == [1.0, 0.0]


def test_faithfulness_prefers_the_true_region_over_its_complement(region_model, images):
    explanation = explain_batch(region_model, images, "grad_cam", layer="features")
    good = faithfulness_curves(region_model, images, explanation.maps, explanation.targets)
    inverted = faithfulness_curves(region_model, images, -explanation.maps, explanation.targets)
    assert good.deletion_auc < inverted.deletion_auc
    assert good.insertion_auc > inverted.insertion_auc


def test_sanity_check_flags_a_model_independent_map(region_model, images, monkeypatch):
    from xai_core.demo import load_demo

    shapes_model, shapes = load_demo("shapes")
    real = sanity_check(shapes_model, shapes.images[:4], "grad_cam")
    assert real.passed and real.correlations[-1] < 0.5 and len(real.layers) == len(real.correlations)
    from xai_core.attribution import image as image_module

    edges = image_module.ImageMethod("edges", "Edges", "", run=lambda m, x, t, l, o: x.diff(dim=-1, prepend=x[..., :1]).abs().sum(1))
    monkeypatch.setitem(image_module.METHODS, "edges", edges)
    fake = sanity_check(region_model, images[:3], "edges")
    assert not fake.passed and fake.correlations.min() > 0.99


def test_grad_cam_points_at_the_shapes(shapes_demo=None):
    from xai_core.demo import load_demo

    model, data = load_demo("shapes")
    subset = data.subset(np.arange(0, 400, 4))  # 100 test scenes
    explanation = explain_batch(model, subset.images, "grad_cam")
    assert localisation(explanation.maps, subset.masks).pointing_accuracy >= 0.9


def test_grad_cam_for_the_predicted_class_equals_grad_cam_with_that_class_given(region_model, images):
    implicit = explain_batch(region_model, images, "grad_cam", layer="features")
    explicit = explain_batch(region_model, images, "grad_cam", targets=implicit.predicted, layer="features")
    np.testing.assert_allclose(implicit.maps, explicit.maps, atol=1e-6)
    np.testing.assert_allclose(implicit.probabilities, region_model.predict_proba(
        torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2).sub(0.5).div(0.25)), atol=1e-5)
    assert (implicit.targets == implicit.predicted).all()


# ---------------------------------------------------------------------------------------- known answers on tiny models

C, H, W, K = 3, 8, 8, 3
MEAN, STD = (0.5,) * 3, (0.25,) * 3


@pytest.fixture(scope="module")
def linear_model():
    """Class score k = w_k · x + b_k on the normalised image; weights of both signs."""
    from xai_core.model import LoadedModel, ModelInfo

    torch.manual_seed(1)
    module = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).eval()
    info = ModelInfo(input_shape=(C, H, W), class_names=("a", "b", "c"), mean=MEAN, std=STD)
    return LoadedModel(module, info, "state_dict", "linear-known-answers", 0)


def linear_weights(model) -> torch.Tensor:
    return model.module[1].weight.detach().view(K, C, H, W)


@pytest.fixture(scope="module")
def small_images():
    return np.random.default_rng(2).integers(0, 256, size=(4, H, W, C), dtype=np.uint8)


TARGETS = np.array([0, 1, 2, 1])


def test_saliency_of_a_linear_model_is_the_weight_magnitude(linear_model, small_images):
    maps = explain_batch(linear_model, small_images, "saliency", targets=TARGETS).maps
    w = linear_weights(linear_model)
    for i, t in enumerate(TARGETS):
        expected = w[t].abs().amax(dim=0).numpy()  # |∂score/∂x|, the largest over the channels
        np.testing.assert_allclose(maps[i], expected, rtol=1e-5, atol=1e-7)
    assert (maps >= 0).all() and maps.max() > 0


def test_integrated_gradients_of_a_linear_model_is_weight_times_input_minus_baseline(linear_model, small_images):
    maps = explain_batch(linear_model, small_images, "integrated_gradients", targets=TARGETS, n_steps=16).maps
    x = images_to_tensor(small_images, linear_model.info)
    baseline = (0.0 - torch.tensor(MEAN)) / torch.tensor(STD)  # 'black': zero pixels, normalised
    w = linear_weights(linear_model)
    for i, t in enumerate(TARGETS):
        expected = (w[t] * (x[i] - baseline.view(C, 1, 1))).sum(dim=0).numpy()
        np.testing.assert_allclose(maps[i], expected, rtol=1e-4, atol=1e-5)
        # Completeness: the map sums to the score change from the baseline image to this one.
        with torch.no_grad():
            logits = linear_model.module(torch.stack([x[i], baseline.view(C, 1, 1).expand(C, H, W)]))
        assert maps[i].sum() == pytest.approx(float(logits[0, t] - logits[1, t]), rel=1e-4, abs=1e-4)
    assert (maps < 0).any() and (maps > 0).any()  # signed


def test_occlusion_of_a_linear_model_equals_the_hand_computation(linear_model, small_images):
    window, stride = 4, 2
    maps = explain_batch(linear_model, small_images, "occlusion", targets=TARGETS, window=window, stride=stride).maps
    x = images_to_tensor(small_images, linear_model.info)
    def probability(z):  # occlusion explains probabilities
        with torch.no_grad():
            return torch.softmax(linear_model.module(z), dim=1)

    for i, t in enumerate(TARGETS):
        total, count = np.zeros((H, W)), np.zeros((H, W))
        p = float(probability(x[i: i + 1])[0, t])
        for top in range(0, H - window + 1, stride):
            for left in range(0, W - window + 1, stride):
                occluded = x[i: i + 1].clone()
                occluded[..., top: top + window, left: left + window] = 0.0  # the baseline: the mean colour
                drop = p - float(probability(occluded)[0, t])
                total[top: top + window, left: left + window] += drop
                count[top: top + window, left: left + window] += 1
        expected = total / count * C  # each window's drop, averaged over the windows covering a pixel, summed over C
        np.testing.assert_allclose(maps[i], expected, rtol=1e-4, atol=1e-6)


def test_guided_grad_cam_is_positive_in_the_region_and_zero_elsewhere(region_model, images):
    maps = explain_batch(region_model, images, "guided_grad_cam", layer="features").maps
    inside = np.zeros((SIZE, SIZE), bool)
    inside[REGION] = True
    for m in maps:
        assert m[inside].max() > 0
        assert np.abs(m[~inside]).max() <= 1e-6 * np.abs(m).max()
    assert (positive_share_in_region(maps) > 0.999).all()


class RegionMean(nn.Module):
    """Class 0's logit is the mean of the normalised pixels inside REGION; the other classes' are 0 (no saturation)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mask", region_mask())

    def forward(self, x):
        s = (x * self.mask).sum(dim=(1, 2, 3)) / (x.shape[1] * self.mask.sum())
        zero = torch.zeros_like(s)
        return torch.stack([s, zero, zero], dim=1)


def region_scenes(n: int, seed: int = 0) -> np.ndarray:
    """Blocky colour scenes whose REGION holds its own bright blocks, so superpixels follow the region's border."""
    rng = np.random.default_rng(seed)
    scenes = np.repeat(np.repeat(rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8), 4, axis=1), 4, axis=2)
    inner = np.repeat(np.repeat(rng.integers(160, 256, size=(n, 2, 2, 3), dtype=np.uint8), 6, axis=1), 6, axis=2)
    scenes[:, REGION[0], REGION[1]] = inner
    return scenes


def test_lime_puts_the_largest_weight_on_superpixels_in_the_region():
    from skimage.segmentation import slic

    model = exported(RegionMean(), {"class_names": ["a", "b", "c"]})
    scenes = region_scenes(4)
    maps = explain_batch(model, scenes, "lime", targets=[0] * 4).maps
    inside = np.zeros((SIZE, SIZE), bool)
    inside[REGION] = True
    for scene, m in zip(scenes, maps):
        segments = slic(scene, n_segments=40, compactness=10, start_label=0, channel_axis=-1)  # LIME's superpixels
        weight = {s: float(m[segments == s].mean()) for s in np.unique(segments)}
        share_inside = {s: inside[segments == s].mean() for s in weight}
        top = max(weight, key=lambda s: abs(weight[s]))
        assert share_inside[top] > 0.5 and weight[top] > 0  # removing the region lowers class 0
        outside = [abs(w) for s, w in weight.items() if share_inside[s] == 0]
        assert max(outside) <= 1e-3 * weight[top]


def test_pointing_game_tolerance_at_and_one_past():
    masks = np.zeros((2, 12, 12), bool)
    masks[:, 4:6, 4:6] = True
    maps = np.zeros((2, 12, 12))
    maps[0, 4, 8] = 1.0  # 3 columns right of the mask's last column (5): a hit with tolerance 3 only
    maps[1, 4, 9] = 1.0  # 4 columns right
    assert localisation(maps, masks, tolerance=3).hits.tolist() == [True, False]
    assert localisation(maps, masks, tolerance=2).hits.tolist() == [False, False]
    negative = -np.ones((1, 12, 12))  # no positive attribution at all: nothing on the object
    assert localisation(negative, masks[:1]).energy_inside.tolist() == [0.0]


class PointwiseNet(nn.Module):
    """1×1 convolution, ReLU, mean over the image, linear head: every gradient can be written down by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C, 4, 1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, K)

    def forward(self, x):
        return self.head(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_guided_grad_cam_equals_the_hand_computation(small_images):
    from xai_core.model import LoadedModel, ModelInfo

    torch.manual_seed(3)
    net = PointwiseNet().eval()
    model = LoadedModel(net, ModelInfo(input_shape=(C, H, W), class_names=("a", "b", "c"), mean=MEAN, std=STD),
                        "state_dict", "pointwise-net", 0)
    maps = explain_batch(model, small_images, "guided_grad_cam", targets=TARGETS, layer="relu").maps
    x = images_to_tensor(small_images, model.info)
    conv_w = net.conv.weight.detach()[:, :, 0, 0]  # (4, C)
    head_w = net.head.weight.detach()  # (K, 4)
    with torch.no_grad():
        pre = net.conv(x)  # (n, 4, H, W)
    for i, t in enumerate(TARGETS):
        d_relu_out = head_w[t] / (H * W)  # ∂score/∂ReLU output, the same at every pixel
        cam = torch.relu((d_relu_out.view(4, 1, 1) * torch.relu(pre[i])).sum(dim=0))  # Grad-CAM on the ReLU's output
        # Guided backpropagation: through the ReLU only positive gradients, and only where its input was positive.
        d_pre = (pre[i] > 0) * torch.relu(d_relu_out).view(4, 1, 1)
        d_input = torch.einsum("kc,khw->chw", conv_w, d_pre)
        expected = (d_input * cam).sum(dim=0).numpy()
        np.testing.assert_allclose(maps[i], expected, rtol=1e-4, atol=1e-7)
    assert np.abs(maps).max() > 0 and (maps < 0).any()  # signed, and not all zero

"""Image methods against known answers, on export and TorchScript models, with no hooks or state left behind."""

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


def test_eight_threads_get_the_same_maps_as_one_at_a_time(region_model, images):
    jobs = [(images[i % 6: i % 6 + 1], [i % 3]) for i in range(8)]
    sequential = [explain_batch(region_model, im, "grad_cam", targets=t, layer="features").maps for im, t in jobs]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        im, t = jobs[i]
        results[i] = explain_batch(region_model, im, "grad_cam", targets=t, layer="features").maps

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(results, sequential):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_torchscript_supports_gradients_but_not_layer_methods(images):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(RegionNet().eval()), buffer)
    model = load_model(buffer.getvalue(), "m.pt", overrides={"input_shape": [3, SIZE, SIZE], "class_names": ["a", "b", "c"]})
    assert explain_batch(model, images[:2], "integrated_gradients", n_steps=8).maps.shape == (2, SIZE, SIZE)
    with pytest.raises(XaiError, match="TorchScript hides its layers"):
        explain_batch(model, images[:2], "grad_cam")


def test_targets_are_checked(region_model, images):
    with pytest.raises(XaiError, match="class indices"):
        explain_batch(region_model, images[:2], "saliency", targets=[0, 7])


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

"""The embedded demos: the scene generator is deterministic and its masks are right; the shipped assets load."""

import json

import numpy as np
import pytest

from xai_core.demo import ASSETS, DEMOS, load_demo
from xai_core.demo.shapes import SHAPE_CLASSES, generate_scenes
from xai_core.evaluation import evaluate
from xai_core.model import ModelInfo


def test_scenes_are_deterministic_by_seed():
    a, b, c = generate_scenes(10, seed=3), generate_scenes(10, seed=3), generate_scenes(10, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)


def test_classes_are_balanced():
    counts = np.bincount(generate_scenes(23, seed=0).labels, minlength=len(SHAPE_CLASSES))
    assert counts.max() - counts.min() <= 1 and len(SHAPE_CLASSES) >= 4


def test_masks_mark_the_object():
    scenes = generate_scenes(25, seed=1)
    for image, mask in zip(scenes.images.astype(float), scenes.masks):
        area = mask.mean()
        assert 0.02 < area < 0.5  # a visible object, never the whole image
        ring = np.zeros_like(mask)
        ys, xs = np.nonzero(mask)
        ring[max(ys.min() - 3, 0): ys.max() + 4, max(xs.min() - 3, 0): xs.max() + 4] = True
        inside = image[mask].mean(axis=0)
        around = image[ring & ~mask].mean(axis=0)
        assert np.linalg.norm(inside - around) > 40  # the object stands out from what surrounds it
        # The object is one colour (plus gentle shading and noise); the clutter around it is not.
        assert image[mask].std(axis=0).mean() < image[ring & ~mask].std(axis=0).mean() + 20


@pytest.mark.parametrize("key", list(DEMOS))
def test_demo_assets_load_through_the_upload_path_and_score_well(key):
    model, data = load_demo(key)
    sidecar = json.loads((ASSETS / DEMOS[key].model_file).with_suffix(".json").read_text())
    assert ModelInfo.from_dict(sidecar).name == model.info.name
    assert model.format == "export" and model.supports_layer_methods
    score = evaluate(model, data).score
    assert score >= (0.3 if key == "diabetes" else 0.95)
    assert (ASSETS / DEMOS[key].model_file).stat().st_size < 2 * 1024**2


def test_shapes_masks_align_with_the_test_images():
    model, data = load_demo("shapes")
    assert data.masks is not None and data.masks.shape == data.images.shape[:3]
    assert len(data) == 400 and set(np.unique(data.labels)) == set(range(len(SHAPE_CLASSES)))
    # Where the mask is, the image differs from the rest of its neighbourhood.
    image, mask = data.images[0].astype(float), data.masks[0]
    assert np.linalg.norm(image[mask].mean(0) - image[~mask].mean(0)) > 20

"""Images in figures travel as one PNG each (a few tens of kB), not as every pixel value in JSON, and are the same
pixels."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from xai_core.viz import image_trace
from xai_core.viz.image import image_figure, overlay, overlay_figure, overlay_grid_figure
from xai_core.viz.model import image_grid_figure


def pixels(trace) -> np.ndarray:
    assert trace.z is None and trace.source.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(trace.source.split(",", 1)[1]))).convert("RGB"))


def test_an_image_trace_holds_exactly_the_pixels_given():
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    trace = image_trace(rgb)
    np.testing.assert_array_equal(pixels(trace), rgb)
    assert trace.hoverinfo == "skip"
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_trace(rgb.astype(float))


def test_the_landing_image_grid_is_one_png_far_smaller_than_its_pixels_as_json():
    from xai_core.demo import load_demo_data, load_demo_model

    model = load_demo_model("shapes")
    data = load_demo_data("shapes", model)
    fig = image_grid_figure(data, model.info.class_names, np.zeros(len(data), dtype=int))
    (trace,) = fig.data
    montage = pixels(trace)
    np.testing.assert_array_equal(montage[16:16 + 64, 0:64], data.images[0])  # first image below its title row
    as_json = len(fig.to_json())
    assert as_json < 0.4 * montage.size * 4  # the same pixels as JSON numbers: ~4 characters each (was 1.19 MB)
    assert len(fig.layout.annotations) == 24


def test_explanation_figures_send_the_overlay_pixels():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    attribution = rng.normal(size=(32, 32))
    np.testing.assert_array_equal(pixels(overlay_figure(image, attribution, True, "t").data[0]),
                                  overlay(image, attribution, True))
    np.testing.assert_array_equal(pixels(image_figure(image[..., :1], "t").data[0]), np.repeat(image[..., :1], 3, -1))
    grid = pixels(overlay_grid_figure([image] * 2, [attribution] * 2, [True, False], ["a", "b"]).data[0])
    np.testing.assert_array_equal(grid[8:40, 0:32], overlay(image, attribution, True))


def test_montage_figures_are_as_tall_as_their_montage_at_the_assumed_width():
    from xai_core.viz import montage_height

    assert montage_height((240, 544, 3), columns=8, margins=40) == int(240 * 900 / 544) + 40  # 8 columns: 900 px wide
    assert montage_height((80, 68, 3), columns=1, margins=0) == int(80 * 360 / 68)  # one image: at most 360 px wide
    assert montage_height((10_000, 100, 3), columns=4, margins=60) == 2400 + 60  # capped
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    fig = overlay_grid_figure([image] * 3, [np.ones((64, 64))] * 3, [False] * 3, ["a", "b", "c"], columns=3)
    png = pixels(fig.data[0])
    assert png.shape[0] == fig.layout.yaxis.range[0]
    assert fig.layout.height - 60 == int(png.shape[0] * 900 / png.shape[1])  # no empty band at 900 px

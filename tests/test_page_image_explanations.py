"""The Image explanations page in AppTest on the image demos, and its pointers elsewhere."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import error_messages, open_page


def run_page(**state) -> AppTest:
    return open_page("views/image_explanations.py", **state)


@pytest.mark.parametrize("key", ["shapes", "digits"])
def test_page_on_image_demos(key):
    at = run_page(demo_key=key)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    assert at.title[0].value == "Image explanations"
    assert at.selectbox(key="ie_method").value == "grad_cam"
    if key == "shapes":
        metrics = {m.label: m.value for m in at.metric}
        assert float(metrics["Pointing game"].rstrip("%")) >= 90
        # The gallery's numbers, recomputed here: Grad-CAM on the first 16 scenes, peak within 2 px of the mask.
        from xai_core.attribution.image import explain_batch
        from xai_core.demo import load_demo

        model, data = load_demo("shapes")
        maps = explain_batch(model, data.images[:16], "grad_cam").maps
        masks = data.masks[:16]
        from scipy.ndimage import binary_dilation

        near = [binary_dilation(mask, structure=np.ones((5, 5), bool)) for mask in masks]  # within 2 px, any direction
        peaks = [np.unravel_index(m.argmax(), m.shape) for m in maps]
        pointing = np.mean([near[i][peak] for i, peak in enumerate(peaks)])
        positive = np.clip(maps, 0, None)
        on_object = np.mean((positive * masks).sum(axis=(1, 2)) / positive.sum(axis=(1, 2)))
        assert metrics["Pointing game"] == f"{pointing:.0%}"
        assert metrics["Attribution on the object"] == f"{on_object:.0%}"


def test_switching_method_and_class():
    at = run_page(demo_key="shapes")
    at.selectbox(key="ie_method").set_value("integrated_gradients").run()
    assert not at.exception and not error_messages(at)
    at.selectbox(key="ie_target_0").set_value(2).run()
    assert not at.exception and not error_messages(at)
    assert any("Baseline: black" in c.value for c in at.caption)


def test_tabular_model_gets_a_pointer():
    at = run_page(demo_key="wine")
    assert not at.exception
    assert any("explains image models" in i.value for i in at.info)


def test_vit_demo_offers_attention_methods_and_shows_token_layers_with_their_grid():
    at = run_page(demo_key="shapes_vit")
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    method = at.selectbox(key="ie_method")
    assert "Attention rollout" in method.options and "Gradient-weighted attention" in method.options
    assert method.value == "gradient_rollout"  # a transformer opens on the method that finds the object
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Pointing game"].rstrip("%")) >= 80  # the gallery's 16 scenes (Grad-CAM's: under 50%)

    at.selectbox(key="ie_method").set_value("grad_cam").run()
    assert not at.exception and not error_messages(at)
    layer = at.selectbox(key="ie_layer")
    assert layer.value == "encoder.layers.encoder_layer_2.ln_1"
    assert "encoder.layers.encoder_layer_2.ln_1 (64×8×8, tokens + 1 extra)" in layer.options
    assert any("Layer: encoder.layers.encoder_layer_2.ln_1 (64×8×8, tokens + 1 extra; extra tokens dropped)." in c.value
               for c in at.caption)

    at.selectbox(key="ie_method").set_value("attention_rollout").run()
    assert not at.exception and not error_messages(at)
    assert any("not class-specific" in c.value and "Assumes 3 attention blocks over 1 + 8×8 tokens; the map is the "
               "first (class) token's row." in c.value for c in at.caption)
    # The gallery's pointing game for rollout, recomputed here on the first 16 scenes.
    from scipy.ndimage import binary_dilation

    from xai_core.attribution.image import explain_batch
    from xai_core.demo import load_demo

    model, data = load_demo("shapes_vit")
    maps = explain_batch(model, data.images[:16], "attention_rollout").maps
    near = [binary_dilation(mask, structure=np.ones((5, 5), bool)) for mask in data.masks[:16]]
    pointing = np.mean([near[i][np.unravel_index(m.argmax(), m.shape)] for i, m in enumerate(maps)])
    assert {m.label: m.value for m in at.metric}["Pointing game"] == f"{pointing:.0%}"


def test_cnn_demo_does_not_offer_attention_methods():
    at = run_page(demo_key="shapes")
    assert not at.exception
    options = at.selectbox(key="ie_method").options
    assert "Grad-CAM" in options and "Attention rollout" not in options and "Gradient-weighted attention" not in options

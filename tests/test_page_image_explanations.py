"""The Image explanations page in AppTest on the image demos, and its pointers elsewhere."""

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

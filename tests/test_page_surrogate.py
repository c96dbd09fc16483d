"""The Surrogate tree page in AppTest on the three tabular demos and an image demo."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import error_messages, open_page


def run_page(**state) -> AppTest:
    return open_page("views/surrogate_tree.py", **state)


@pytest.mark.parametrize("key, minimum", [("breast_cancer", 0.9), ("wine", 0.85), ("diabetes", 0.6)])
def test_page_on_tabular_demos(key, minimum):
    at = run_page(demo_key=key)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Fidelity"]) >= minimum
    assert any("if" in c.value or "<=" in c.value for c in at.code)


def test_changing_depth_reruns():
    at = run_page(demo_key="breast_cancer")
    at.slider(key="st_depth").set_value(1).run()
    assert not at.exception
    assert float({m.label: m.value for m in at.metric}["Fidelity"]) >= 0.85


def test_image_model_says_no_surrogate():
    at = run_page(demo_key="digits")
    assert not at.exception
    assert any("not available here" in i.value for i in at.info)

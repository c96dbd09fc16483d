"""The Feature importance page in AppTest on the tabular demos."""

import pytest

from tests.apptest import error_messages, open_page
from streamlit.testing.v1 import AppTest


def run_page(**state) -> AppTest:
    return open_page("views/feature_importance.py", **state)


@pytest.mark.parametrize("key", ["wine", "breast_cancer", "diabetes"])
def test_page_on_tabular_demos(key):
    at = run_page(demo_key=key)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    assert at.title[0].value == "Feature importance"
    captions = " ".join(c.value for c in at.caption)
    assert "Efficiency check" in captions and "✓" in captions.split("Efficiency check")[1][:80]
    result = next(iter(at.session_state["shap_values"].values()))
    assert result.efficiency_gap < 1e-4
    assert result.is_exact == (key != "breast_cancer")  # 30 features → sampled with standard errors


def test_class_selector_switches_the_explained_output():
    at = run_page(demo_key="wine")
    selector = at.selectbox(key="fi_class")
    assert selector.value == 0
    selector.set_value(2).run()
    assert not at.exception
    assert "P(class_2)" in " ".join(c.value for c in at.caption)


def test_image_model_gets_a_pointer_not_an_error():
    at = run_page(demo_key="shapes")
    assert not at.exception
    assert any("explains tabular models" in i.value for i in at.info)

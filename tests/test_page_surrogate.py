"""The Surrogate tree page in AppTest on the three tabular demos and an image demo."""

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import error_messages, open_page
from xai_core.datasets import TableSet
from xai_core.demo import load_demo, load_demo_data
from xai_core.surrogate import SurrogateSettings, fit_surrogate


def run_page(**state) -> AppTest:
    return open_page("views/surrogate_tree.py", **state)


def tree_fitted_here(key: str, depth: int = 3):
    """The surrogate the page should show: fitted directly on the demo's training then test rows."""
    model, test = load_demo(key)
    train = load_demo_data(key, model, split="train")
    rows = TableSet(pd.concat([train.X, test.X], ignore_index=True), pd.concat([train.y, test.y], ignore_index=True))
    return fit_surrogate(model, rows, SurrogateSettings(max_depth=depth))


def check_shown(at: AppTest, expected) -> None:
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Fidelity"] == f"{expected.fidelity:.3f}"
    assert metrics[f"Model {expected.score_name}"] == f"{expected.model_score:.3f}"
    assert metrics[f"Tree {expected.score_name}"] == f"{expected.tree_score:.3f}"
    low, high = expected.fidelity_interval
    assert any(f"95% interval {low:.3f} – {high:.3f}" in c.value for c in at.caption)
    assert [c.value.strip() for c in at.code] == [expected.rules.strip()]


@pytest.mark.parametrize("key, minimum", [("breast_cancer", 0.9), ("wine", 0.85), ("diabetes", 0.6)])
def test_page_on_tabular_demos(key, minimum):
    at = run_page(demo_key=key)
    expected = tree_fitted_here(key)
    check_shown(at, expected)
    assert expected.fidelity >= minimum


def test_changing_depth_reruns():
    at = run_page(demo_key="breast_cancer")
    at.slider(key="st_depth").set_value(1).run()
    expected = tree_fitted_here("breast_cancer", depth=1)
    check_shown(at, expected)
    assert expected.tree.get_depth() == 1 and expected.fidelity >= 0.85


def test_image_model_says_no_surrogate():
    at = run_page(demo_key="digits")
    assert not at.exception
    assert any("not available here" in i.value for i in at.info)


def test_text_model_is_pointed_to_the_text_page():
    at = run_page(demo_key="text_bilstm")
    assert not at.exception
    assert any("for text models they are not available" in i.value and "Text explanations" in i.value for i in at.info)
    assert not any("image models" in i.value for i in at.info)

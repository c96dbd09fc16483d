"""The Feature importance page in AppTest on the tabular demos."""

import json

import numpy as np
import pytest

from tests.apptest import error_messages, open_page
from streamlit.testing.v1 import AppTest

from xai_core.attribution.results import TabularAttribution
from xai_core.attribution.shapley import ShapleySettings


def run_page(**state) -> AppTest:
    return open_page("views/feature_importance.py", **state)


def number_input_keys(at: AppTest) -> set[str]:
    return {w.key for w in at.number_input}


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("key", ["wine", "breast_cancer", "diabetes"])
def test_page_on_tabular_demos(key):
    at = run_page(demo_key=key)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    assert at.title[0].value == "Feature importance"
    text = captions(at)
    assert "Efficiency check" in text and "✓" in text.split("Efficiency check")[1][:80]
    result = next(iter(at.session_state["shap_values"].values()))
    assert isinstance(result, TabularAttribution) and isinstance(result.settings, ShapleySettings)
    assert result.efficiency_gap < 1e-4
    sampled = key == "breast_cancer"  # 30 features → sampled with standard errors; 13 and 10 → exact
    assert result.is_exact != sampled
    # The sampler's controls and its report appear only when the values are sampled.
    assert ("fi_target" in number_input_keys(at)) == sampled and ("fi_perms" in number_input_keys(at)) == sampled
    assert ("Permutations used per row" in text) == sampled
    # The comparison figure: one series per importance (SHAP, deletion, permutation), ranked by mean |SHAP|.
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-fi_compare")]
    series = json.loads(chart.proto.spec)["data"]
    assert [s["name"].split(" (")[0] for s in series] == ["mean |SHAP value|", "feature deletion",
                                                            "permutation importance"]
    output_index = at.selectbox(key="fi_class").value if key != "diabetes" else 0
    top = result.to_global(output_index).ranking()[:15]
    assert series[0]["y"][::-1] == top


def test_sampled_page_reports_permutations_used_and_follows_the_target():
    at = run_page(demo_key="breast_cancer")
    assert at.number_input(key="fi_target").value == pytest.approx(0.01)
    result = next(iter(at.session_state["shap_values"].values()))
    used = result.n_permutations_used
    assert result.settings.target_relative_se == 0.01 and result.settings.n_permutations == 1536
    text = captions(at)
    assert f"min {used.min():,}, median {int(np.median(used)):,}, max {used.max():,}" in text
    assert f"max {result.relative_standard_errors.max():.2%}" in text

    at.number_input(key="fi_target").set_value(0.2).run()
    assert not at.exception, at.exception
    loose = next(iter(at.session_state["shap_values"].values()))
    assert loose.settings.target_relative_se == pytest.approx(0.2)
    stopped = loose.n_permutations_used < 1536
    assert stopped.any()  # a loose target lets rows stop early …
    assert np.all(loose.relative_standard_errors[stopped] <= 0.2)  # … once they reach it
    assert loose.n_permutations_used.sum() < used.sum()
    assert "sampled Shapley values" in captions(at) and "at most 20.0%" in captions(at)


def test_class_selector_switches_the_explained_output():
    at = run_page(demo_key="wine")
    selector = at.selectbox(key="fi_class")
    assert selector.value == 0
    selector.set_value(2).run()
    assert not at.exception
    assert "P(class_2)" in captions(at)


def test_image_model_gets_a_pointer_not_an_error():
    at = run_page(demo_key="shapes")
    assert not at.exception
    assert any("explains tabular models" in i.value for i in at.info)

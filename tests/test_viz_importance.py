"""Feature-importance figures show what the result says: ranked bars, dots at the values, a waterfall that ends at f(x)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xai_core.attribution.results import GlobalImportance
from xai_core.attribution.shapley import model_output_fn, shapley_values
from xai_core.attribution.tabular import gradient_x_input, integrated_gradients
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, ModelInfo
from xai_core.viz.importance import beeswarm_figure, importance_comparison_figure, shap_bar_figure, waterfall_figure

W = np.array([3.0, -1.0, 0.5, 0.0])


def linear_model():
    model = nn.Linear(4, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([W.tolist()]))
        model.bias.zero_()
    info = ModelInfo(task="regression", input_kind="tabular", input_shape=(4,), feature_names=("a", "b", "c", "d"))
    return LoadedModel(model.eval(), info, "export", "x", 0)


def rows():
    return pd.DataFrame(np.random.default_rng(0).normal(size=(20, 4)), columns=list("abcd"))


def linear_result():
    return shapley_values(model_output_fn(linear_model()), rows(), output_names=["y"])


def test_bars_are_ranked_with_the_largest_on_top_at_mean_absolute_value():
    X = rows().to_numpy()
    expected = np.abs(W * (X - X.mean(axis=0))).mean(axis=0)  # mean |φ| of a linear model, baseline = the mean row
    fig = shap_bar_figure(linear_result())
    bars = fig.data[0]
    assert list(bars.y)[::-1] == ["a", "b", "c", "d"]  # horizontal bars are drawn bottom-up
    np.testing.assert_allclose(list(bars.x)[::-1], expected, atol=1e-5)
    assert not bars.error_x.visible  # exact values: no error bars
    assert fig.layout.xaxis.title.text == "mean |SHAP value| (effect on y)"


def test_sampled_values_get_error_bars_of_their_mean_standard_error():
    f = model_output_fn(linear_model())
    X = rows()

    def bent(Z):  # a product term makes the sampler uncertain
        return f(Z) + (Z[:, 0] * Z[:, 1] * Z[:, 2])[:, None]

    result = shapley_values(bent, X, method="sampling", n_permutations=64, output_names=["y"])
    bars = shap_bar_figure(result).data[0]
    order = list(bars.y)[::-1]
    index = [list("abcd").index(n) for n in order]
    assert bars.error_x.visible
    np.testing.assert_allclose(list(bars.error_x.array)[::-1], result.standard_errors[:, index, 0].mean(axis=0))


def test_waterfall_starts_at_the_base_value_and_ends_at_the_prediction():
    result = linear_result()
    fig = waterfall_figure(result, row=3, top_k=2)
    waterfall = fig.data[0]
    assert waterfall.measure[0] == "absolute" and waterfall.measure[-1] == "total"
    assert np.isclose(waterfall.x[0], result.base_values[0], atol=1e-9)
    assert np.isclose(waterfall.x[0] + sum(waterfall.x[1:-1]), waterfall.x[-1], atol=1e-5)
    assert np.isclose(waterfall.x[-1], result.outputs[3, 0], atol=1e-6)
    phi = result.values[3, :, 0]
    top2 = np.argsort(-np.abs(phi))[:2]
    np.testing.assert_allclose(waterfall.x[1:3], phi[top2])
    assert waterfall.y[-2].startswith("2 other features")
    assert np.isclose(waterfall.x[3], phi[np.argsort(-np.abs(phi))[2:]].sum())


def test_beeswarm_puts_each_row_at_its_value_coloured_by_its_feature_value():
    result = linear_result()
    dots = beeswarm_figure(result).data[0]
    X = result.rows.to_numpy()
    order = np.argsort(-np.abs(result.values[:, :, 0]).mean(axis=0), kind="stable")
    np.testing.assert_allclose(dots.x, np.concatenate([result.values[:, j, 0] for j in order]))
    j = order[0]
    scaled = (X[:, j] - X[:, j].min()) / (X[:, j].max() - X[:, j].min())
    np.testing.assert_allclose(dots.marker.color[:20], scaled)


def test_comparison_ranks_by_the_first_importance_and_scales_each_to_one():
    shap = linear_result().to_global(0)
    other = GlobalImportance(key="deletion", method="feature deletion", feature_names=["d", "c", "b", "a"],
                             values=np.array([0.0, 1.0, 2.0, 8.0]), errors=np.array([0.0, 0.1, 0.2, 0.4]),
                             error_kind="standard error over rows", measure="drop in R²", score_name="R²",
                             reference_score=0.9, n_rows=20, settings=None)
    fig = importance_comparison_figure([shap, other])
    first, second = fig.data
    assert list(first.y)[::-1] == ["a", "b", "c", "d"] and list(second.y) == list(first.y)
    assert max(first.x) == pytest.approx(1.0) and max(second.x) == pytest.approx(1.0)
    np.testing.assert_allclose(list(second.x)[::-1], [1.0, 0.25, 0.125, 0.0])  # matched by feature name, not position
    np.testing.assert_allclose(list(second.error_x.array)[::-1], [0.05, 0.025, 0.0125, 0.0])
    assert first.name == "mean |SHAP value| (effect on y)" and second.name == "feature deletion (drop in R²)"


def test_figures_name_the_method_they_show_and_refuse_a_waterfall_without_a_base_value():
    model, X = linear_model(), rows()
    ig = integrated_gradients(model, X)
    assert shap_bar_figure(ig).layout.xaxis.title.text == "mean |IG attribution| (effect on prediction)"
    waterfall = waterfall_figure(ig, row=0).data[0]
    assert np.isclose(waterfall.x[-1], ig.outputs[0, 0], atol=1e-6)
    with pytest.raises(XaiError, match="no base value"):
        waterfall_figure(gradient_x_input(model, X), row=0)


def test_beeswarm_draws_a_seeded_sample_of_many_rows_but_ranks_and_colours_by_all_of_them():
    X = pd.DataFrame(np.random.default_rng(1).normal(size=(50, 4)), columns=list("abcd"))
    result = shapley_values(model_output_fn(linear_model()), X, output_names=["y"])
    dots = beeswarm_figure(result, max_rows=7)
    order = np.argsort(-np.abs(result.values[:, :, 0]).mean(axis=0), kind="stable")
    assert len(dots.data[0].x) == 7 * 4
    first = np.asarray(dots.data[0].x[:7])
    shown = [int(np.flatnonzero(np.isclose(result.values[:, order[0], 0], v))[0]) for v in first]
    assert len(set(shown)) == 7 and shown == sorted(shown)  # distinct rows, in row order
    for rank, j in enumerate(order):  # every feature's dots come from the same rows
        np.testing.assert_allclose(dots.data[0].x[7 * rank:7 * (rank + 1)], result.values[shown, j, 0])
    column = X.iloc[:, order[0]].to_numpy()  # colour scaled by the min/max of all 50 rows, not of the 7 drawn
    np.testing.assert_allclose(dots.data[0].marker.color[:7],
                               (column[shown] - column.min()) / (column.max() - column.min()))
    assert "7 of 50 rows drawn" in dots.layout.title.text
    assert np.array_equal(beeswarm_figure(result, max_rows=7).data[0].x, dots.data[0].x)  # seeded
    assert "rows drawn" not in beeswarm_figure(result, max_rows=50).layout.title.text

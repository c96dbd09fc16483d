"""Feature-importance figures show what the result says: ranked bars, and a waterfall that ends at f(x)."""

import numpy as np
import pandas as pd
import torch
from torch import nn

from xai_core.attribution.shapley import model_output_fn, shapley_values
from xai_core.model import LoadedModel, ModelInfo
from xai_core.viz.importance import beeswarm_figure, shap_bar_figure, waterfall_figure


def linear_result():
    model = nn.Linear(4, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, -1.0, 0.5, 0.0]]))
        model.bias.zero_()
    info = ModelInfo(task="regression", input_kind="tabular", input_shape=(4,), feature_names=("a", "b", "c", "d"))
    loaded = LoadedModel(model.eval(), info, "export", "x", 0)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 4)), columns=list("abcd"))
    return shapley_values(model_output_fn(loaded), X, output_names=["y"])


def test_bars_are_ranked_with_the_largest_on_top():
    fig = shap_bar_figure(linear_result())
    bars = fig.data[0]
    assert list(bars.y)[::-1][:3] == ["a", "b", "c"]  # horizontal bars are drawn bottom-up
    assert list(bars.x) == sorted(bars.x)


def test_waterfall_starts_at_the_base_value_and_ends_at_the_prediction():
    result = linear_result()
    fig = waterfall_figure(result, row=3, top_k=2)
    waterfall = fig.data[0]
    assert waterfall.measure[0] == "absolute" and waterfall.measure[-1] == "total"
    assert np.isclose(waterfall.x[0] + sum(waterfall.x[1:-1]), waterfall.x[-1], atol=1e-5)
    assert np.isclose(waterfall.x[-1], result.outputs[3, 0], atol=1e-6)
    assert waterfall.y[-2].startswith("2 other features")


def test_beeswarm_has_one_dot_per_row_and_feature():
    result = linear_result()
    assert len(beeswarm_figure(result).data[0].x) == 20 * 4

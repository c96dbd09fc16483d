"""Shapley values against known answers: linear models, a brute-force enumeration of permutations, axioms."""

import itertools
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xai_core.attribution.shapley import (
    EXACT_MAX_FEATURES,
    METHOD_EXACT,
    METHOD_SAMPLING,
    ShapleyResult,
    make_background,
    model_output_fn,
    shapley_values,
)
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, ModelInfo


class Linear(nn.Module):
    """f(x) = w·x + c."""

    def __init__(self, w, c=0.7):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.c = nn.Parameter(torch.tensor(c, dtype=torch.float32))

    def forward(self, x):
        return (x @ self.w + self.c)[:, None]


class ProductPlusRelu(nn.Module):
    """f(x) = x0·x1 + max(x2, 0); x3 and x4 are ignored."""

    def forward(self, x):
        return (x[:, 0] * x[:, 1] + torch.relu(x[:, 2]))[:, None]


def loaded(module, d, task="regression", class_names=()):
    info = ModelInfo(task=task, input_kind="tabular", input_shape=(d,), class_names=tuple(class_names))
    return LoadedModel(module.eval(), info, "state_dict", "", 0)


def mlp(d, k, seed=0, hidden=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, k))


def brute_force_shapley(f, x, bg_rows, bg_weights):
    """Average marginal contribution over all d! orderings, v(S) = Σ_b w_b f(x_S, b_rest), written plainly."""
    d = len(x)

    def v(coalition):
        total = 0.0
        for b, w in zip(bg_rows, bg_weights):
            z = np.array([x[i] if i in coalition else b[i] for i in range(d)], dtype=np.float32)
            total += w * float(f(z[None])[0, 0])
        return total

    phi = np.zeros(d)
    perms = list(itertools.permutations(range(d)))
    for order in perms:
        coalition = set()
        for i in order:
            before = v(coalition)
            coalition.add(i)
            phi[i] += v(coalition) - before
    return phi / len(perms)


@pytest.fixture(scope="module")
def linear_setup():
    rng = np.random.default_rng(0)
    w = rng.normal(size=6)
    data = pd.DataFrame(rng.normal(size=(200, 6)) * 2 + 1, columns=[f"f{i}" for i in range(6)])
    f = model_output_fn(loaded(Linear(w), 6))
    return w, data, f


# ---------------------------------------------------------------- linear model: φ_i = w_i (x_i − b_i)


def test_exact_linear_mean_baseline(linear_setup):
    w, data, f = linear_setup
    X = data.iloc[:4]
    res = shapley_values(f, X, make_background(data, "mean"))
    expected = w * (X.to_numpy() - data.to_numpy().mean(axis=0))
    assert res.method == METHOD_EXACT
    assert res.values.shape == (4, 6, 1)
    np.testing.assert_allclose(res.values[:, :, 0], expected, atol=1e-5)
    assert np.all(res.standard_errors == 0)
    assert res.efficiency_gap < 1e-5
    assert res.feature_names == list(data.columns)


@pytest.mark.parametrize("kind", ["kmeans", "random"])
def test_exact_linear_background_sample(linear_setup, kind):
    w, data, f = linear_setup
    X = data.iloc[10:13]
    bg = make_background(data, kind, k=8, seed=1)
    assert len(bg) == 8 and bg.weights.sum() == pytest.approx(1.0)
    res = shapley_values(f, X, bg)
    weighted_mean = bg.weights @ bg.rows
    np.testing.assert_allclose(res.values[:, :, 0], w * (X.to_numpy() - weighted_mean), atol=1e-5)
    assert res.settings.baseline == kind and res.settings.n_background == 8


def test_kmeans_weights_are_cluster_sizes(linear_setup):
    _, data, _ = linear_setup
    bg = make_background(data, "kmeans", k=5, seed=0)
    # Weighted centres of k-means clusters average back to the data mean.
    np.testing.assert_allclose(bg.weights @ bg.rows, data.to_numpy().mean(axis=0), atol=1e-8)
    np.testing.assert_allclose(bg.weights * len(data), np.round(bg.weights * len(data)), atol=1e-9)


def test_sampler_on_linear_model_is_exact_with_zero_error(linear_setup):
    # Every marginal contribution of a linear model is w_i (x_i − b_i), whatever the coalition, so each
    # permutation is already exact: the estimate is exact and the reported standard error is 0.
    w, data, f = linear_setup
    X = data.iloc[:3]
    res = shapley_values(f, X, make_background(data, "mean"), method="sampling", n_permutations=64)
    assert res.method == METHOD_SAMPLING
    np.testing.assert_allclose(res.values[:, :, 0], w * (X.to_numpy() - data.to_numpy().mean(axis=0)), atol=1e-5)
    assert res.standard_errors.max() < 1e-5


# ---------------------------------------------------------------- axioms against brute force


@pytest.fixture(scope="module")
def product_setup():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(40, 5))
    data[:, 1] = data[:, 0]  # x0 and x1 play identical roles in the data too, so the background keeps them symmetric
    X = np.array([[1.5, 1.5, 0.8, -2.0, 3.0], [-0.5, -0.5, -1.0, 1.0, 0.0], [2.0, 2.0, 0.3, 0.0, -1.0]])
    f = model_output_fn(loaded(ProductPlusRelu(), 5))
    return data, X, f


@pytest.mark.parametrize("background", ["mean", "random"])
def test_exact_matches_brute_force_and_axioms(product_setup, background):
    data, X, f = product_setup
    bg = make_background(data, background, k=3, seed=0)
    res = shapley_values(f, X, bg)
    for r, x in enumerate(X):
        np.testing.assert_allclose(res.values[r, :, 0], brute_force_shapley(f, x, bg.rows, bg.weights), atol=1e-5)
    assert res.efficiency_gap < 1e-5  # efficiency: base + Σφ = f(x)
    np.testing.assert_allclose(res.values[:, 0], res.values[:, 1], atol=1e-6)  # symmetry
    assert np.abs(res.values[:, 3:]).max() < 1e-6  # dummy: ignored features get 0


def test_exact_matches_closed_form_for_product(product_setup):
    data, X, f = product_setup
    b = data.mean(axis=0)
    res = shapley_values(f, X, make_background(data, "mean"))
    x0, x1, x2 = X[:, 0], X[:, 1], X[:, 2]
    np.testing.assert_allclose(res.values[:, 0, 0], 0.5 * (x0 - b[0]) * (x1 + b[1]), atol=1e-5)
    np.testing.assert_allclose(res.values[:, 2, 0], np.maximum(x2, 0) - max(b[2], 0), atol=1e-5)


def test_sampler_on_small_nonlinear_within_reported_error(product_setup):
    data, X, f = product_setup
    bg = make_background(data, "mean")
    exact = shapley_values(f, X, bg)
    est = shapley_values(f, X, bg, method="sampling", n_permutations=400, seed=5)
    gap = np.abs(est.values - exact.values)
    assert np.all(gap <= 4 * est.standard_errors + 1e-6)
    assert est.standard_errors[:, :3].max() > 0  # the interaction makes the sampler uncertain
    assert est.efficiency_gap < 1e-5  # every walk sums to f(x) − v(∅)


# ---------------------------------------------------------------- sampler on larger models


def test_forced_sampler_agrees_with_exact_on_mlp():
    d = 10
    f = model_output_fn(loaded(mlp(d, 3, seed=1), d, "classification", ("a", "b", "c")))
    rng = np.random.default_rng(1)
    data = rng.normal(size=(100, d)) * 2
    bg = make_background(data, "kmeans", k=4)
    X = data[:3]
    exact = shapley_values(f, X, bg)
    est = shapley_values(f, X, bg, method="sampling", n_permutations=600, seed=2)
    assert exact.output_names == ["a", "b", "c"]
    assert np.all(np.abs(est.values - exact.values) <= 4 * est.standard_errors + 1e-7)
    assert np.median(est.standard_errors) > 0


def products_and_relus(X):
    """18 features: x0·x1 + x2·x3 + x4·x5 + Σ_{i≥6} c_i · max(x_i, 0); Shapley values known in closed form."""
    coef = np.linspace(0.5, 2.0, 12)
    out = X[:, 0] * X[:, 1] + X[:, 2] * X[:, 3] + X[:, 4] * X[:, 5] + np.maximum(X[:, 6:], 0) @ coef
    return out[:, None].astype(np.float64)


def closed_form_products_and_relus(x, b):
    coef = np.linspace(0.5, 2.0, 12)
    phi = np.zeros(18)
    for a, c in ((0, 1), (2, 3), (4, 5)):
        phi[a] = 0.5 * (x[a] - b[a]) * (x[c] + b[c])
        phi[c] = 0.5 * (x[c] - b[c]) * (x[a] + b[a])
    phi[6:] = coef * (np.maximum(x[6:], 0) - np.maximum(b[6:], 0))
    return phi


def test_sampler_above_exact_limit_within_reported_error():
    d = 18
    assert d > EXACT_MAX_FEATURES
    rng = np.random.default_rng(7)
    data = rng.normal(size=(300, d)).astype(np.float32)
    bg = make_background(data, "mean")
    X = rng.normal(size=(4, d)).astype(np.float32) * 1.5
    res = shapley_values(products_and_relus, X, bg, n_permutations=512, seed=0)  # auto → sampling
    assert res.method == METHOD_SAMPLING
    b = bg.rows[0].astype(np.float32).astype(np.float64)
    truth = np.stack([closed_form_products_and_relus(x.astype(np.float64), b) for x in X])
    se = res.standard_errors[:, :, 0]
    assert np.all(np.abs(res.values[:, :, 0] - truth) <= 4 * se + 1e-6)
    assert se[:, :6].min() > 0  # the products interact: real uncertainty
    assert se[:, 6:].max() < 1e-6  # additive terms: antithetic walks are exact
    assert res.efficiency_gap < 1e-5


def test_sampler_is_reproducible_and_row_independent():
    f = products_and_relus
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 18))
    bg = make_background(data)
    a = shapley_values(f, data[:3], bg, n_permutations=64, seed=4)
    b = shapley_values(f, data[:3], bg, n_permutations=64, seed=4)
    c = shapley_values(f, data[:1], bg, n_permutations=64, seed=4)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.values[:1], c.values, atol=1e-12)
    assert a.settings.n_permutations == 64 and a.settings.seed == 4


# ---------------------------------------------------------------- speed, batching, result object


def test_exact_13_features_is_fast():
    d = 13
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    f = model_output_fn(loaded(net, d, "classification", ("a", "b", "c")))
    data = np.random.default_rng(0).normal(size=(50, d))
    bg = make_background(data)
    shapley_values(f, data[:1], bg)  # warm-up
    t = time.perf_counter()
    res = shapley_values(f, data[:4], bg)
    per_row = (time.perf_counter() - t) / 4
    assert per_row < 0.1, f"{1000 * per_row:.0f} ms per row"  # benchmark: a few ms per row
    assert res.efficiency_gap < 1e-5


def test_many_small_rows_batch_and_report_progress(product_setup):
    data, _, f = product_setup
    calls = []
    res = shapley_values(f, data, make_background(data), progress=lambda done, total, msg: calls.append((done, total, msg)))
    assert calls[-1][:2] == (len(data), len(data)) and "rows" in calls[-1][2]
    assert res.values.shape == (40, 5, 1)
    single = shapley_values(f, data[7:8], make_background(data))
    np.testing.assert_allclose(res.values[7], single.values[0], atol=1e-9)


def test_result_tables(linear_setup):
    w, data, f = linear_setup
    res = shapley_values(f, data.iloc[:3], make_background(data))
    assert isinstance(res, ShapleyResult)
    long = res.to_frame(0)
    assert len(long) == 3 * 6
    assert set(long.columns) >= {"row", "feature", "feature_value", "shapley_value", "standard_error", "base_value"}
    assert long["feature_value"].iloc[1] == data.iloc[0, 1]
    wide = res.to_frame(0, wide=True)
    assert list(wide.columns) == ["base_value", *data.columns, "model_output"]
    np.testing.assert_allclose(wide["base_value"] + wide[list(data.columns)].sum(axis=1), wide["model_output"], atol=1e-5)
    top = res.global_importance(0)
    assert top["feature"].iloc[0] == data.columns[np.argmax(np.abs(res.values[:, :, 0]).mean(axis=0))]
    assert res.base_values.shape == (1,) and res.outputs.shape == (3, 1)


def test_model_output_fn_gives_probabilities_without_grad():
    net = mlp(4, 3)
    lm = loaded(net, 4, "classification", ("a", "b", "c"))
    f = model_output_fn(lm)
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    p = f(X)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(p, torch.softmax(net(torch.from_numpy(X)), 1).detach().numpy(), atol=1e-6)
    assert all(q.grad is None for q in net.parameters())
    assert f.output_names == ["a", "b", "c"]
    with pytest.raises(XaiError, match="4 features"):
        f(np.zeros((2, 5), np.float32))


# ---------------------------------------------------------------- errors a user can cause


def test_nan_in_rows_raises(linear_setup):
    _, data, f = linear_setup
    X = data.iloc[:3].copy()
    X.iloc[1, 2] = np.nan
    column = X.columns[2]
    with pytest.raises(XaiError, match=rf"NaN\) or infinite values: \{{'{column}': 1\}} \(rows \[2\]"):
        shapley_values(f, X, make_background(data))


@pytest.mark.parametrize(
    "X, background, match",
    [
        (np.zeros((0, 6)), None, "empty"),
        (np.zeros(6), None, "2-D"),
        (np.zeros((1, 6)), None, "background"),
        (np.zeros((2, 6)), np.zeros((5, 4)), "columns"),
    ],
)
def test_bad_inputs_raise(linear_setup, X, background, match):
    _, _, f = linear_setup
    with pytest.raises(XaiError, match=match):
        shapley_values(f, X, background)


def test_mismatched_column_names_raise(linear_setup):
    _, data, f = linear_setup
    with pytest.raises(XaiError, match="order"):
        shapley_values(f, data.iloc[:2], make_background(data[data.columns[::-1]]))


def test_exact_refuses_too_many_features():
    with pytest.raises(XaiError, match="sampling"):
        shapley_values(products_and_relus, np.zeros((2, 18)), np.zeros((1, 18)), method="exact")
    assert math.comb(EXACT_MAX_FEATURES, 2) > 0

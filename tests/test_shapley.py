"""Shapley values against known answers: linear models, a brute-force enumeration of permutations, axioms."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xai_core.attribution.shapley import (
    EXACT_MAX_FEATURES,
    METHOD_EXACT,
    METHOD_SAMPLING,
    MIN_PAIRS,
    relative_standard_error,
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


def test_antithetic_pairs_are_exact_for_pairwise_games(product_setup):
    # With one background row, x0·x1 + max(x2, 0) is a game with interactions of order ≤ 2: a permutation and its
    # reverse see the x0–x1 interaction once from each side, so every antithetic pair is already exact.
    data, X, f = product_setup
    bg = make_background(data, "mean")
    exact = shapley_values(f, X, bg)
    est = shapley_values(f, X, bg, method="sampling", n_permutations=400, seed=5)
    np.testing.assert_allclose(est.values, exact.values, atol=1e-5)
    assert est.standard_errors.max() < 1e-6
    np.testing.assert_array_equal(est.n_permutations_used, [2 * MIN_PAIRS] * 3)  # so the sampler stops at once
    assert est.efficiency_gap < 1e-5  # every walk sums to f(x) − v(∅)


def test_sampler_on_third_order_game_within_reported_error(product_setup):
    data, X, _ = product_setup

    def triple(Z):  # x0·x1·x2: a third-order interaction, which antithetic pairs do not cancel
        return (Z[:, 0] * Z[:, 1] * Z[:, 2]).astype(np.float64)[:, None]

    bg = make_background(data, "mean")
    exact = shapley_values(triple, X, bg)
    est = shapley_values(triple, X, bg, method="sampling", n_permutations=400, seed=5, target_relative_se=None)
    assert est.relative_standard_errors.min() > 1e-3  # real uncertainty, not rounding
    assert np.all(np.abs(est.values - exact.values) <= 4 * est.standard_errors + 1e-9)
    assert np.abs(est.values[:, 3:]).max() < 1e-9  # dummy features: every marginal contribution is 0
    assert est.efficiency_gap < 1e-9


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
    assert est.relative_standard_errors.min() > 1e-3  # the network's interactions leave real sampling error


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
    # A permutation and its reverse see each pairwise interaction once from each side, so antithetic pairs are
    # exact for games with interactions of order ≤ 2 (products of two features, additive terms): SE ≈ 0 (rounding).
    assert se.max() < 1e-6
    np.testing.assert_allclose(res.values[:, :, 0], truth, atol=1e-5)
    assert res.efficiency_gap < 1e-5


def saturated_score(X):
    """18 features through a steep sigmoid: threshold-like coalitions, the hard case for sampling (like a saturated MLP)."""
    w = np.linspace(-1.0, 1.5, X.shape[1])
    return (1 / (1 + np.exp(-3 * (X @ w))))[:, None]


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


def test_row_offset_seeds_each_row_by_its_index_in_the_dataset():
    # A slice explained with row_offset = its first row's index gives exactly the whole table's values for those rows
    # (sampling stops included); without the offset it is another sample of the same rows.
    f = saturated_score
    rng = np.random.default_rng(2)
    data = rng.normal(size=(40, 18))
    bg = make_background(data)
    X = data[:7]
    whole = shapley_values(f, X, bg, n_permutations=512, target_relative_se=0.05, seed=3)
    for start, stop in ((0, 3), (3, 7), (5, 6), (2, 7)):
        part = shapley_values(f, X[start:stop], bg, n_permutations=512, target_relative_se=0.05, seed=3,
                              row_offset=start)
        np.testing.assert_array_equal(part.values, whole.values[start:stop])
        np.testing.assert_array_equal(part.standard_errors, whole.standard_errors[start:stop])
        np.testing.assert_array_equal(part.n_permutations_used, whole.n_permutations_used[start:stop])
    unshifted = shapley_values(f, X[3:7], bg, n_permutations=512, target_relative_se=0.05, seed=3)
    assert not np.array_equal(unshifted.values, whole.values[3:7])
    # Row 3's stream is default_rng([seed, 3]): its first 2 permutations and their reverses, walked by hand.
    one = shapley_values(f, X[3:4], bg, n_permutations=4, target_relative_se=None, seed=3, row_offset=3)
    perms = np.random.default_rng([3, 3]).permuted(np.broadcast_to(np.arange(18), (2, 18)), axis=1)
    x, b = X[3].astype(np.float32), bg.rows[0].astype(np.float32)
    phi = np.zeros(18)
    for order in (*perms, *perms[:, ::-1]):
        z = b.copy()
        for i in order:
            before = f(z[None])[0, 0]
            z[i] = x[i]
            phi[i] += (f(z[None])[0, 0] - before) / 4
    np.testing.assert_allclose(one.values[0, :, 0], phi, rtol=1e-6, atol=1e-9)


def test_row_offset_must_be_a_non_negative_integer(linear_setup):
    w, data, f = linear_setup
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(XaiError, match="row_offset"):
            shapley_values(f, data.iloc[:2], data, row_offset=bad)


# ---------------------------------------------------------------- stopping when the target relative error is reached


def test_linear_model_stops_at_the_minimum_and_spends_the_cap_without_target(linear_setup):
    # Every walk of a linear model gives the exact values, so the standard error is 0 at the first check.
    w, data, f = linear_setup
    X = data.iloc[:3]
    bg = make_background(data, "mean")
    early = shapley_values(f, X, bg, method="sampling", n_permutations=1024, target_relative_se=0.01)
    np.testing.assert_array_equal(early.n_permutations_used, [2 * MIN_PAIRS] * 3)
    np.testing.assert_allclose(early.values[:, :, 0], w * (X.to_numpy() - bg.rows[0]), atol=1e-5)
    assert early.relative_standard_errors.max() <= 0.01
    assert early.settings.target_relative_se == 0.01 and early.settings.n_permutations == 1024
    full = shapley_values(f, X, bg, method="sampling", n_permutations=1024, target_relative_se=None)
    np.testing.assert_array_equal(full.n_permutations_used, [1024] * 3)
    assert full.settings.target_relative_se is None


def test_hard_game_spends_the_cap_and_reports_the_error_it_reached():
    d = 18
    rng = np.random.default_rng(7)
    bg = make_background(rng.normal(size=(300, d)), "mean")
    X = rng.normal(size=(3, d)) * 1.5
    res = shapley_values(saturated_score, X, bg, n_permutations=256, target_relative_se=0.001, seed=0)
    np.testing.assert_array_equal(res.n_permutations_used, [256] * 3)
    assert np.all(res.relative_standard_errors > 0.001)  # the target was not reached, and the result says so
    for r in range(3):  # the reported relative SE is ‖SE‖ / ‖φ‖ of the row (φ is far from 0 here)
        expected = np.linalg.norm(res.standard_errors[r]) / np.linalg.norm(res.values[r])
        assert res.relative_standard_errors[r] == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def mlp_game():
    d = 10
    f = model_output_fn(loaded(mlp(d, 3, seed=1), d, "classification", ("a", "b", "c")))
    data = np.random.default_rng(1).normal(size=(100, d)) * 2
    bg = make_background(data, "kmeans", k=4)
    X = data[:4]
    return f, bg, X, shapley_values(f, X, bg, method="exact")


def test_early_stop_meets_the_target_within_the_reported_error_of_exact(mlp_game):
    f, bg, X, exact = mlp_game
    target = 0.03
    est = shapley_values(f, X, bg, method="sampling", n_permutations=20_000, target_relative_se=target, seed=3)
    used = est.n_permutations_used
    assert used.max() > 2 * MIN_PAIRS and np.all(used < 20_000)  # some rows needed more than the minimum; none the cap
    assert np.all(est.relative_standard_errors <= target)
    assert np.all(np.abs(est.values - exact.values) <= 4 * est.standard_errors + 1e-7)
    error = np.linalg.norm((est.values - exact.values).reshape(4, -1), axis=1) / np.linalg.norm(
        exact.values.reshape(4, -1), axis=1)
    assert np.all(error <= 3 * target)
    assert est.efficiency_gap < 1e-5


def test_stopped_values_are_the_first_permutations_of_the_row_stream():
    # A row that stopped after m permutations has exactly the values of a run spending m: same seed, same stream,
    # whatever the checkpoints, the chunk size or the other rows.
    f = saturated_score
    rng = np.random.default_rng(0)
    bg = make_background(rng.normal(size=(50, 18)))
    X = rng.normal(size=(3, 18))
    early = shapley_values(f, X, bg, n_permutations=4096, target_relative_se=0.05, seed=9)
    assert len(set(early.n_permutations_used)) > 1  # rows stopped at different points
    for r, m in enumerate(early.n_permutations_used):  # row r's stream is seeded by (seed, r)
        fixed = shapley_values(f, X[: r + 1], bg, n_permutations=int(m), target_relative_se=None, seed=9)
        np.testing.assert_allclose(fixed.values[r], early.values[r], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fixed.standard_errors[r], early.standard_errors[r], rtol=1e-9, atol=1e-15)
    small_chunks = shapley_values(f, X, bg, n_permutations=4096, target_relative_se=0.05, seed=9, chunk_size=97)
    np.testing.assert_array_equal(small_chunks.n_permutations_used, early.n_permutations_used)
    np.testing.assert_allclose(small_chunks.values, early.values, rtol=0, atol=1e-12)


def only_one_feature_present(X):
    """v(S) = 1 when exactly one feature is present (x = 1, baseline 0): every φ is 0, yet walks disagree."""
    return (np.abs(X.sum(axis=1) - 1) < 1e-6).astype(np.float64)[:, None]


def test_zero_values_stop_against_the_spread_of_the_game():
    # By symmetry φ = 0 and Σφ = v(N) − v(∅) = 0, but a walk gives +1 to its first feature and −1 to its second.
    # ‖SE‖ / ‖φ̂‖ stays ≈ 1 forever; against 10 % of the spread (here 1) the sampler can stop.
    res = shapley_values(only_one_feature_present, np.ones((1, 4)), np.zeros((1, 4)), method="sampling",
                         n_permutations=100_000, target_relative_se=0.2, seed=0)
    assert res.n_permutations_used[0] < 100_000
    assert res.relative_standard_errors[0] <= 0.2
    assert np.linalg.norm(res.standard_errors) <= 0.2 * 0.1 * 1.0
    assert np.all(np.abs(res.values) <= 4 * res.standard_errors)


def test_relative_standard_error_known_answers():
    assert relative_standard_error(np.array([3.0, 4.0]), np.array([0.3, 0.4])) == pytest.approx(0.1)
    assert relative_standard_error(np.zeros(2), np.zeros(2), spread=0.0) == 0.0  # nothing moves: nothing uncertain
    assert relative_standard_error(np.array([0.0, 1e-9]), np.array([0.3, 0.4]), spread=2.0) == pytest.approx(2.5)
    assert relative_standard_error(np.array([3.0, 4.0]), np.array([0.3, 0.4]), spread=2.0) == pytest.approx(0.1)


def test_a_row_equal_to_the_background_stops_at_once_with_zero_values(linear_setup):
    _, data, f = linear_setup
    bg = make_background(data, "mean")
    res = shapley_values(f, np.vstack([bg.rows[0], bg.rows[0] + 1.0]), bg, method="sampling", n_permutations=512)
    assert res.n_permutations_used[0] == 2 * MIN_PAIRS and np.all(res.values[0] == 0)
    assert res.relative_standard_errors[0] == 0.0


# ---------------------------------------------------------------- batching, result object


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
    X = data.iloc[:3]
    mean = data.to_numpy().mean(axis=0)
    expected = w * (X.to_numpy() - mean)  # (3, 6)
    res = shapley_values(f, X, make_background(data))
    assert isinstance(res, ShapleyResult) and res.key == "shapley"
    long = res.to_frame(0)
    assert list(long.columns) == ["row", "feature", "feature_value", "output", "attribution", "standard_error",
                                  "base_value", "model_output"]
    np.testing.assert_allclose(long["attribution"], expected.reshape(-1), atol=1e-5)  # row-major: row, then feature
    np.testing.assert_allclose(long["feature_value"], X.to_numpy().reshape(-1))
    assert list(long["row"]) == list(np.repeat(X.index, 6)) and list(long["feature"][:6]) == list(data.columns)
    np.testing.assert_allclose(long["base_value"], mean @ w + 0.7, atol=1e-5)
    np.testing.assert_allclose(long["model_output"], np.repeat(X.to_numpy() @ w + 0.7, 6), atol=1e-5)
    wide = res.to_frame(0, wide=True)
    assert list(wide.columns) == ["base_value", *data.columns, "model_output"]
    np.testing.assert_allclose(wide[list(data.columns)].to_numpy(), expected, atol=1e-5)
    top = res.global_importance(0)
    assert list(top.columns) == ["feature", "importance", "error"]
    order = np.argsort(-np.abs(expected).mean(axis=0))
    assert list(top["feature"]) == [data.columns[i] for i in order]
    np.testing.assert_allclose(top["importance"], np.abs(expected).mean(axis=0)[order], atol=1e-5)
    with pytest.raises(XaiError, match="one output"):
        res.to_frame(None, wide=True)


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
    with pytest.raises(XaiError, match="too many.*Use method='sampling'"):
        shapley_values(products_and_relus, np.zeros((2, 18)), np.zeros((1, 18)), method="exact")


def test_auto_is_exact_up_to_the_limit_and_sampled_above():
    def weighted_sum(X):
        return (X @ np.arange(1.0, X.shape[1] + 1))[:, None]

    for d, expected in ((EXACT_MAX_FEATURES, METHOD_EXACT), (EXACT_MAX_FEATURES + 1, METHOD_SAMPLING)):
        x = np.ones((1, d))
        res = shapley_values(weighted_sum, x, np.zeros((1, d)), n_permutations=64)
        assert res.method == expected
        np.testing.assert_allclose(res.values[0, :, 0], np.arange(1.0, d + 1), atol=1e-4)  # w·(x − 0)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1])
def test_target_outside_zero_one_is_refused(linear_setup, target):
    _, data, f = linear_setup
    with pytest.raises(XaiError, match="target_relative_se .*0.01"):
        shapley_values(f, data.iloc[:2], make_background(data), method="sampling", target_relative_se=target)

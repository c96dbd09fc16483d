"""Surrogates against known answers: a model that is a tree, held-out rows that never leak, LIME on a linear model."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sklearn.metrics import r2_score

from xai_core.datasets import TableSet
from xai_core.model import LoadedModel, ModelInfo
from xai_core.surrogate import (SurrogateSettings, fidelity_by_depth, fit_surrogate, local_surrogate, split_rows,
                                synthetic_points)


class KnownTree(nn.Module):
    """class 2 if x0 > 1; else class 1 if x2 ≤ -0.5; else class 0 (logits, sharp)."""

    def forward(self, x):
        c2 = (x[:, 0] > 1.0).float()
        c1 = (1 - c2) * (x[:, 2] <= -0.5).float()
        c0 = 1 - c2 - c1
        return 20 * torch.stack([c0, c1, c2], dim=1)


def table(n=600, d=4, seed=0):
    X = pd.DataFrame(np.random.default_rng(seed).normal(size=(n, d)), columns=[f"f{i}" for i in range(d)])
    return TableSet(X)


def wrap(module, task="classification", classes=("a", "b", "c"), d=4):
    info = ModelInfo(task=task, input_kind="tabular", input_shape=(d,), class_names=classes if task == "classification" else (),
                     feature_names=tuple(f"f{i}" for i in range(d)))
    return LoadedModel(module.eval(), info, "export", f"test-{id(module)}", 0)


def test_a_model_that_is_a_tree_is_recovered_exactly():
    result = fit_surrogate(wrap(KnownTree()), table(), SurrogateSettings(max_depth=2, min_samples_leaf=1, augment=20))
    t = result.tree.tree_
    assert result.fidelity == 1.0
    splits = {(result.feature_names[t.feature[i]], round(float(t.threshold[i]), 1)) for i in range(t.node_count)
              if t.children_left[i] != -1}
    assert splits == {("f0", 1.0), ("f2", -0.5)}
    assert result.fidelity_interval == (1.0, 1.0)
    rules = result.rules
    assert re.search(r"f0 <= (1\.00\d|0\.99\d)", rules) and re.search(r"f2 <= -(0\.50\d|0\.49\d)", rules), rules
    assert "class:" not in rules and {line.split("predict: ")[1] for line in rules.splitlines() if "predict: " in line} \
        == {"a", "b", "c"}


def test_held_out_rows_never_reach_the_fit():
    fit, hold = split_rows(100, 0.3, seed=3)
    assert len(hold) == 30 and not set(fit) & set(hold) and len(fit) + len(hold) == 100
    X = np.arange(40, dtype=float).reshape(20, 2)
    assert synthetic_points(X, per_row=3, noise=0.0, seed=0).tolist() == np.repeat(X, 3, axis=0).tolist()

    seen = []

    class Spy(KnownTree):
        def forward(self, x):
            seen.append(x.detach().numpy().copy())
            return super().forward(x)

    data = table(n=200)
    result = fit_surrogate(wrap(Spy()), data, SurrogateSettings(augment=0, holdout=0.25))
    fit_calls = seen[0]  # first model call labels the fit set; the next ones score the held-out rows
    held = data.X.to_numpy()[result.holdout_index].astype(np.float32)
    assert not any((np.abs(fit_calls - h).sum(axis=1) == 0).any() for h in held)


def test_augmentation_does_not_lower_fidelity_on_a_smooth_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))
    model, data = wrap(net), table(n=300)
    plain = fit_surrogate(model, data, SurrogateSettings(max_depth=3, augment=0))
    augmented = fit_surrogate(model, data, SurrogateSettings(max_depth=3, augment=20))
    # With 90 held-out rows a gain is within noise (the benchmark measures it); a loss would be a bug.
    assert augmented.fidelity >= plain.fidelity
    assert augmented.n_synthetic == 20 * len(augmented.fit_index) and plain.n_synthetic == 0
    curve = fidelity_by_depth(model, data, depths=[1, 3])
    assert curve[["depth", "fit"]].values.tolist() == [[1, "plain"], [1, "augmented"], [3, "plain"], [3, "augmented"]]
    row = curve[(curve.depth == 3) & (curve.fit == "plain")].iloc[0]
    assert row.fidelity == plain.fidelity and (row.low, row.high) == plain.fidelity_interval
    assert row.leaves == plain.tree.get_n_leaves() <= 2**3


def test_regression_fidelity_is_r2_against_the_models_output_on_held_out_rows():
    net = nn.Linear(4, 1)
    data = table()
    result = fit_surrogate(wrap(net, task="regression"), data, SurrogateSettings(max_depth=6))
    X_hold = data.X.to_numpy()[result.holdout_index]
    with torch.no_grad():
        model_hold = net(torch.tensor(X_hold, dtype=torch.float32))[:, 0].numpy()
    assert result.fidelity_name.startswith("R²")
    assert result.fidelity == pytest.approx(r2_score(model_hold, result.tree.predict(X_hold)), abs=1e-6)
    assert 0.5 < result.fidelity < 1.0  # a depth-6 tree approximates a plane well, never exactly


def own_bootstrap(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_bootstrap)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_fidelity_is_the_held_out_agreement_computed_directly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    data = table(n=400)
    settings = SurrogateSettings(max_depth=2, augment=5, seed=4)
    result = fit_surrogate(wrap(net), data, settings)
    X_hold = data.X.to_numpy()[result.holdout_index]
    with torch.no_grad():
        model_class = net(torch.tensor(X_hold, dtype=torch.float32)).argmax(dim=1).numpy()
    agree = (result.tree.predict(X_hold) == model_class).astype(float)
    assert result.fidelity == pytest.approx(agree.mean(), abs=1e-12)
    assert 0.5 < result.fidelity < 1.0  # not trivially perfect: the check has something to compare
    assert result.fidelity_interval == pytest.approx(own_bootstrap(agree, seed=4), abs=1e-12)
    assert len(result.holdout_index) == 120 and result.n_synthetic == 5 * 280


def test_model_and_tree_scores_are_accuracies_against_the_labels_on_held_out_rows():
    data = table(n=300, seed=5)
    X = data.X.to_numpy()
    truth = np.where(X[:, 0] > 1.0, 2, np.where(X[:, 2] <= -0.5, 1, 0))  # KnownTree's own classes …
    flipped = np.arange(300) % 7 == 0
    labels = np.where(flipped, (truth + 1) % 3, truth)  # … with every 7th label wrong
    data = TableSet(data.X, pd.Series(labels), "y")
    result = fit_surrogate(wrap(KnownTree()), data, SurrogateSettings(max_depth=2, min_samples_leaf=1, augment=20))
    hold = result.holdout_index
    assert result.score_name == "accuracy"
    assert result.model_score == pytest.approx(1 - flipped[hold].mean())
    assert result.tree_score == pytest.approx(np.mean(result.tree.predict(X[hold]) == labels[hold]))


def test_a_model_that_is_a_depth_two_tree_is_matched_exactly_from_depth_two():
    data = table()
    settings = SurrogateSettings(max_depth=2, min_samples_leaf=1, augment=20)
    curve = fidelity_by_depth(wrap(KnownTree()), data, depths=[1, 2, 3], settings=settings).set_index(["depth", "fit"])
    augmented = curve.xs("augmented", level="fit")
    assert augmented.loc[2, "fidelity"] == 1.0 and augmented.loc[3, "fidelity"] == 1.0
    assert (augmented.loc[2, "low"], augmented.loc[2, "high"]) == (1.0, 1.0)
    # One split cannot tell three classes apart: at least the rarest held-out class is missed.
    hold = split_rows(len(data), settings.holdout, settings.seed)[1]
    X = data.X.to_numpy()[hold]
    classes = np.where(X[:, 0] > 1.0, 2, np.where(X[:, 2] <= -0.5, 1, 0))
    rarest = np.bincount(classes, minlength=3).min() / len(classes)
    assert curve.loc[(1, "plain"), "fidelity"] <= 1 - rarest + 1e-12
    assert curve.loc[(1, "augmented"), "fidelity"] <= 1 - rarest + 1e-12
    assert (curve["leaves"] <= 2 ** curve.index.get_level_values("depth")).all()
    assert curve.loc[(1, "plain"), "leaves"] == 2


def test_plain_settings_give_one_row_per_depth():
    curve = fidelity_by_depth(wrap(KnownTree()), table(n=100), depths=[1, 2], settings=SurrogateSettings(augment=0))
    assert curve[["depth", "fit"]].values.tolist() == [[1, "plain"], [2, "plain"]]


def test_lime_recovers_a_linear_models_coefficients():
    net = nn.Linear(4, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[2.0, -1.0, 0.0, 0.5]]))
        net.bias.zero_()
    model = wrap(net, task="regression")
    reference = np.random.default_rng(1).normal(size=(500, 4)) * np.array([1.0, 2.0, 1.0, 4.0])
    local = local_surrogate(model, reference[0], reference)
    scale = reference.std(axis=0)
    np.testing.assert_allclose(local.coefficients, [2.0 * scale[0], -1.0 * scale[1], 0.0, 0.5 * scale[3]], atol=1e-3)
    assert local.weighted_r2 > 0.999

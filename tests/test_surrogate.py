"""Surrogates against known answers: a model that is a tree, held-out rows that never leak, LIME on a linear model."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

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
    assert "f0 <= 1" in result.rules.replace("1.000", "1") or "f0 <=" in result.rules


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


def test_augmentation_raises_fidelity_on_a_smooth_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))
    model, data = wrap(net), table(n=300)
    plain = fit_surrogate(model, data, SurrogateSettings(max_depth=3, augment=0))
    augmented = fit_surrogate(model, data, SurrogateSettings(max_depth=3, augment=20))
    assert augmented.fidelity >= plain.fidelity - 0.02
    curve = fidelity_by_depth(model, data, depths=[1, 3])
    assert set(curve["fit"]) == {"plain", "augmented"} and len(curve) == 4


def test_regression_fidelity_is_r2():
    net = nn.Linear(4, 1)
    result = fit_surrogate(wrap(net, task="regression"), table(), SurrogateSettings(max_depth=6))
    assert result.fidelity_name.startswith("R²") and 0.5 < result.fidelity <= 1.0


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

"""Surrogate models: a decision tree that mimics the model globally, a weighted linear model that mimics it locally.

Fidelity is always measured on real rows the surrogate never saw: the rows are split first, and only the fit
rows (and synthetic points sampled around them, labelled by the model) are used to grow the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, export_text

from xai_core.datasets import TableSet
from xai_core.errors import XaiError
from xai_core import scoring
from xai_core.model import LoadedModel


@dataclass(frozen=True)
class SurrogateSettings:
    max_depth: int = 3
    min_samples_leaf: int = 5
    augment: int = 10  # synthetic points per real fit row (0: plain fit)
    noise: float = 0.3  # synthetic points: fit row + Gaussian noise of this many feature standard deviations
    holdout: float = 0.3  # share of real rows kept out for measuring fidelity
    seed: int = 0


@dataclass
class SurrogateTree:
    """A fitted tree and how faithfully it mimics the model on held-out real rows."""

    tree: DecisionTreeClassifier | DecisionTreeRegressor
    task: str
    feature_names: list[str]
    class_names: list[str]
    settings: SurrogateSettings
    fit_index: np.ndarray  # real rows used for fitting
    holdout_index: np.ndarray  # real rows used only for measuring
    n_synthetic: int
    fidelity: float  # agreement (classification) or R² against the model's output (regression), held-out rows
    fidelity_interval: tuple[float, float]
    fidelity_name: str
    model_score: float | None = None  # against the true labels, held-out rows
    tree_score: float | None = None
    score_name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rules(self) -> str:
        """The tree as readable if/then rules."""
        names = [f"{n}" for n in self.feature_names]
        text = export_text(self.tree, feature_names=names, decimals=3, show_weights=False)
        if self.task == "classification":
            for i, name in enumerate(self.class_names):
                text = text.replace(f"class: {float(i)}", f"predict: {name}").replace(f"class: {i}\n", f"predict: {name}\n")
        return text

    def decision_path(self, row: np.ndarray) -> list[int]:
        """Node ids from the root to the leaf that `row` reaches."""
        path = self.tree.decision_path(np.asarray(row, dtype=np.float64).reshape(1, -1))
        return list(path.indices)


def _model_targets(model: LoadedModel, X: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(_tensor(X))
    return proba.argmax(axis=1) if model.info.task == "classification" else proba[:, 0]


def _tensor(X: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def split_rows(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit and held-out row indices (disjoint, sorted)."""
    if not 0.05 <= holdout <= 0.8:
        raise XaiError("Keep between 5% and 80% of the rows for measuring fidelity.")
    order = np.random.default_rng(seed).permutation(n)
    n_holdout = max(1, int(round(holdout * n)))
    if n - n_holdout < 2:
        raise XaiError(f"{n} rows are too few to fit a surrogate and measure it; upload at least 10.")
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def synthetic_points(X_fit: np.ndarray, per_row: int, noise: float, seed: int) -> np.ndarray:
    """TREPAN-style augmentation: copies of the fit rows with Gaussian noise scaled to each feature's spread."""
    if per_row <= 0:
        return np.empty((0, X_fit.shape[1]))
    rng = np.random.default_rng(seed + 1)
    scale = X_fit.std(axis=0)
    base = np.repeat(X_fit, per_row, axis=0)
    points = base + rng.normal(size=base.shape) * scale * noise
    # Stay inside the observed range so the tree is not asked about impossible values.
    return np.clip(points, X_fit.min(axis=0), X_fit.max(axis=0))


def fit_surrogate(model: LoadedModel, data: TableSet, settings: SurrogateSettings = SurrogateSettings()) -> SurrogateTree:
    """Grow a tree on the model's own answers (fit rows + synthetic points) and measure it on held-out real rows."""
    if model.info.input_kind != "tabular":
        raise XaiError("Surrogate trees need a tabular model.")
    X = data.X.to_numpy(dtype=np.float64)
    fit_index, holdout_index = split_rows(len(X), settings.holdout, settings.seed)
    X_fit = X[fit_index]
    X_all_fit = np.vstack([X_fit, synthetic_points(X_fit, settings.augment, settings.noise, settings.seed)])
    y_fit = _model_targets(model, X_all_fit)
    classification = model.info.task == "classification"
    Tree = DecisionTreeClassifier if classification else DecisionTreeRegressor
    tree = Tree(max_depth=settings.max_depth, min_samples_leaf=settings.min_samples_leaf, random_state=settings.seed)
    tree.fit(X_all_fit, y_fit)
    X_hold = X[holdout_index]
    model_hold = _model_targets(model, X_hold)
    tree_hold = tree.predict(X_hold)
    fidelity, interval = scoring.score_with_interval(model.info.task, tree_hold, model_hold, seed=settings.seed)
    result = SurrogateTree(
        tree=tree, task=model.info.task, feature_names=list(data.feature_names), class_names=list(model.info.class_names),
        settings=settings, fit_index=fit_index, holdout_index=holdout_index, n_synthetic=len(X_all_fit) - len(X_fit),
        fidelity=fidelity, fidelity_interval=interval,
        fidelity_name="agreement with the model" if classification else "R² against the model's output",
    )
    if data.y is not None:
        truth = data.y.to_numpy()[holdout_index]
        result.score_name = scoring.score_name(model.info.task)
        result.model_score = scoring.score_predictions(model.info.task, model_hold, truth)
        result.tree_score = scoring.score_predictions(model.info.task, tree_hold, truth)
    if len(holdout_index) < 30:
        result.notes.append(f"Only {len(holdout_index)} held-out rows: the fidelity interval is wide.")
    return result


def fidelity_by_depth(model: LoadedModel, data: TableSet, depths=range(1, 9),
                      settings: SurrogateSettings = SurrogateSettings()) -> pd.DataFrame:
    """Held-out fidelity (with its interval) and number of leaves for each depth, plain fit and augmented."""
    rows = []
    for depth in depths:
        for augment in (0, settings.augment):
            s = SurrogateSettings(depth, settings.min_samples_leaf, augment, settings.noise, settings.holdout, settings.seed)
            r = fit_surrogate(model, data, s)
            rows.append({"depth": depth, "fit": "augmented" if augment else "plain", "fidelity": r.fidelity,
                         "low": r.fidelity_interval[0], "high": r.fidelity_interval[1], "leaves": r.tree.get_n_leaves()})
        if settings.augment == 0:
            rows.pop()
    return pd.DataFrame(rows)


@dataclass
class LocalSurrogate:
    """LIME for one row: a linear model fitted to the model's output on weighted samples around the row."""

    feature_names: list[str]
    coefficients: np.ndarray  # change in output per one standard deviation of each feature
    intercept: float
    weighted_r2: float  # how well the linear model fits the model near the row
    output_name: str
    kernel_width: float
    n_samples: int


def local_surrogate(model: LoadedModel, row: np.ndarray, reference: np.ndarray, output_index: int = 0,
                    kernel_width: float = 0.75, n_samples: int = 2000, seed: int = 0) -> LocalSurrogate:
    """Sample around `row` in standardised units, weight by exp(-d²/width²), fit a weighted ridge to f, report R²."""
    reference = np.asarray(reference, dtype=np.float64)
    scale = reference.std(axis=0)
    scale[scale == 0] = 1.0
    row = np.asarray(row, dtype=np.float64).reshape(-1)
    d = len(row)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_samples, d))
    points = row + z * scale
    distance = np.sqrt((z**2).sum(axis=1) / d)
    weights = np.exp(-(distance**2) / kernel_width**2)
    proba = model.predict_proba(_tensor(points))
    target = proba[:, output_index]
    fit = Ridge(alpha=1e-3).fit(z, target, sample_weight=weights)
    r2 = float(fit.score(z, target, sample_weight=weights))
    names = model.info.class_names
    output = f"P({names[output_index]})" if model.info.task == "classification" else (model.info.target_name or "prediction")
    return LocalSurrogate(list(model.info.feature_names), fit.coef_.astype(float), float(fit.intercept_), r2, output,
                          kernel_width, n_samples)

"""Tabular importances besides Shapley: deletion (ablation), permutation, gradient × input, integrated gradients.

Global methods (deletion, permutation) return a `FeatureImportanceResult` — one number per feature with its
error; local gradient methods return a `GradientAttributionResult` — one number per row, feature and output.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from xai_core import scoring
from xai_core.attribution.shapley import ModelFunction, model_output_fn
from xai_core.datasets import TableSet
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, OutputSpace, output_scores
from xai_core.validation import check_same_columns, check_table, class_indices

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]

METHOD_DELETION = "feature deletion"
METHOD_PERMUTATION = "permutation importance"
METHOD_GRADIENT_X_INPUT = "gradient × input"
METHOD_INTEGRATED_GRADIENTS = "integrated gradients"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class FeatureImportanceResult:
    """One importance per feature over a dataset: the drop in `score_name` when the feature is removed."""

    method: str
    feature_names: list[str]
    values: np.ndarray  # (d,)
    errors: np.ndarray  # (d,) — see error_kind
    error_kind: str  # e.g. "std over 5 repeats", "standard error over rows"
    score_name: str
    reference_score: float  # the score with every feature intact (NaN when the score is a change in output)
    n_rows: int
    settings: dict
    repeats: np.ndarray | None = None  # (d, n_repeats) for permutation importance
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Features ranked by importance, with the error next to each value."""
        frame = pd.DataFrame({"feature": self.feature_names, "importance": self.values, "error": self.errors})
        return frame.sort_values("importance", ascending=False, ignore_index=True)

    def ranking(self) -> list[str]:
        return list(self.to_frame()["feature"])


@dataclass
class GradientAttributionResult:
    """Local attributions (n_rows, d, n_targets) from gradients, with IG's completeness error per row."""

    method: str
    feature_names: list[str]
    values: np.ndarray  # (n_rows, d, n_targets)
    targets: list[int]  # output indices explained
    output_names: list[str]  # one per target
    rows: pd.DataFrame
    outputs: np.ndarray  # (n_rows, n_targets): the explained output at each row
    baseline: np.ndarray | None  # (d,) for integrated gradients
    baseline_outputs: np.ndarray | None  # (n_targets,)
    convergence_delta: np.ndarray | None  # (n_rows, n_targets): Σ attribution − (f(x) − f(baseline)), IG only
    settings: dict

    @property
    def completeness_gap(self) -> float | None:
        """max |Σφ − (f(x) − f(baseline))| (IG only): how far the integral approximation is from exact."""
        if self.convergence_delta is None or self.convergence_delta.size == 0:
            return None
        return float(np.max(np.abs(self.convergence_delta)))

    def to_frame(self, target_index: int = 0, wide: bool = False) -> pd.DataFrame:
        """Wide (rows × features) or long (row, feature, feature value, attribution) table for one target."""
        vals = self.values[:, :, target_index]
        if wide:
            return pd.DataFrame(vals, index=self.rows.index, columns=self.feature_names)
        n, d = vals.shape
        return pd.DataFrame(
            {
                "row": np.repeat(np.asarray(self.rows.index), d),
                "feature": np.tile(self.feature_names, n),
                "feature_value": self.rows.to_numpy(dtype=np.float64).reshape(-1),
                "output": self.output_names[target_index],
                "attribution": vals.reshape(-1),
            }
        )


# --------------------------------------------------------------------------------------------------
# Deletion (ablation) importance
# --------------------------------------------------------------------------------------------------


def deletion_importance(
    model: LoadedModel,
    data: TableSet | pd.DataFrame | np.ndarray,
    y: pd.Series | np.ndarray | None = None,
    background: pd.DataFrame | np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> FeatureImportanceResult:
    """Replace each feature by its background mean in every row and measure the drop in the model's score.

    Score: accuracy (classification) or R² (regression) when labels exist, else the mean absolute change of
    the outputs (probabilities or predictions). Errors are standard errors over rows (each score is a mean of
    per-row terms).
    """
    X, names, y = _table_and_labels(data, y, model)
    f = model_output_fn(model)
    baseline = X.mean(axis=0) if background is None else _baseline(background, _column_names(data), X.shape[1])
    base_out = f(X)
    labels = _labels(y, model, len(X))
    score_name, reference = _score_name(model, labels), np.nan
    if labels is not None:
        reference = _score(model, base_out, labels)
    values, errors = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    d = X.shape[1]
    for j in range(d):
        Xj = X.copy()
        Xj[:, j] = baseline[j]
        terms = _per_row_drop(model, base_out, f(Xj), labels)
        values[j] = terms.mean()
        errors[j] = terms.std(ddof=1) / np.sqrt(len(terms)) if len(terms) > 1 else 0.0
        if progress is not None:
            progress(j + 1, d, f"deleting feature {j + 1}/{d}")
    return FeatureImportanceResult(
        method=METHOD_DELETION,
        feature_names=names,
        values=values,
        errors=errors,
        error_kind="standard error over rows",
        score_name=score_name,
        reference_score=float(reference),
        n_rows=len(X),
        settings={"baseline": "mean of background" if background is not None else "mean of the data"},
    )


# --------------------------------------------------------------------------------------------------
# Permutation importance (scikit-learn)
# --------------------------------------------------------------------------------------------------


class TorchEstimator:
    """The minimal scikit-learn estimator `permutation_importance` needs: a fitted model with `predict`."""

    def __init__(self, model: LoadedModel, batch_size: int = 4096):
        self.model = model
        self.f: ModelFunction = model_output_fn(model, batch_size)
        self.is_classifier = model.info.task == "classification"

    def fit(self, X, y=None) -> "TorchEstimator":  # already trained; present for the estimator protocol
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.f(np.asarray(X, dtype=np.float32))

    def predict(self, X) -> np.ndarray:
        out = self.predict_proba(X)
        return out.argmax(axis=1) if self.is_classifier else out[:, 0]


def permutation_importance(
    model: LoadedModel,
    data: TableSet | pd.DataFrame | np.ndarray,
    y: pd.Series | np.ndarray | None = None,
    n_repeats: int = 5,
    seed: int = 0,
) -> FeatureImportanceResult:
    """sklearn's permutation importance: drop in accuracy / R² when a column is shuffled, mean ± std over repeats.

    Without labels the model's own predictions on the intact data serve as labels, so the score measures
    how much the predictions change.
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    X, names, y = _table_and_labels(data, y, model)
    if int(n_repeats) < 1:
        raise XaiError(f"n_repeats must be at least 1; got {n_repeats}.")
    estimator = TorchEstimator(model)
    labels = _labels(y, model, len(X))
    own = labels is None
    if own:
        labels = estimator.predict(X)

    def scorer(est: TorchEstimator, X_, y_) -> float:
        return _score(model, est.predict_proba(X_), np.asarray(y_))

    res = sk_permutation_importance(
        estimator, X.astype(np.float32), labels, scoring=scorer, n_repeats=int(n_repeats), random_state=seed
    )
    score = _score_name(model, labels)
    if own:
        score += " against the model's own predictions"
    return FeatureImportanceResult(
        method=METHOD_PERMUTATION,
        feature_names=names,
        values=np.asarray(res.importances_mean, dtype=np.float64),
        errors=np.asarray(res.importances_std, dtype=np.float64),
        error_kind=f"std over {int(n_repeats)} repeats",
        score_name=score,
        reference_score=float(scorer(estimator, X.astype(np.float32), labels)),
        n_rows=len(X),
        settings={"n_repeats": int(n_repeats), "seed": seed, "labels": "model predictions" if own else "given"},
        repeats=np.asarray(res.importances, dtype=np.float64),
    )


# --------------------------------------------------------------------------------------------------
# Gradient methods (Captum)
# --------------------------------------------------------------------------------------------------


def gradient_x_input(
    model: LoadedModel,
    X: pd.DataFrame | np.ndarray,
    targets: int | Sequence[int] | None = None,
    output: OutputSpace = "probability",
    batch_size: int = 1024,
) -> GradientAttributionResult:
    """Captum InputXGradient: x_i · ∂f_t/∂x_i per row, feature and target output (all outputs by default)."""
    from captum.attr import InputXGradient

    return _gradient_method(
        model, X, targets, output, batch_size, METHOD_GRADIENT_X_INPUT,
        lambda forward: InputXGradient(forward), None, {},
    )


def integrated_gradients(
    model: LoadedModel,
    X: pd.DataFrame | np.ndarray,
    background: pd.DataFrame | np.ndarray | None = None,
    targets: int | Sequence[int] | None = None,
    n_steps: int = 50,
    output: OutputSpace = "probability",
    batch_size: int = 256,
) -> GradientAttributionResult:
    """Captum IntegratedGradients from the mean row of `background` (default: of X), Gauss–Legendre, `n_steps`.

    Attributions sum to f(x) − f(baseline) up to `convergence_delta`, reported per row.
    """
    from captum.attr import IntegratedGradients

    values, names = check_table(X, "rows to explain")
    baseline = values.mean(axis=0) if background is None else _baseline(background, names, values.shape[1])
    if int(n_steps) < 2:
        raise XaiError(f"Integrated gradients needs at least 2 steps; got {n_steps}.")
    return _gradient_method(
        model, X, targets, output, batch_size, METHOD_INTEGRATED_GRADIENTS,
        lambda forward: IntegratedGradients(forward), baseline,
        {"n_steps": int(n_steps), "method": "gausslegendre", "return_convergence_delta": True},
    )


def _gradient_method(model, X, targets, output, batch_size, method_name, make_method, baseline, options):
    values, names = check_table(X, "rows to explain")
    n, d = values.shape
    names = names or list(model.info.feature_names) or [f"x{i}" for i in range(d)]
    if output not in ("probability", "logit"):
        raise XaiError(f"output must be 'probability' or 'logit', not {output!r}.")
    out_fn = model_output_fn(model)
    use_softmax = model.info.task == "classification" and output == "probability"
    with _module_for_gradients(model) as module:

        def forward(x: torch.Tensor) -> torch.Tensor:
            return output_scores(module(x), model.info.task, output)

        with torch.no_grad():
            k = forward(torch.from_numpy(values[:1].astype(np.float32))).shape[1]
        target_list = _targets(targets, k)
        attr = make_method(forward)
        base_t = None if baseline is None else torch.tensor(baseline, dtype=torch.float32)[None]
        result = np.zeros((n, d, len(target_list)))
        delta = np.zeros((n, len(target_list))) if options.get("return_convergence_delta") else None
        outputs = np.zeros((n, len(target_list)))
        for start in range(0, n, batch_size):
            x = torch.from_numpy(values[start : start + batch_size].astype(np.float32))
            with torch.no_grad():
                outputs[start : start + len(x)] = forward(x)[:, target_list].numpy()
            for ti, t in enumerate(target_list):
                kwargs = dict(options)
                if base_t is not None:
                    kwargs["baselines"] = base_t
                got = attr.attribute(x.clone().requires_grad_(True), target=t, **kwargs)
                if delta is not None:
                    got, dl = got
                    delta[start : start + len(x), ti] = dl.detach().numpy()
                result[start : start + len(x), :, ti] = got.detach().numpy()
        base_out = None
        if base_t is not None:
            with torch.no_grad():
                base_out = forward(base_t)[0, target_list].numpy().astype(np.float64)
    if use_softmax or model.info.task == "regression":
        all_names = out_fn.output_names
    else:
        all_names = [f"logit {j}" for j in range(k)]
    if len(all_names) != k:
        all_names = [f"output {j}" for j in range(k)]
    rows = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(values, columns=names)
    rows.columns = names
    settings = {"output": output if model.info.task == "classification" else "regression output", **{
        key: val for key, val in options.items() if key != "return_convergence_delta"}}
    if baseline is not None:
        settings["baseline"] = "mean row"
    return GradientAttributionResult(
        method=method_name,
        feature_names=names,
        values=result,
        targets=target_list,
        output_names=[all_names[t] for t in target_list],
        rows=rows,
        outputs=outputs,
        baseline=None if baseline is None else np.asarray(baseline, dtype=np.float64),
        baseline_outputs=base_out,
        convergence_delta=delta,
        settings=settings,
    )


@contextmanager
def _module_for_gradients(model: LoadedModel):
    """The module to differentiate, left as found: same mode, no parameter grads, no hooks.

    Captum's InputXGradient and IntegratedGradients differentiate with respect to the inputs only
    (torch.autograd.grad), so the shared module is used as is; one left in training mode is copied.
    """
    module = model.module
    if module.training:  # dropout / batch-norm statistics would change the answer and the shared module
        module = copy.deepcopy(module).eval()
    params = list(module.parameters())
    grads_before = [p.grad for p in params]
    try:
        yield module
    finally:
        for p, g in zip(params, grads_before):
            if p.grad is not g:
                p.grad = g


# --------------------------------------------------------------------------------------------------
# Helpers: data, labels, scores
# --------------------------------------------------------------------------------------------------


def _table_and_labels(data, y, model: LoadedModel):
    if isinstance(data, TableSet):
        if y is None:
            y = data.y
        data = data.X
    X, names = check_table(data, "data")
    names = names or list(model.info.feature_names) or [f"x{i}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        names = [f"x{i}" for i in range(X.shape[1])]
    return X, names, y


def _column_names(data) -> list[str] | None:
    table = data.X if isinstance(data, TableSet) else data
    return [str(c) for c in table.columns] if isinstance(table, pd.DataFrame) else None


def _baseline(background, data_names: list[str] | None, d: int) -> np.ndarray:
    """The mean row of the background, checked against the data's columns."""
    bg, bg_names = check_table(background, "background data")
    if bg.shape[1] != d:
        raise XaiError(f"The background has {bg.shape[1]} columns but the data have {d}; use the same feature columns.")
    check_same_columns(bg_names, data_names, "background", "data")
    return bg.mean(axis=0)


def _labels(y, model: LoadedModel, n: int) -> np.ndarray | None:
    """Labels as class indices (classification) or floats (regression); None when absent."""
    if y is None:
        return None
    y = pd.Series(np.asarray(y).reshape(-1) if not isinstance(y, pd.Series) else y.to_numpy())
    if len(y) != n:
        raise XaiError(f"There are {len(y)} labels for {n} rows; pass one label per row.")
    if y.isna().any():
        raise XaiError("Some labels are missing (NaN); drop those rows or run without labels.")
    if model.info.task == "regression":
        try:
            return y.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise XaiError("A regression model needs numeric labels.") from None
    return class_indices(y, model.info.class_names, "Labels")


def _score_name(model: LoadedModel, labels) -> str:
    if labels is None:
        return "mean absolute change in output"
    return scoring.score_name(model.info.task)


def _score(model: LoadedModel, out: np.ndarray, labels: np.ndarray) -> float:
    return scoring.score(model.info.task, out, labels)


def _per_row_drop(model: LoadedModel, base_out: np.ndarray, new_out: np.ndarray, labels) -> np.ndarray:
    return scoring.per_row_score_drop(model.info.task, base_out, new_out, labels)


def _targets(targets, k: int) -> list[int]:
    if targets is None:
        return list(range(k))
    target_list = [int(targets)] if np.isscalar(targets) else [int(t) for t in targets]
    bad = [t for t in target_list if not 0 <= t < k]
    if bad or not target_list:
        raise XaiError(f"Target outputs must be indices 0…{k - 1}; got {target_list}.")
    return target_list

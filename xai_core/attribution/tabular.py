"""Tabular explanation methods in one registry, run by one verb, `explain_table(model, data, method, settings)`.

Local methods — Shapley values, gradient × input, integrated gradients — give one value per row, feature and output
(`TabularAttribution`); global methods — feature deletion, permutation importance — one value per feature for the
whole table (`GlobalImportance`). Each method's options are a frozen settings dataclass, hashable, so a page caches
results by model hash + settings. The named functions (`deletion_importance`, `permutation_importance`,
`gradient_x_input`, `integrated_gradients`; `shapley_values` in shapley.py) stay as the entries for notebooks.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from xai_core import scoring
from xai_core.attribution.common import method_settings, method_spec
from xai_core.attribution.results import Background, GlobalImportance, TabularAttribution
from xai_core.attribution.shapley import (
    DEFAULT_N_PERMUTATIONS,
    ModelFunction,
    ShapleySettings,
    make_background,
    model_output_fn,
    shapley_values,
)
from xai_core.datasets import TableSet
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, OutputSpace, class_names_or_default, output_scores
from xai_core.validation import check_same_columns, check_table, class_indices
from xai_core.torch_internals import copy_module

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
BackgroundData = Background | TableSet | pd.DataFrame | np.ndarray | None

METHOD_DELETION = "feature deletion"
METHOD_PERMUTATION = "permutation importance"
METHOD_GRADIENT_X_INPUT = "gradient × input"
METHOD_INTEGRATED_GRADIENTS = "integrated gradients"

# The old names of the two result types, for notebooks: the same types.
FeatureImportanceResult = GlobalImportance
GradientAttributionResult = TabularAttribution


# --------------------------------------------------------------------------------------------------
# Settings: one frozen dataclass per method (ShapleySettings lives in shapley.py)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionSettings:
    """No options: a deleted feature takes the background's mean value (the data's mean without a background)."""


@dataclass(frozen=True)
class PermutationSettings:
    n_repeats: int = 5  # shuffles per feature; the error is the std over them
    seed: int = 0


@dataclass(frozen=True)
class GradientSettings:
    """Gradient × input of the outputs `targets` (model output indices; None: all) in `output` space."""

    output: OutputSpace = "probability"
    targets: tuple[int, ...] | None = None
    batch_size: int = 1024


@dataclass(frozen=True)
class IntegratedGradientsSettings:
    """Integrated gradients from the background's mean row (the data's without one), Gauss–Legendre, `n_steps`."""

    output: OutputSpace = "probability"
    targets: tuple[int, ...] | None = None
    n_steps: int = 50
    batch_size: int = 256


# --------------------------------------------------------------------------------------------------
# The registry and the verb
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularMethod:
    key: str
    name: str
    how_to_read: str
    local: bool  # True: one value per row (TabularAttribution); False: one per feature (GlobalImportance)
    settings: type  # the method's frozen settings dataclass; settings() gives the defaults
    run: Callable[..., TabularAttribution | GlobalImportance]  # (model, data: TableSet, settings, background, progress)
    row_seeded: bool = False  # True: run also takes row_offset (a row's random stream is seeded by its dataset index)


def explain_table(
    model: LoadedModel,
    data: TableSet | pd.DataFrame | np.ndarray,
    method: str,
    settings: Any = None,
    background: BackgroundData = None,
    y: pd.Series | np.ndarray | None = None,
    progress: ProgressFn | None = None,
    row_offset: int = 0,
) -> TabularAttribution | GlobalImportance:
    """Explain a tabular model on `data` with `method` (a key of `METHODS`) and its settings (defaults when None).

    `background`: rows standing in for absent features (Shapley, deletion, integrated gradients; default: `data`).
    `y`: labels for the global methods' scores (default: `data.y` of a TableSet; without labels they measure the
    change of the outputs). `progress(done, total, message)` is called as the work advances. `row_offset`: the index
    of `data`'s first row in the whole dataset; sampled Shapley values seed each row by its index, so a slice (a
    review's shard) gets the values the whole table gives for the same rows. The other methods do not depend on it.
    """
    if model.info.input_kind != "tabular":
        raise XaiError("These methods explain table models; for an image model use xai_core.attribution.image.")
    spec = method_spec(METHODS, method, "tabular")
    settings = method_settings(spec, settings)
    options = {"row_offset": row_offset} if spec.row_seeded else {}
    return spec.run(model, _table_set(data, y, model), settings, background, progress, **options)


def output_names(model: LoadedModel, output: OutputSpace = "probability") -> list[str]:
    """What each explained output is called: 'P(class)' or 'logit(class)' for classifiers, the target for regression."""
    if model.info.task != "classification":
        return [model.info.target_name or "prediction"]
    names = class_names_or_default(model.info.class_names, model.info.n_outputs)
    return [f"P({c})" if output == "probability" else f"logit({c})" for c in names]


# --------------------------------------------------------------------------------------------------
# Shapley values (shapley.py) as a registry entry
# --------------------------------------------------------------------------------------------------


def _run_shapley(model, data: TableSet, settings: ShapleySettings, background, progress,
                 row_offset: int = 0) -> TabularAttribution:
    if isinstance(background, Background):
        bg = background
    else:
        if background is None and len(data) < 2:
            raise XaiError("With one row to explain and no background, every value would be 0. Pass a background "
                           "(e.g. the training rows).")
        source = data.X if background is None else (background.X if isinstance(background, TableSet) else background)
        bg = make_background(source, settings.baseline, settings.n_background, seed=settings.seed or 0)
    return shapley_values(
        model_output_fn(model), data.X, bg, method=settings.estimator, n_permutations=settings.n_permutations or DEFAULT_N_PERMUTATIONS,
        seed=settings.seed or 0, progress=progress, output_names=output_names(model), chunk_size=settings.chunk_size,
        target_relative_se=settings.target_relative_se, row_offset=row_offset,
    )


# --------------------------------------------------------------------------------------------------
# Deletion (ablation) importance
# --------------------------------------------------------------------------------------------------


def deletion_importance(
    model: LoadedModel,
    data: TableSet | pd.DataFrame | np.ndarray,
    y: pd.Series | np.ndarray | None = None,
    background: BackgroundData = None,
    progress: ProgressFn | None = None,
) -> GlobalImportance:
    """Replace each feature by its background mean in every row and measure the drop in the model's score.

    Score: accuracy (classification) or R² (regression) when labels exist, else the mean absolute change of
    the outputs (probabilities or predictions). Errors are standard errors over rows (each score is a mean of
    per-row terms).
    """
    return explain_table(model, data, "deletion", DeletionSettings(), background=background, y=y, progress=progress)


def _run_deletion(model, data: TableSet, settings: DeletionSettings, background, progress) -> GlobalImportance:
    X, names = check_table(data.X, "data")
    f = model_output_fn(model)
    baseline = _baseline_row(background, X, names)
    base_out = f(X)
    labels = _labels(data.y, model, len(X))
    score_name, reference = _score_name(model, labels), np.nan
    if labels is not None:
        reference = _score(model, base_out, labels)
    d = X.shape[1]
    values, errors = np.zeros(d), np.zeros(d)
    for j in range(d):
        Xj = X.copy()
        Xj[:, j] = baseline[j]
        terms = _per_row_drop(model, base_out, f(Xj), labels)
        values[j] = terms.mean()
        errors[j] = terms.std(ddof=1) / np.sqrt(len(terms)) if len(terms) > 1 else 0.0
        if progress is not None:
            progress(j + 1, d, f"deleting feature {j + 1}/{d}")
    return GlobalImportance(
        key="deletion",
        method=METHOD_DELETION,
        feature_names=names,
        values=values,
        errors=errors,
        error_kind="standard error over rows",
        measure=f"drop in {score_name}" if labels is not None else score_name,
        score_name=score_name,
        reference_score=float(reference),
        n_rows=len(X),
        settings=settings,
        notes=[f"A deleted feature takes the mean of the {'background' if background is not None else 'data'}."],
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
) -> GlobalImportance:
    """sklearn's permutation importance: drop in accuracy / R² when a column is shuffled, mean ± std over repeats.

    Without labels the model's own predictions on the intact data serve as labels, so the score measures
    how much the predictions change.
    """
    return explain_table(model, data, "permutation", PermutationSettings(int(n_repeats), seed), y=y)


def _run_permutation(model, data: TableSet, settings: PermutationSettings, background, progress) -> GlobalImportance:
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    X, names = check_table(data.X, "data")
    if settings.n_repeats < 1:
        raise XaiError(f"n_repeats must be at least 1; got {settings.n_repeats}.")
    estimator = TorchEstimator(model)
    labels = _labels(data.y, model, len(X))
    own = labels is None
    if own:
        labels = estimator.predict(X)

    def scorer(est: TorchEstimator, X_, y_) -> float:
        return _score(model, est.predict_proba(X_), np.asarray(y_))

    res = sk_permutation_importance(estimator, X.astype(np.float32), labels, scoring=scorer,
                                    n_repeats=settings.n_repeats, random_state=settings.seed)
    score = _score_name(model, labels)
    if own:
        score += " against the model's own predictions"
    return GlobalImportance(
        key="permutation",
        method=METHOD_PERMUTATION,
        feature_names=names,
        values=np.asarray(res.importances_mean, dtype=np.float64),
        errors=np.asarray(res.importances_std, dtype=np.float64),
        error_kind=f"std over {settings.n_repeats} repeats",
        measure=f"drop in {score}",
        score_name=score,
        reference_score=float(scorer(estimator, X.astype(np.float32), labels)),
        n_rows=len(X),
        settings=settings,
        repeats=np.asarray(res.importances, dtype=np.float64),
        notes=["Labels: the model's own predictions (none were given)."] if own else [],
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
) -> TabularAttribution:
    """Captum InputXGradient: x_i · ∂f_t/∂x_i per row, feature and target output (all outputs by default)."""
    return explain_table(model, X, "gradient_x_input", GradientSettings(output, _as_targets(targets), int(batch_size)))


def integrated_gradients(
    model: LoadedModel,
    X: pd.DataFrame | np.ndarray,
    background: BackgroundData = None,
    targets: int | Sequence[int] | None = None,
    n_steps: int = 50,
    output: OutputSpace = "probability",
    batch_size: int = 256,
) -> TabularAttribution:
    """Captum IntegratedGradients from the mean row of `background` (default: of X), Gauss–Legendre, `n_steps`.

    Attributions sum to f(x) − f(baseline) up to `efficiency_gap`; `base_values` are f(baseline).
    """
    settings = IntegratedGradientsSettings(output, _as_targets(targets), int(n_steps), int(batch_size))
    return explain_table(model, X, "integrated_gradients", settings, background=background)


def _run_gradient_x_input(model, data: TableSet, settings: GradientSettings, background, progress) -> TabularAttribution:
    from captum.attr import InputXGradient

    return _gradient_method(model, data, settings, None, progress, "gradient_x_input", METHOD_GRADIENT_X_INPUT,
                            "gradient × input", InputXGradient, {})


def _run_integrated_gradients(model, data: TableSet, settings: IntegratedGradientsSettings, background,
                              progress) -> TabularAttribution:
    from captum.attr import IntegratedGradients

    if settings.n_steps < 2:
        raise XaiError(f"Integrated gradients needs at least 2 steps; got {settings.n_steps}.")
    X, names = check_table(data.X, "rows to explain")
    baseline = _baseline_row(background, X, names)
    return _gradient_method(model, data, settings, baseline, progress, "integrated_gradients",
                            METHOD_INTEGRATED_GRADIENTS, "IG attribution", IntegratedGradients,
                            {"n_steps": settings.n_steps, "method": "gausslegendre"})


def _gradient_method(model, data, settings, baseline, progress, key, method, value_label, captum_class, options):
    values, names = check_table(data.X, "rows to explain")
    n, d = values.shape
    if settings.output not in ("probability", "logit"):
        raise XaiError(f"output must be 'probability' or 'logit', not {settings.output!r}.")
    batch_size = max(int(settings.batch_size), 1)
    with _module_for_gradients(model) as module:

        def forward(x: torch.Tensor) -> torch.Tensor:
            return output_scores(module(x), model.info.task, settings.output)

        with torch.no_grad():
            k = forward(torch.from_numpy(values[:1].astype(np.float32))).shape[1]
        target_list = _targets(settings.targets, k)
        attr = captum_class(forward)
        base_t = None if baseline is None else torch.tensor(baseline, dtype=torch.float32)[None]
        result = np.zeros((n, d, len(target_list)))
        outputs = np.zeros((n, len(target_list)))
        for start in range(0, n, batch_size):
            x = torch.from_numpy(values[start : start + batch_size].astype(np.float32))
            with torch.no_grad():
                outputs[start : start + len(x)] = forward(x)[:, target_list].numpy()
            for ti, t in enumerate(target_list):
                kwargs = dict(options) if base_t is None else {**options, "baselines": base_t}
                got = attr.attribute(x.clone().requires_grad_(True), target=t, **kwargs)
                result[start : start + len(x), :, ti] = got.detach().numpy()
            if progress is not None:
                progress(min(start + batch_size, n), n, f"explaining {min(start + batch_size, n)}/{n} rows")
        base_out = None
        if base_t is not None:
            with torch.no_grad():
                base_out = forward(base_t)[0, target_list].numpy().astype(np.float64)
    all_names = output_names(model, settings.output)
    if len(all_names) != k:
        all_names = [f"output {j}" for j in range(k)]
    rows = data.X.copy()
    rows.columns = names
    return TabularAttribution(
        values=result,
        standard_errors=np.zeros_like(result),
        method=method,
        settings=settings,
        feature_names=names,
        output_names=[all_names[t] for t in target_list],
        rows=rows,
        outputs=outputs,
        base_values=base_out,
        key=key,
        value_label=value_label,
        targets=target_list,
        background=None if baseline is None else Background(np.asarray(baseline, dtype=np.float64)[None], np.ones(1),
                                                             "mean"),
    )


@contextmanager
def _module_for_gradients(model: LoadedModel):
    """The module to differentiate, left as found: same mode, no parameter grads, no hooks.

    Captum's InputXGradient and IntegratedGradients differentiate with respect to the inputs only
    (torch.autograd.grad), so the shared module is used as is; one left in training mode is copied.
    """
    module = model.module
    if module.training:  # dropout / batch-norm statistics would change the answer and the shared module
        module = copy_module(module).eval()
    params = list(module.parameters())
    grads_before = [p.grad for p in params]
    try:
        yield module
    finally:
        for p, g in zip(params, grads_before):
            if p.grad is not g:
                p.grad = g


# --------------------------------------------------------------------------------------------------
# The registry (after the methods it names)
# --------------------------------------------------------------------------------------------------


METHODS: dict[str, TabularMethod] = {m.key: m for m in (
    TabularMethod("shapley", "SHAP values", "Each feature's share of the move from the base value (the average output "
                  "over the background) to this row's output; the shares add up exactly. Absent features take the "
                  "background's values.", local=True, settings=ShapleySettings, run=_run_shapley, row_seeded=True),
    TabularMethod("gradient_x_input", "Gradient × input", "Each feature's value times the output's slope along it at "
                  "this row: a first-order share measured from an all-zero input (exact for a linear model, local "
                  "only where the model bends).", local=True, settings=GradientSettings, run=_run_gradient_x_input),
    TabularMethod("integrated_gradients", "Integrated gradients", "Each feature's share of the move from the "
                  "background's mean row to this row along the straight path between them; the shares add up to "
                  "f(x) − f(baseline).", local=True, settings=IntegratedGradientsSettings,
                  run=_run_integrated_gradients),
    TabularMethod("deletion", "Feature deletion", "How much the model's score drops when the feature is set to its "
                  "mean in every row (without labels: how much the outputs change).", local=False,
                  settings=DeletionSettings, run=_run_deletion),
    TabularMethod("permutation", "Permutation importance", "How much the model's score drops when the feature's "
                  "column is shuffled, breaking its link to the rest (without labels: against the model's own "
                  "predictions).", local=False, settings=PermutationSettings, run=_run_permutation),
)}


# --------------------------------------------------------------------------------------------------
# Helpers: data, labels, scores
# --------------------------------------------------------------------------------------------------


def _table_set(data, y, model: LoadedModel) -> TableSet:
    """The rows (a DataFrame named in the model's feature names when given as an array) and their labels."""
    if isinstance(data, TableSet):
        return data if y is None else TableSet(data.X, y, data.target_name, data.notes)
    values, names = check_table(data, "data")
    if isinstance(data, pd.DataFrame):
        return TableSet(data, y)
    names = list(model.info.feature_names)
    if len(names) != values.shape[1]:
        names = [f"x{i}" for i in range(values.shape[1])]
    return TableSet(pd.DataFrame(values, columns=names), y)


def _baseline_row(background: BackgroundData, X: np.ndarray, names: list[str] | None) -> np.ndarray:
    """The row standing in for absent features: the (weighted) mean of the background, or of X without one."""
    if background is None:
        return X.mean(axis=0)
    if isinstance(background, Background):
        rows, weights, bg_names = background.rows, background.weights, background.feature_names
    else:
        table = background.X if isinstance(background, TableSet) else background
        rows, bg_names = check_table(table, "background data")
        weights = np.full(len(rows), 1.0 / len(rows))
    if rows.shape[1] != X.shape[1]:
        raise XaiError(f"The background has {rows.shape[1]} columns but the data have {X.shape[1]}; use the same "
                       "feature columns.")
    check_same_columns(bg_names, names, "background", "data")
    return weights @ rows


def _as_targets(targets) -> tuple[int, ...] | None:
    if targets is None:
        return None
    return (int(targets),) if np.isscalar(targets) else tuple(int(t) for t in targets)


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

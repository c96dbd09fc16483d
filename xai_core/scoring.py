"""How good predictions are — accuracy, R², agreement, confusion matrix and their bootstrap intervals, defined once.

Every page, the quantization comparison, the surrogate tree and the tabular importances score through here, so a
number means the same thing wherever it is shown.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from xai_core.errors import XaiError


def score_name(task: str) -> str:
    """The name of the score a task is judged by."""
    return "accuracy" if task == "classification" else "R²"


def predictions(task: str, outputs: np.ndarray) -> np.ndarray:
    """Predicted class index (classification: argmax of scores or probabilities) or value (regression), shape (n,)."""
    outputs = np.asarray(outputs)
    if task == "classification":
        return outputs.argmax(axis=1)
    return outputs.reshape(len(outputs), -1)[:, 0]


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose predicted class equals the label."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if len(predicted) != len(labels):
        raise XaiError(f"{len(predicted)} predictions for {len(labels)} labels; pass one label per row.")
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(predicted == labels))


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot (NaN when every label is equal)."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    total = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    return float("nan") if total == 0 else 1.0 - float(((y - pred) ** 2).sum()) / total


def score_predictions(task: str, predicted: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of class predictions or R² of regression predictions against the labels."""
    if task == "classification":
        return accuracy(predicted, labels)
    return r2_score(labels, predicted)


def score(task: str, outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    """The task's score of raw outputs (n, k) against labels; None without labels."""
    if labels is None:
        return None
    return score_predictions(task, predictions(task, outputs), labels)


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of rows where two classifiers' outputs (n, k) pick the same class."""
    return accuracy(np.asarray(other).argmax(axis=1), np.asarray(reference).argmax(axis=1))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are the true classes, columns the predicted ones."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    for name, values in (("labels", labels), ("predictions", predicted)):
        if len(values) and (values.min() < 0 or values.max() >= n_classes):
            raise XaiError(f"The {name} hold class indices outside 0…{n_classes - 1}; check the class names and the "
                           "label column.")
    return np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, n_bootstrap: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(index)` over `n` rows resampled with replacement.

    Resamples whose statistic is undefined (NaN, e.g. R² of rows with one label value) are left out.
    """
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.array([statistic(rng.integers(0, n, n)) for _ in range(n_bootstrap)], dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(boots, tail)), float(np.percentile(boots, 100 - tail))


def score_with_interval(task: str, predicted: np.ndarray, labels: np.ndarray, n_bootstrap: int = 1000,
                        seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The score of predictions against labels, and its 95% bootstrap interval over rows."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    point = score_predictions(task, predicted, labels)
    interval = bootstrap_interval(lambda i: score_predictions(task, predicted[i], labels[i]), len(labels),
                                  n_bootstrap, seed)
    return point, interval


def per_row_score_drop(task: str, base_outputs: np.ndarray, new_outputs: np.ndarray,
                       labels: np.ndarray | None) -> np.ndarray:
    """Per-row terms whose mean is the score drop from `base_outputs` to `new_outputs`.

    Accuracy: Δcorrect per row; R²: Δ squared error / var(y) per row (their mean is exactly the R² drop); no labels:
    the mean absolute change of the outputs.
    """
    if labels is None:
        return np.abs(new_outputs - base_outputs).mean(axis=1)
    if task == "classification":
        return ((predictions(task, base_outputs) == labels).astype(np.float64)
                - (predictions(task, new_outputs) == labels))
    labels = np.asarray(labels, dtype=np.float64)
    var = ((labels - labels.mean()) ** 2).mean()
    if var == 0:
        raise XaiError("All labels are equal, so R² is undefined; run without labels to measure output change.")
    return ((labels - predictions(task, new_outputs)) ** 2 - (labels - predictions(task, base_outputs)) ** 2) / var

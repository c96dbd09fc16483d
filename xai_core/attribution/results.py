"""What a tabular explanation returns: one type for local attributions, one for global importances.

Every local method (Shapley values, gradient × input, integrated gradients) returns a `TabularAttribution`: one
value per row, feature and explained output, with standard errors. Every global method (deletion, permutation)
returns a `GlobalImportance`: one value per feature for the whole table; a local result gives the same type
averaged over its rows (`TabularAttribution.to_global`), so figures and tables of importances take one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from xai_core.errors import XaiError

BackgroundKind = Literal["mean", "kmeans", "random", "given"]
METHOD_EXACT = "exact"  # Shapley values from all 2^d coalitions


@dataclass
class Background:
    """Rows standing in for absent features, with weights summing to 1."""

    rows: np.ndarray  # (m, d) float64
    weights: np.ndarray  # (m,) float64, sum 1
    kind: BackgroundKind
    feature_names: list[str] | None = None
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class TabularAttribution:
    """Local attributions φ (n_rows, d, k): one value per explained row, feature and output, with standard errors.

    `base_values` is what the attributions start from — v(∅) for Shapley values (the expected output over the
    background), f(baseline) for integrated gradients — so `base + Σ_features φ = f(x)` up to `efficiency_gap`;
    gradient × input has none.
    """

    values: np.ndarray  # (n_rows, d, k)
    standard_errors: np.ndarray  # (n_rows, d, k); zeros for exact and deterministic methods
    method: str  # how the values were computed, e.g. "exact", "antithetic permutation sampling", "gradient × input"
    settings: Any  # the method's frozen settings dataclass, as used
    feature_names: list[str]
    output_names: list[str]  # one per explained output
    rows: pd.DataFrame  # the explained rows
    outputs: np.ndarray  # (n_rows, k): the explained outputs f(x)
    base_values: np.ndarray | None = None  # (k,); None when the method has no starting point
    key: str = "shapley"  # the method's key in xai_core.attribution.tabular.METHODS
    value_label: str = "SHAP value"  # what one value is called on axes and in tables
    targets: list[int] | None = None  # the model output index of each explained output (None: all, in order)
    background: Background | None = None  # rows standing in for absent features (Shapley, integrated gradients)
    notes: list[str] = field(default_factory=list)
    n_permutations_used: np.ndarray | None = None  # (n_rows,) Shapley sampler only: permutations spent per row
    relative_standard_errors: np.ndarray | None = None  # (n_rows,) ‖SE‖₂ / ‖φ‖₂ per row (see shapley.py)

    @property
    def efficiency_residuals(self) -> np.ndarray | None:
        """base + Σφ − f(x) per row and output (n_rows, k); None without base values."""
        if self.base_values is None:
            return None
        return self.base_values + self.values.sum(axis=1) - self.outputs

    @property
    def efficiency_gap(self) -> float | None:
        """max |base + Σφ − f(x)| over rows and outputs: 0 up to rounding for Shapley values, the integration
        error for integrated gradients; None without base values."""
        residuals = self.efficiency_residuals
        if residuals is None:
            return None
        return float(np.max(np.abs(residuals))) if residuals.size else 0.0

    @property
    def is_exact(self) -> bool:
        return self.method == METHOD_EXACT

    @property
    def has_standard_errors(self) -> bool:
        """True when the values are estimates with a sampling error (not exact, not deterministic)."""
        return bool(np.any(self.standard_errors > 0))

    def to_global(self, output_index: int = 0) -> GlobalImportance:
        """Mean |φ| per feature over the explained rows; error = the mean standard error (the noise floor of mean |φ|)."""
        phi = self.values[:, :, output_index]
        return GlobalImportance(
            key=self.key,
            method=f"mean |{self.value_label}|",
            feature_names=list(self.feature_names),
            values=np.abs(phi).mean(axis=0),
            errors=self.standard_errors[:, :, output_index].mean(axis=0),
            error_kind="mean standard error of the per-row values",
            measure=f"effect on {self.output_names[output_index]}",
            score_name=self.output_names[output_index],
            reference_score=float("nan"),
            n_rows=len(phi),
            settings=self.settings,
        )

    def global_importance(self, output_index: int = 0) -> pd.DataFrame:
        """Features ranked by mean |φ| over the explained rows, with the mean standard error next to each."""
        return self.to_global(output_index).to_frame()

    def to_frame(self, output_index: int | None = 0, wide: bool = False) -> pd.DataFrame:
        """Long table (row, feature, feature value, output, attribution, standard error, base value, model output)
        or wide (rows × features, with base value and model output when they exist). `output_index=None` gives
        every explained output (long form only)."""
        if wide:
            if output_index is None:
                raise XaiError("A wide table holds one output; pass output_index.")
            frame = pd.DataFrame(self.values[:, :, output_index], index=self.rows.index, columns=self.feature_names)
            if self.base_values is not None:
                frame.insert(0, "base_value", self.base_values[output_index])
            frame["model_output"] = self.outputs[:, output_index]
            return frame
        outputs = range(len(self.output_names)) if output_index is None else [output_index]
        n, d = self.values.shape[:2]
        row_ids = np.repeat(np.asarray(self.rows.index), d)
        feature_values = self.rows.to_numpy(dtype=np.float64).reshape(-1)
        parts = []
        for j in outputs:
            part = {
                "row": row_ids,
                "feature": np.tile(self.feature_names, n),
                "feature_value": feature_values,
                "output": self.output_names[j],
                "attribution": self.values[:, :, j].reshape(-1),
                "standard_error": self.standard_errors[:, :, j].reshape(-1),
            }
            if self.base_values is not None:
                part["base_value"] = self.base_values[j]
            part["model_output"] = np.repeat(self.outputs[:, j], d)
            parts.append(pd.DataFrame(part))
        return pd.concat(parts, ignore_index=True)


@dataclass
class GlobalImportance:
    """One importance per feature over a table, with its error.

    A separate type because a global method (deletion, permutation) measures one number per feature for the whole
    table — the drop in a score — and has no rows, outputs or base values to fill a `TabularAttribution`. Local
    results are turned into this type by `TabularAttribution.to_global`, never the other way round.
    """

    key: str  # the method's key in xai_core.attribution.tabular.METHODS
    method: str  # display name, e.g. "feature deletion", "mean |SHAP value|"
    feature_names: list[str]
    values: np.ndarray  # (d,)
    errors: np.ndarray  # (d,) — see error_kind
    error_kind: str  # e.g. "std over 5 repeats", "standard error over rows"
    measure: str  # what one value measures, e.g. "drop in accuracy", "effect on P(yes)"
    score_name: str  # the score that drops (deletion, permutation), or the output averaged (local results)
    reference_score: float  # the score with every feature intact (NaN when there is none)
    n_rows: int
    settings: Any  # the method's frozen settings dataclass
    repeats: np.ndarray | None = None  # (d, n_repeats) for permutation importance
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Features ranked by importance, with the error next to each value."""
        frame = pd.DataFrame({"feature": self.feature_names, "importance": self.values, "error": self.errors})
        return frame.sort_values("importance", ascending=False, ignore_index=True, kind="stable")

    def ranking(self) -> list[str]:
        return list(self.to_frame()["feature"])

"""Input checks shared by every loader and method: labels → class indices, numeric tables, matching columns.

One home for each rule, so an upload, a notebook call and a method all refuse the same input with the same message.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from xai_core.errors import XaiError


def class_indices(values, class_names: Sequence[str], what: str = "Labels", hint: str = "") -> np.ndarray:
    """Labels given as class names or as class indices 0…k−1 → int64 class indices.

    Names win when every value is a class name (so a model whose classes are named '1', '2', '3' reads '1' as its
    first class); otherwise every value must be a whole number in 0…k−1. Anything else is refused, naming the values.
    """
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
    k = len(class_names)
    if k == 0:
        raise XaiError("The model has no class names to match labels against.")
    missing = int(series.isna().sum())
    if missing:
        raise XaiError(f"{what}: {missing} value(s) are missing. Drop those rows, or run without labels.{hint}")
    index = {str(c): i for i, c in enumerate(class_names)}
    as_text = series.astype(str).str.strip()
    if len(series) and as_text.isin(index).all():
        return as_text.map(index).to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(series, errors="coerce")
    valid_number = numeric.notna() & (numeric % 1 == 0) & numeric.between(0, k - 1)
    if valid_number.all():
        return numeric.to_numpy().astype(np.int64)
    bad = list(dict.fromkeys(as_text[~valid_number & ~as_text.isin(index)]))
    if not bad:  # every value is a class name or a class index, but not all of one kind
        names = list(dict.fromkeys(as_text[as_text.isin(index)]))[:3]
        numbers = list(dict.fromkeys(as_text[~as_text.isin(index)]))[:3]
        raise XaiError(f"{what} mix class names ({names}) and class indices ({numbers}); use one or the other.{hint}")
    shown = ", ".join(list(class_names)[:10]) + (" …" if k > 10 else "")
    raise XaiError(f"{what} {bad[:5]} are neither classes of this model ({shown}) nor class indices 0…{k - 1}.{hint}")


def check_table(data, what: str) -> tuple[np.ndarray, list[str] | None]:
    """A finite float64 2-D array and its column names (None for arrays), or an XaiError saying what to fix."""
    names = None
    if isinstance(data, pd.DataFrame):
        names = [str(c) for c in data.columns]
        non_numeric = [str(c) for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
        if non_numeric:
            raise XaiError(f"The {what} have non-numeric columns {non_numeric[:8]}; encode or drop them first.")
        arr = data.to_numpy(dtype=np.float64)
    else:
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise XaiError(f"The {what} must be numeric: a DataFrame or a 2-D array of numbers.") from None
        if arr.ndim == 1:
            raise XaiError(f"The {what} must be 2-D (rows, features); got 1-D. For a single row use X.reshape(1, -1).")
    if arr.ndim != 2:
        raise XaiError(f"The {what} must be 2-D (rows, features); got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise XaiError(f"The {what} are empty (shape {arr.shape}); select at least one row and one feature.")
    finite = np.isfinite(arr)
    if not finite.all():
        counts = {(names[i] if names else f"column {i}"): int((~finite[:, i]).sum())
                  for i in np.flatnonzero(~finite.all(axis=0))[:5]}
        rows = [int(r) + 1 for r in np.flatnonzero(~finite.all(axis=1))[:5]]
        raise XaiError(f"The {what} have missing (NaN) or infinite values: {counts} (rows {rows}…). Fill or drop those rows "
                       "first.")
    return arr, names


def check_same_columns(names: list[str] | None, reference: list[str] | None, what: str, reference_what: str) -> None:
    """Refuse `what` when its column names differ from `reference_what`'s (missing, extra, or in another order)."""
    if names is None or reference is None or names == reference:
        return
    if sorted(names) == sorted(reference):
        raise XaiError(f"The {what} has the same columns as the {reference_what} but in another order; reorder them to "
                       "match.")
    missing = [c for c in reference if c not in names]
    extra = [c for c in names if c not in reference]
    raise XaiError(f"The {what}'s columns do not match the {reference_what}'s (missing {missing[:5]}, extra "
                   f"{extra[:5]}); use the same feature columns.")


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """' Did you mean 'x'?' for the closest of `choices`, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""

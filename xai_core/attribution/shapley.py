"""Shapley values for tabular models: exact enumeration up to 14 features, antithetic permutation sampling above.

The value of a coalition S is the interventional expectation v(S) = Σ_b w_b f(x_S, b_notS) over a weighted
background (one row — the mean — by default). Both estimators batch every model call: the exact one builds
all 2^d masked inputs per row, the sampler all steps of many permutations, and both feed them to the model in
chunks of `chunk_size` rows so memory stays bounded.

The sampler stops a row as soon as its relative standard error (see `relative_standard_error`) reaches
`target_relative_se`, checking only at checkpoints of whole blocks of antithetic pairs and never before
`MIN_PAIRS` pairs; `n_permutations` is the cap.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from xai_core.attribution.results import METHOD_EXACT, Background, BackgroundKind, TabularAttribution
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, class_names_or_default
from xai_core.validation import check_same_columns, check_table

log = logging.getLogger(__name__)

# Exact enumeration costs 2^d model calls per row (and per background row): 16 384 at d = 14.
EXACT_MAX_FEATURES = 14
# 1 536 permutations (768 antithetic pairs), ≤ 1 536·(d−1) calls per row: relative error ≈ 0.05 on the
# 30-feature benchmark MLP in less time than shap.KernelExplainer(nsamples=500); see benchmarks/results/shap.md.
DEFAULT_N_PERMUTATIONS = 1536
# The sampler stops a row when ‖SE‖₂ / ‖φ‖₂ ≤ 1 % (see relative_standard_error), or at the cap.
DEFAULT_TARGET_RELATIVE_SE = 0.01
# No stop before 32 antithetic pairs (64 permutations): the variance estimate has ≥ 31 degrees of freedom, so a
# lucky run of similar pairs cannot fake precision (its relative error is then ≈ 1/√62 ≈ 13 %).
MIN_PAIRS = 32
# Checkpoints fall on multiples of 16 pairs, at most 4× the pairs already spent, aimed at the projected need.
PAIR_STEP = 16
MAX_GROWTH = 4
# Where φ ≈ 0, the relative SE is taken against 10 % of the largest output change the row's coalitions produce.
RELATIVE_SE_FLOOR = 0.1
DEFAULT_CHUNK_SIZE = 65_536
DEFAULT_BACKGROUND_SIZE = 10

METHOD_SAMPLING = "antithetic permutation sampling"

ModelFn = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int, str], None]


# --------------------------------------------------------------------------------------------------
# The model as a function of a float32 array
# --------------------------------------------------------------------------------------------------


class ModelFunction:
    """`f(X (n, d) float32) -> (n, k)`: the model's probabilities (classification) or outputs (regression)."""

    def __init__(self, model: LoadedModel, batch_size: int = 4096):
        self.model = model
        self.batch_size = int(batch_size)
        self.task = model.info.task
        self.n_outputs = model.info.n_outputs
        self.output_names: list[str] = (
            list(class_names_or_default(model.info.class_names, self.n_outputs))
            if self.task == "classification"
            else [model.info.target_name or "prediction"]
        )
        self.feature_names: list[str] = list(model.info.feature_names)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise XaiError(f"The model takes a table of shape (rows, features); got an array of shape {X.shape}.")
        expected = self.model.info.input_shape
        if self.model.info.input_kind == "tabular" and len(expected) == 1 and X.shape[1] != expected[0]:
            raise XaiError(
                f"The model takes {expected[0]} features but the table has {X.shape[1]} columns. "
                "Select the model's feature columns, in the model's order."
            )
        if len(X) == 0:
            return np.zeros((0, self.n_outputs), dtype=np.float32)
        return self.model.predict_proba(torch.from_numpy(X), batch_size=self.batch_size)


def model_output_fn(model: LoadedModel, batch_size: int = 4096) -> ModelFunction:
    """Wrap a LoadedModel as `f(X) -> (n, k)` (probabilities or regression output), batched, under no_grad."""
    return ModelFunction(model, batch_size=batch_size)


# --------------------------------------------------------------------------------------------------
# Background: what "a feature is absent" means
# --------------------------------------------------------------------------------------------------


def make_background(
    data: pd.DataFrame | np.ndarray,
    kind: BackgroundKind = "mean",
    k: int = DEFAULT_BACKGROUND_SIZE,
    seed: int = 0,
) -> Background:
    """Summarise reference data as the mean row, k k-means centres weighted by cluster size, or k random rows."""
    values, names = check_table(data, "background data")
    if kind == "mean":
        return Background(values.mean(axis=0, keepdims=True), np.ones(1), "mean", names, None)
    if kind == "given":
        return Background(values, np.full(len(values), 1.0 / len(values)), "given", names, None)
    if kind not in ("kmeans", "random"):
        raise XaiError(f"Background kind must be 'mean', 'kmeans', 'random' or 'given', not {kind!r}.")
    k = int(k)
    if k < 1:
        raise XaiError(f"The background needs at least 1 row; got k = {k}.")
    if k >= len(values):
        return Background(values, np.full(len(values), 1.0 / len(values)), kind, names, seed)
    if kind == "random":
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(values), size=k, replace=False))
        return Background(values[idx], np.full(k, 1.0 / k), "random", names, seed)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(values)
    counts = np.bincount(km.labels_, minlength=k).astype(np.float64)
    keep = counts > 0
    centres = km.cluster_centers_[keep].astype(np.float64)
    return Background(centres, counts[keep] / counts[keep].sum(), "kmeans", names, seed)


# --------------------------------------------------------------------------------------------------
# Settings and result
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapleySettings:
    """How to compute Shapley values; on a result, how they were computed (estimator resolved, unused fields None).

    `n_permutations` is the sampler's cap per row and `target_relative_se` its stopping goal (None: spend the cap).
    """

    baseline: BackgroundKind = "mean"
    n_background: int = DEFAULT_BACKGROUND_SIZE
    estimator: Literal["auto", "exact", "sampling"] = "auto"
    n_permutations: int | None = DEFAULT_N_PERMUTATIONS  # None when exact
    target_relative_se: float | None = DEFAULT_TARGET_RELATIVE_SE  # None when exact or when the cap is spent
    seed: int | None = 0  # None when exact
    chunk_size: int = DEFAULT_CHUNK_SIZE


# One result type for every local tabular method; the old name stays for notebooks.
ShapleyResult = TabularAttribution


# --------------------------------------------------------------------------------------------------
# Main entry
# --------------------------------------------------------------------------------------------------


def shapley_values(
    f: ModelFn,
    X: pd.DataFrame | np.ndarray,
    background: Background | pd.DataFrame | np.ndarray | None = None,
    method: Literal["auto", "exact", "sampling"] = "auto",
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    seed: int = 0,
    progress: ProgressFn | None = None,
    feature_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    target_relative_se: float | None = DEFAULT_TARGET_RELATIVE_SE,
    row_offset: int = 0,
) -> TabularAttribution:
    """Shapley values of `f` at each row of `X`: exact when d ≤ 14 (or method="exact"), else sampled.

    `background`: a `Background` (see `make_background`), or a table of rows used with equal weights, or
    None for the mean of `X`. The sampler spends at most `n_permutations` per row and stops a row earlier once
    its relative standard error is ≤ `target_relative_se` (None: always spend the cap); see
    `relative_standard_error`. `progress(done, total, message)` is called after each row or group of rows.
    `row_offset`: the index of X's first row in the whole dataset. The sampler seeds row r of X with
    `default_rng([seed, row_offset + r])`, so a row's sampled values are the same whichever slice (page, shard,
    batch) it is explained in, given its index in the dataset.
    """
    values, x_names = check_table(X, "rows to explain")
    if isinstance(row_offset, bool) or not isinstance(row_offset, (int, np.integer)) or row_offset < 0:
        raise XaiError(f"row_offset is the index of the first row in the dataset, an integer ≥ 0; got {row_offset!r}.")
    n, d = values.shape
    names = list(feature_names) if feature_names is not None else (x_names or [f"x{i}" for i in range(d)])
    if len(names) != d:
        raise XaiError(f"Got {len(names)} feature names for {d} columns; pass one name per column.")
    bg = _resolve_background(background, values, x_names)
    if method not in ("auto", "exact", "sampling"):
        raise XaiError(f"method must be 'auto', 'exact' or 'sampling', not {method!r}.")
    use_exact = method == "exact" or (method == "auto" and d <= EXACT_MAX_FEATURES) or d == 1
    if use_exact and d > EXACT_MAX_FEATURES:
        raise XaiError(
            f"Exact Shapley values need 2^d model calls per row; with {d} features that is too many "
            f"(limit {EXACT_MAX_FEATURES} features). Use method='sampling'."
        )
    chunk_size = max(int(chunk_size), 1)
    if not use_exact:
        n_permutations = int(n_permutations)
        if n_permutations < 4:
            raise XaiError(f"The sampler needs at least 4 permutations (2 antithetic pairs); got {n_permutations}.")
        n_permutations += n_permutations % 2
        if target_relative_se is not None:
            target_relative_se = float(target_relative_se)
            if not 0 < target_relative_se < 1:
                raise XaiError(
                    f"target_relative_se is a fraction of the values' size, e.g. 0.01 for 1 %; got {target_relative_se}. "
                    "Pass None to spend all n_permutations."
                )

    outputs = _call_model(f, values.astype(np.float32), d)
    k = outputs.shape[1]
    if output_names is None:
        output_names = getattr(f, "output_names", None)
    if output_names is None or len(output_names) != k:
        output_names = [f"output {j}" for j in range(k)]

    empty_value = _coalition_values(f, values[:1], np.zeros((1, d), dtype=bool), bg, chunk_size, k)[0, 0]

    used = rel_se = None
    if use_exact:
        phi, se = _exact(f, values, bg, k, chunk_size, progress)
        settings = ShapleySettings(bg.kind, len(bg), "exact", None, None, None, chunk_size)
        estimator = METHOD_EXACT
        rel_se = np.zeros(n)
    else:
        phi, se, used, rel_se = _antithetic(f, values, bg, k, n_permutations, seed, chunk_size, progress,
                                            target_relative_se, int(row_offset))
        settings = ShapleySettings(bg.kind, len(bg), "sampling", n_permutations, target_relative_se, seed, chunk_size)
        estimator = METHOD_SAMPLING

    rows = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(values, columns=names)
    rows.columns = names
    notes = []
    if used is not None and target_relative_se is not None:
        short = rel_se > target_relative_se
        if short.any():
            notes.append(
                f"{int(short.sum())} of {n} rows spent the cap of {n_permutations} permutations before their relative "
                f"standard error reached {target_relative_se:.2%} (largest {rel_se.max():.2%}); raise n_permutations "
                "for more precise values."
            )
    return TabularAttribution(
        values=phi,
        standard_errors=se,
        method=estimator,
        settings=settings,
        feature_names=names,
        output_names=list(output_names),
        rows=rows,
        outputs=outputs.astype(np.float64),
        base_values=empty_value,
        key="shapley",
        value_label="SHAP value",
        background=bg,
        notes=notes,
        n_permutations_used=used,
        relative_standard_errors=rel_se,
    )


def relative_standard_error(values: np.ndarray, standard_errors: np.ndarray, spread: float = 0.0) -> float:
    """One row's ‖SE‖₂ / max(‖φ‖₂, 0.1·spread), norms over all features and outputs; 0 when every SE is 0.

    ‖SE‖₂ / ‖φ‖₂ is about the relative L2 error of the row's estimate. `spread` is the largest ‖v(S) − v(∅)‖₂ over
    the coalitions evaluated for the row: when φ ≈ 0 (the row is like the background, or effects cancel), the error
    is measured against a tenth of how far the row's output moves at all, instead of against ≈ 0.
    """
    se = float(np.linalg.norm(standard_errors))
    if se == 0.0:
        return 0.0
    scale = max(float(np.linalg.norm(values)), RELATIVE_SE_FLOOR * float(spread))
    return se / scale if scale > 0 else float("inf")


# --------------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------------


def coalition_masks(d: int) -> np.ndarray:
    """All 2^d coalitions as a boolean matrix; row s has feature i present iff bit i of s is set."""
    return ((np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1).astype(bool)


def exact_coefficients(masks: np.ndarray) -> np.ndarray:
    """C (2^d, d) with φ = Cᵀ v: C[S, i] = w(|S|−1) if i ∈ S else −w(|S|), w(s) = s!(d−s−1)!/d!."""
    d = masks.shape[1]
    size = masks.sum(axis=1)
    w = np.array([1.0 / (d * math.comb(d - 1, s)) for s in range(d)] + [0.0])
    return np.where(masks, w[np.maximum(size - 1, 0)][:, None], -w[size][:, None])


def _exact(f, X, bg, k, chunk_size, progress):
    n, d = X.shape
    masks = coalition_masks(d)
    coef = exact_coefficients(masks)
    phi = np.empty((n, d, k))
    # Rows per group: enough to fill a few chunks, so several rows share one forward when 2^d is small.
    per_row = len(masks) * len(bg)
    group = max(1, (4 * chunk_size) // per_row)
    for start in range(0, n, group):
        rows = X[start : start + group]
        v = _coalition_values(f, rows, masks, bg, chunk_size, k)  # (r, 2^d, k)
        phi[start : start + len(rows)] = coef.T @ v  # φ = Cᵀ v: one matrix product per group of rows
        _report(progress, start + len(rows), n)
    return phi, np.zeros_like(phi)


def _antithetic(f, X, bg, k, n_permutations, seed, chunk_size, progress, target, row_offset=0):
    """Each sampled permutation is paired with its reverse; SE = std of pair estimates / sqrt(n_pairs).

    Per row, pairs come from one stream `default_rng([seed, row_offset + row])` (the row's index in the dataset) in blocks ending at checkpoints; at each the row
    stops if its relative SE is ≤ `target`, else the next checkpoint is the projected need (SE ∝ 1/√pairs), at
    least `PAIR_STEP` more and at most `MAX_GROWTH`× the pairs spent. The checkpoints depend only on the row's own
    samples, never on `chunk_size` (which only splits the model calls), so a row's values depend on its seed and
    settings alone. Returns φ, SE, permutations used and relative SE per row.
    """
    n, d = X.shape
    cap = n_permutations // 2
    phi = np.empty((n, d, k))
    se = np.empty((n, d, k))
    used = np.empty(n, dtype=np.int64)
    rel_se = np.empty(n)
    small = np.int16 if d < 2**15 else np.int64  # narrow ints: the mask comparison is memory-bound
    for r in range(n):
        x = X[r : r + 1]
        # Seeded by the row's index in the dataset: its values do not depend on which other rows share the call.
        rng = np.random.default_rng([seed, row_offset + r])
        count, mean, m2 = 0, np.zeros((d, k)), np.zeros((d, k))
        goal = cap if target is None else min(cap, MIN_PAIRS)
        recurring = _RecurringCoalitions(f, x, bg, chunk_size, k, 2 * goal)  # v(∅), v(N), and what pays to cache
        while True:
            recurring.cache_if_worth(2 * (goal - count))
            walked = recurring.walked_sizes.astype(small)
            # Pairs per model batch: bound the masked inputs of one batch to a few chunks.
            block = max(1, (4 * chunk_size) // (2 * max(len(walked), 1) * len(bg)))
            while count < goal:
                nb = min(block, goal - count)
                pair = _antithetic_pairs(f, x, bg, k, chunk_size, rng, nb, recurring, walked)
                count, mean, m2 = _combine(count, mean, m2, pair)
            row_se = np.sqrt(m2 / max(count - 1, 1) / count)
            rel = relative_standard_error(mean, row_se, recurring.spread)
            if target is None or count >= cap or rel <= target:
                break
            goal = _next_checkpoint(count, rel, target, cap)
        phi[r], se[r], used[r], rel_se[r] = mean, row_se, 2 * count, rel
        _report(progress, r + 1, n)
    return phi, se, used, rel_se


def _next_checkpoint(count: int, rel: float, target: float, cap: int) -> int:
    """Pairs to have spent at the next check: aimed at (rel / target)² × count, within [count + step, growth × count]."""
    needed = count * (rel / target) ** 2 if np.isfinite(rel) else float("inf")
    goal = min(max(needed, count + PAIR_STEP), MAX_GROWTH * count)
    return int(min(cap, math.ceil(goal / PAIR_STEP) * PAIR_STEP))


def _antithetic_pairs(f, x, bg, k, chunk_size, rng, nb, recurring, walked) -> np.ndarray:
    """`nb` permutations from `rng` and their reverses, walked ∅ → N: the pair-averaged contributions (nb, d, k)."""
    d = x.shape[1]
    perm = rng.permuted(np.broadcast_to(np.arange(d), (nb, d)), axis=1)
    order = np.concatenate([perm, perm[:, ::-1]])  # (2·nb, d): the permutations, then their reverses
    rank = np.argsort(perm, axis=1)
    ranks = np.concatenate([rank, d - 1 - rank])  # ranks[p, i] = position of feature i in permutation p
    inner = np.empty((2 * nb, d - 1, k))  # v after each step 1 … d−1 of the walk ∅ → N
    if len(walked):  # the walked sizes are one contiguous run (the cached ones sit at both ends)
        masks = (ranks.astype(walked.dtype)[:, None, :] < walked[None, :, None]).reshape(-1, d)
        values = _coalition_values(f, x, masks, bg, chunk_size, k)[0]
        recurring.observe(values)
        inner[:, walked[0] - 1 : walked[-1]] = values.reshape(2 * nb, len(walked), k)
    recurring.fill(inner, order)
    table = recurring.table
    gains = np.empty((2 * nb, d, k))  # gain of the feature added at each step
    gains[:, 0] = inner[:, 0] - table[0]
    gains[:, 1:-1] = np.diff(inner, axis=1)
    gains[:, -1] = table[1] - inner[:, -1]
    # contrib[p, i] = gains[p, ranks[p, i]]: steps reordered into features
    index = torch.from_numpy(ranks)[:, :, None].expand(-1, -1, k)
    contrib = torch.gather(torch.from_numpy(gains), 1, index).numpy()
    return 0.5 * (contrib[:nb] + contrib[nb:])


class _RecurringCoalitions:
    """One row's v(∅), v(N), and — once they pay — the coalitions of 1, 2, d−2 and d−1 features, evaluated once.

    Coalitions of those sizes recur across permutations. Each level is cached only when the walks still planned
    would visit its sizes more often than there are such coalitions, so caching never costs more calls than
    walking. The estimator is unchanged; only repeated model calls are saved. Also tracks `spread`, the largest
    ‖v(S) − v(∅)‖₂ seen for the row (see `relative_standard_error`).
    """

    def __init__(self, f, x, bg, chunk_size, k, n_planned_permutations: int):
        self.f, self.x, self.bg, self.chunk_size, self.k = f, x, bg, chunk_size, k
        self.d = d = x.shape[1]
        self.singles = self.pairs = False
        self.table = np.zeros((0, k))
        self.spread = 0.0
        self._add([np.zeros((1, d), dtype=bool), np.ones((1, d), dtype=bool)], n_planned_permutations)

    @property
    def walked_sizes(self) -> np.ndarray:
        cached = ({1, self.d - 1} if self.singles else set()) | ({2, self.d - 2} if self.pairs else set())
        return np.array([s for s in range(1, self.d) if s not in cached], dtype=np.int64)

    def observe(self, values: np.ndarray) -> None:
        moved = np.linalg.norm(values.reshape(-1, self.k) - self.table[0], axis=1)
        self.spread = max(self.spread, float(moved.max(initial=0.0)))

    def cache_if_worth(self, n_more_permutations: int) -> None:
        """Cache the next levels if the planned permutations would visit them more often than they have coalitions."""
        self._add([], n_more_permutations)

    def _add(self, parts: list[np.ndarray], n_more_permutations: int) -> None:
        d = self.d
        singles = self.singles or (d >= 4 and n_more_permutations >= d)
        pairs = self.pairs or (singles and d >= 6 and n_more_permutations >= d * (d - 1) // 2)
        if singles and not self.singles:
            eye = np.eye(d, dtype=bool)
            parts += [eye, ~eye]
        if pairs and not self.pairs:
            i, j = np.triu_indices(d, 1)
            pm = np.zeros((len(i), d), dtype=bool)
            pm[np.arange(len(i)), i] = True
            pm[np.arange(len(i)), j] = True
            self.pair_index = np.zeros((d, d), dtype=np.int64)
            self.pair_index[i, j] = self.pair_index[j, i] = np.arange(len(i))
            self.n_pair_masks = len(i)
            parts += [pm, ~pm]
        if not parts:
            return
        values = _coalition_values(self.f, self.x, np.concatenate(parts), self.bg, self.chunk_size, self.k)[0]
        self.table = np.concatenate([self.table, values])  # ∅, N, then singles, complements, pairs, pair complements
        self.singles, self.pairs = singles, pairs
        self.observe(values)

    def fill(self, inner: np.ndarray, order: np.ndarray) -> None:
        """Write the cached v(step) into `inner` (p, d−1, k); `order[p, t]` is the feature at position t."""
        d, table = self.d, self.table
        if self.singles:
            inner[:, 0] = table[2 + order[:, 0]]  # {first feature}
            inner[:, d - 2] = table[2 + d + order[:, d - 1]]  # all but the last feature
        if self.pairs:
            base = 2 + 2 * d
            inner[:, 1] = table[base + self.pair_index[order[:, 0], order[:, 1]]]
            inner[:, d - 3] = table[base + self.n_pair_masks + self.pair_index[order[:, d - 2], order[:, d - 1]]]


def _combine(count, mean, m2, batch):
    """Merge a batch into running (count, mean, sum of squared deviations) — Chan et al.'s parallel update."""
    nb = len(batch)
    b_mean = batch.mean(axis=0)
    b_m2 = ((batch - b_mean) ** 2).sum(axis=0)
    total = count + nb
    delta = b_mean - mean
    return total, mean + delta * (nb / total), m2 + b_m2 + delta**2 * (count * nb / total)


def _coalition_values(f, rows, masks, bg, chunk_size, k) -> np.ndarray:
    """v(S) for every row × coalition: (r, c, k). `masks` (c, d) is shared by all rows."""
    r, d = rows.shape
    c, m = len(masks), len(bg)
    # torch.where builds the masked inputs several times faster than np.where with broadcasting.
    bg_rows = torch.from_numpy(bg.rows.astype(np.float32))
    rows32 = torch.from_numpy(rows.astype(np.float32))
    masks_t = torch.from_numpy(np.ascontiguousarray(masks))
    out = np.empty((r, c, k))
    points = max(1, chunk_size // m)  # coalition points per forward; each expands to m model inputs
    if c <= points:  # small games: several rows share one forward
        group = max(1, points // c)
        for start in range(0, r, group):
            x = rows32[start : start + group]
            inputs = torch.where(masks_t[None, :, None, :], x[:, None, None, :], bg_rows[None, None, :, :])
            values = _expectation(f, inputs.reshape(-1, d).numpy(), bg.weights, k)
            out[start : start + len(x)] = values.reshape(len(x), c, k)
        return out
    for i in range(r):
        x = rows32[i]
        for start in range(0, c, points):
            mask = masks_t[start : start + points]
            inputs = torch.where(mask[:, None, :], x[None, None, :], bg_rows[None, :, :])
            out[i, start : start + len(mask)] = _expectation(f, inputs.reshape(-1, d).numpy(), bg.weights, k)
    return out


def _expectation(f, inputs: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Σ_b w_b f(input with background b): model outputs (n·m, k) → (n, k)."""
    y = _call_model(f, inputs, inputs.shape[1], expected_outputs=k).astype(np.float64)
    m = len(weights)
    if m == 1:
        return y
    return np.tensordot(y.reshape(-1, m, k), weights, axes=([1], [0]))


# --------------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------------


def _resolve_background(background, X: np.ndarray, x_names: list[str] | None) -> Background:
    d = X.shape[1]
    if background is None:
        if len(X) < 2:
            raise XaiError(
                "With one row to explain, the mean of the rows is the row itself and every value is 0. "
                "Pass a background: make_background(training_data, 'mean')."
            )
        background = make_background(X, "mean")
    elif not isinstance(background, Background):
        bg_names = [str(c) for c in background.columns] if isinstance(background, pd.DataFrame) else None
        background = make_background(background, "given")
        background.feature_names = bg_names
    if background.rows.shape[1] != d:
        raise XaiError(
            f"The background has {background.rows.shape[1]} columns but the rows to explain have {d}; "
            "use the same feature columns for both."
        )
    check_same_columns(background.feature_names, x_names, "background", "rows to explain")
    return background


def _call_model(f, inputs: np.ndarray, d: int, expected_outputs: int | None = None) -> np.ndarray:
    y = np.asarray(f(inputs))
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != len(inputs):
        raise XaiError(f"The model function must return an array (n, k) for n input rows; got shape {y.shape} for n = {len(inputs)}.")
    if expected_outputs is not None and y.shape[1] != expected_outputs:
        raise XaiError(f"The model function returned {y.shape[1]} outputs, earlier {expected_outputs}; it must be consistent.")
    if not np.isfinite(y).all():
        raise XaiError("The model returned NaN or infinite outputs on these inputs; check the model and the feature scaling.")
    return y


def _report(progress: ProgressFn | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total, f"explaining {done}/{total} rows")
    log.debug("shapley: %d/%d rows", done, total)

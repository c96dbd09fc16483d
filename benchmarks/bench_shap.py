"""Shapley values: our exact enumeration and early-stopping antithetic sampler vs shap and Captum.

Run `python benchmarks/bench_shap.py [--threads N]`; writes a markdown section to stdout and to
benchmarks/results/shap.md. Needs `pip install shap` (benchmark-only dependency). On a machine shared with other
jobs, `--threads 1` keeps torch's thread pool from stalling when one of its threads is descheduled (the other spins
at each barrier), which would stretch our batched model calls far more than shap's mostly single-threaded work. Every number — times, ratios, errors, model calls — comes
from the one run that writes the file; nothing is hard-coded.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_flags, cpu_model  # noqa: E402
from xai_core.attribution.shapley import (  # noqa: E402
    DEFAULT_N_PERMUTATIONS,
    DEFAULT_TARGET_RELATIVE_SE,
    ShapleySettings,
    make_background,
    model_output_fn,
    shapley_values,
)
from xai_core.attribution.tabular import explain_table  # noqa: E402
from xai_core.model import LoadedModel, ModelInfo, output_scores  # noqa: E402

N_ROWS = 20  # rows explained by every method
N_REFERENCE_ROWS = 5  # breast-cancer rows given a 100k-permutation reference
N_REFERENCE_PERMUTATIONS = 100_000
SHAP_NSAMPLES = 500
KERNEL_MORE = 5_000  # KernelExplainer with 10× the samples, to see how its error falls
GOAL_ERROR = 0.02
TARGETS = (0.05, 0.03, 0.02, 0.015)  # early-stopping targets tried with a cap that does not bind
BIG_CAP = 65_536


class Standardize(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


def train_mlp(
    X: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, epochs: int = 300, lr: float = 1e-2,
    weight_decay: float = 1e-4,
) -> nn.Module:
    """d→64→64→k MLP with standardisation inside; full-batch Adam, seeded, a few seconds."""
    torch.manual_seed(seed)
    d = X.shape[1]
    std = X.std(axis=0)
    net = nn.Sequential(
        Standardize(X.mean(axis=0), np.where(std > 0, std, 1.0)),
        nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_classes),
    )
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def load_or_train(name: str, X_train, y_train, n_classes, feature_names, class_names):
    path = ROOT / "assets" / f"{name}_mlp.pt2"
    source = "trained on the fly (seed 0, 300 full-batch Adam steps)"
    if path.exists():
        module = torch.export.unflatten(torch.export.load(str(path))).eval()
        source = f"loaded from {path.relative_to(ROOT)}"
    else:
        module = train_mlp(X_train, y_train, n_classes)
    info = ModelInfo(
        name=name, task="classification", input_kind="tabular", input_shape=(X_train.shape[1],),
        class_names=tuple(class_names), feature_names=tuple(feature_names),
    )
    return LoadedModel(module, info, "state_dict", "", 0), source


class Counted:
    """The model function, counting the rows it is asked to evaluate (one row = one model call on one input)."""

    def __init__(self, f):
        self.f = f
        self.output_names = getattr(f, "output_names", None)
        self.rows = 0

    def __call__(self, X):
        X = np.asarray(X)
        self.rows += len(X)
        return self.f(X)


def rel_l2(est: np.ndarray, ref: np.ndarray) -> float:
    """Mean over rows of ||est − ref|| / ||ref||, norms over (features, outputs)."""
    num = np.linalg.norm((est - ref).reshape(len(ref), -1), axis=1)
    den = np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    return float(np.mean(num / den))


class Took(float):
    """A wall time in seconds that also carries the CPU time this process spent in the same run (`cpu`).

    On a shared machine other jobs stretch wall times; the process's CPU time (all its threads) is far less
    sensitive to them, so every time is shown as both.
    """

    def __new__(cls, wall: float, cpu: float):
        took = super().__new__(cls, wall)
        took.cpu = cpu
        return took


def timed(fn, repeat: int = 3):
    """Result and the best of `repeat` runs (the minimum is the least noisy), as wall time with its CPU time."""
    best = Took(float("inf"), float("inf"))
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        took = Took(time.perf_counter() - t, time.process_time() - c)
        best = min(best, took)
    return out, best


def ms(t: Took, n: int = N_ROWS) -> str:
    """Milliseconds per row: wall; CPU."""
    return f"{1000 * t / n:.1f}; {1000 * t.cpu / n:.1f}"


def scaled(t: Took, factor: float) -> Took:
    """A time for `factor` times as many rows (to compare per-row costs measured on different row counts)."""
    return Took(t * factor, t.cpu * factor)


def ratio(a: Took, b: Took) -> str:
    """a ÷ b in wall time; in CPU time."""
    return f"{a / b:.1f}×; {a.cpu / b.cpu:.1f}×"


def counted_run(f, fn, n_rows: int):
    """fn(counted f) → (result, model calls per row)."""
    counted = Counted(f)
    out = fn(counted)
    return out, counted.rows / n_rows


def shap_kernel(f, baseline, rows, nsamples: int = SHAP_NSAMPLES, **kwargs):
    import shap

    explainer = shap.KernelExplainer(f, baseline)
    values = explainer.shap_values(rows, nsamples=nsamples, silent=True, **kwargs)
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[0] != len(rows):  # older shap: list per output
        values = np.transpose(values, (1, 2, 0))
    return values


def shap_permutation(f, baseline, rows, max_evals: int, seed: int = 0):
    """shap.PermutationExplainer (antithetic permutations too) with `max_evals` model calls per row."""
    import shap

    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(baseline, max_samples=len(baseline)), seed=seed)
    return np.asarray(explainer(rows, max_evals=int(max_evals), silent=True).values)


def captum_method(cls, model: LoadedModel, baseline, rows, k):
    """Captum with its default settings (n_samples=25), baseline = the mean row, one call per row and output."""
    module = model.module

    def forward(x):
        return output_scores(module(x), "classification")

    method = cls(forward)
    base = torch.tensor(baseline, dtype=torch.float32)
    out = np.zeros((len(rows), rows.shape[1], k))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(rows):
            x = torch.tensor(row[None], dtype=torch.float32)
            for j in range(k):
                out[i, :, j] = method.attribute(x, baselines=base, target=j).detach().numpy()[0]
    return out


def simd_flags() -> str:
    """The SIMD features that decide how fast the model's matrix products run."""
    flags = cpu_flags()
    if not flags:
        return "unknown"
    wanted = [f for f in flags if f.startswith(("avx", "fma", "amx")) or f in ("sse4_2", "f16c")]
    return " ".join(wanted) or "none of avx/fma/amx"


def machine() -> str:
    cpu = cpu_model("unknown")
    import captum
    import shap
    import sklearn

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}\n"
        f"- machine: {os.cpu_count()} logical CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, no GPU; "
        f"torch threads {torch.get_num_threads()}; load average at start {load:.1f} (shared with other jobs, so "
        "timings are noisy; every ratio below compares times from this one run)\n"
        f"- CPU flags: {simd_flags()}\n"
        f"- Python {platform.python_version()}, torch {torch.__version__}, captum {captum.__version__}, "
        f"shap {shap.__version__}, scikit-learn {sklearn.__version__}"
    )


def spread(used: np.ndarray) -> str:
    return f"{int(used.min()):,} / {int(np.median(used)):,} / {int(used.max()):,}"


def main() -> str:
    from captum.attr import KernelShap, ShapleyValueSampling
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split

    lines = ["## Shapley values: accuracy and speed", "", machine()]
    if torch.get_num_threads() < len(os.sched_getaffinity(0)):
        lines.append("- run with `--threads " + str(torch.get_num_threads()) + "`: with other jobs on every core, "
                     "torch's thread pool stalls at each barrier while one of its threads waits for a core, which "
                     "stretches our batched model calls far more than shap's mostly single-threaded work")
    lines.append("")

    # ---------------- wine: 13 features, exact is the truth ----------------
    data = load_wine()
    X_tr, X_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.3, random_state=0, stratify=data.target)
    model, source = load_or_train("wine", X_tr, y_tr, 3, data.feature_names, data.target_names)
    f = model_output_fn(model)
    acc = float((f(X_te).argmax(1) == y_te).mean())
    rows = X_te[:N_ROWS]
    bg = make_background(X_tr, "mean")
    shapley_values(f, rows[:2], bg)  # warm-up
    exact, t_exact = timed(lambda: shapley_values(f, rows, bg))
    _, t_exact_1 = timed(lambda: [shapley_values(f, rows[i : i + 1], bg) for i in range(5)])
    # Through the registry, as the page runs it: same values, same cost.
    registry, t_registry = timed(lambda: explain_table(model, rows, "shapley", ShapleySettings(), background=bg))
    assert np.allclose(registry.values, exact.values, atol=1e-9)
    # Time is from the best of 3 runs for every method except Captum (1 run; it is far off anyway).
    samp, t_samp = timed(lambda: shapley_values(f, rows, bg, method="sampling"))
    sk, t_sk = timed(lambda: shap_kernel(f, bg.rows, rows))
    sk_nol1, t_sk_nol1 = timed(lambda: shap_kernel(f, bg.rows, rows, l1_reg=False))
    ck, t_ck = timed(lambda: captum_method(KernelShap, model, bg.rows, rows, 3), repeat=1)
    cs, t_cs = timed(lambda: captum_method(ShapleyValueSampling, model, bg.rows, rows, 3), repeat=1)
    lines += [
        f"### Wine (13 features, 13→64→64→3 MLP, {source}; test accuracy {acc:.3f})",
        "",
        f"{N_ROWS} test rows, baseline = the training mean row, outputs = class probabilities. "
        "Error = mean over rows of ‖φ − φ_exact‖₂ / ‖φ_exact‖₂ (norm over 13 features × 3 classes). The exact row "
        "is the speed check that used to be a wall-clock unit test.",
        "",
        "| method | settings | rel. L2 error vs exact | ms / row (wall; CPU) |",
        "|---|---|---|---|",
        f"| **ours, exact** | 2^13 coalitions, batched | 0 (efficiency gap {exact.efficiency_gap:.1e}) "
        f"| {ms(t_exact)} (one row at a time: {ms(t_exact_1, 5)}; through `explain_table`: {ms(t_registry)}) |",
        f"| ours, antithetic sampling (forced) | target relative SE {samp.settings.target_relative_se:.0%}, cap "
        f"{samp.settings.n_permutations}; permutations used min / median / max {spread(samp.n_permutations_used)} | "
        f"{rel_l2(samp.values, exact.values):.4f} | {ms(t_samp)} |",
        f"| shap.KernelExplainer | nsamples={SHAP_NSAMPLES}, default l1_reg='num_features(10)' | {rel_l2(sk, exact.values):.4f} | {ms(t_sk)} |",
        f"| shap.KernelExplainer | nsamples={SHAP_NSAMPLES}, l1_reg=False | {rel_l2(sk_nol1, exact.values):.4f} | {ms(t_sk_nol1)} |",
        f"| Captum KernelShap | defaults (n_samples=25), baselines = mean row, per class | {rel_l2(ck, exact.values):.4f} | {ms(t_ck)} |",
        f"| Captum ShapleyValueSampling | defaults (n_samples=25), baselines = mean row, per class | {rel_l2(cs, exact.values):.4f} | {ms(t_cs)} |",
        "",
        "Captum KernelShap / ShapleyValueSampling are not used by xai_core: with their default 25 samples they are "
        "far from the exact values.",
        "",
    ]
    print("\n".join(lines), flush=True)

    # ---------------- breast cancer: 30 features, sampling ----------------
    data = load_breast_cancer()
    X_tr, X_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.3, random_state=0, stratify=data.target)
    model, source = load_or_train("breast_cancer", X_tr, y_tr, 2, data.feature_names, data.target_names)
    lines2 = sampled_section("Breast cancer", model, source, X_tr, X_te, y_te, full=True)
    print("\n".join(lines2), flush=True)
    # The same architecture trained with more weight decay and fewer steps: less saturated outputs.
    soft = train_mlp(X_tr, y_tr, 2, epochs=200, lr=3e-3, weight_decay=1e-3)
    soft_model = LoadedModel(soft, model.info, "state_dict", "", 0)
    lines3 = sampled_section(
        "Breast cancer, regularised", soft_model, "trained on the fly (seed 0, 200 Adam steps, lr 3e-3, weight decay 1e-3)",
        X_tr, X_te, y_te, full=False,
    )
    print("\n".join(lines3), flush=True)
    return "\n".join(lines + lines2 + lines3)


def sampled_section(title, model, source, X_tr, X_te, y_te, full: bool) -> list[str]:
    """Our sampler vs shap / Captum on 30 features, against a 100k-permutation reference on a few rows."""
    from captum.attr import KernelShap

    f = model_output_fn(model)
    acc = float((f(X_te).argmax(1) == y_te).mean())
    rows = X_te[:N_ROWS]
    bg = make_background(X_tr, "mean")
    r = slice(0, N_REFERENCE_ROWS)
    ref, t_ref = timed(lambda: shapley_values(f, rows[r], bg, n_permutations=N_REFERENCE_PERMUTATIONS, seed=12345,
                                              target_relative_se=None), repeat=1)
    ref_rel_se = ref.relative_standard_errors
    seeds = lambda e: " / ".join(f"{v:.4f}" for v in e)  # noqa: E731

    def ours(target, cap, repeat):
        """Time over all rows (seed 0, best of `repeat`), calls per row, and the error on the reference rows for
        seeds 0, 1, 2."""
        res, t = timed(lambda: shapley_values(f, rows, bg, n_permutations=cap, target_relative_se=target, seed=0),
                       repeat=repeat)
        _, calls = counted_run(f, lambda g: shapley_values(g, rows[r], bg, n_permutations=cap,
                                                             target_relative_se=target, seed=0), N_REFERENCE_ROWS)
        errs = [rel_l2(res.values[r], ref.values)] + [
            rel_l2(shapley_values(f, rows[r], bg, n_permutations=cap, target_relative_se=target, seed=s).values,
                   ref.values) for s in (1, 2)
        ]
        return res, t, errs, calls

    shapley_values(f, rows[:1], bg)  # warm-up
    res, t_ours, errs, calls_ours = ours(DEFAULT_TARGET_RELATIVE_SE, DEFAULT_N_PERMUTATIONS, 3)
    (sk, calls_sk), t_sk = timed(lambda: counted_run(f, lambda g: shap_kernel(g, bg.rows, rows), N_ROWS))
    sk_nol1, t_sk_nol1 = timed(lambda: shap_kernel(f, bg.rows, rows, l1_reg=False))
    p_min, p_max = float(f(X_te).min()), float(f(X_te).max())
    within = np.abs(res.values[r] - ref.values) <= 2 * res.standard_errors[r] + 1e-12
    lines = [
        f"### {title} (30 features, 30→64→64→2 MLP, {source}; test accuracy {acc:.3f})",
        "",
        f"Reference: our sampler spending {N_REFERENCE_PERMUTATIONS:,} permutations per row (seed 12345, independent "
        f"of the runs below) on the first **{N_REFERENCE_ROWS} of the {N_ROWS} rows** only "
        f"({ms(t_ref, N_REFERENCE_ROWS)} ms per row, wall; CPU; its own relative SE per row "
        f"{seeds(ref_rel_se)}). Errors are against that reference on those {N_REFERENCE_ROWS} rows (ours: mean over "
        f"seeds 0, 1, 2); a measured error also holds the reference's own (measured² ≈ true² + reference²). "
        f"Times are per row over all {N_ROWS} rows, best of 3 unless marked. Model calls = rows fed to the model per "
        f"explained row, counted by wrapping the model function. Test-set probabilities range from {p_min:.1e} to "
        f"{p_max:.6f}; saturated outputs make the coalition game threshold-like, the hard case for sampling.",
        "",
        "| method | settings | rel. L2 error vs reference | permutations per row (min / median / max) | model calls per row | ms / row (wall; CPU) |",
        "|---|---|---|---|---|---|",
        f"| **ours, early-stopping antithetic sampling (default)** | target relative SE "
        f"{DEFAULT_TARGET_RELATIVE_SE:.0%}, cap {DEFAULT_N_PERMUTATIONS} | **{np.mean(errs):.4f}** (seeds: "
        f"{seeds(errs)}; own reported relative SE {np.mean(res.relative_standard_errors[r]):.4f}; "
        f"{100 * within.mean():.0f}% of values within 2 SE of the reference) | {spread(res.n_permutations_used)} | "
        f"{calls_ours:,.0f} | **{ms(t_ours)}** |",
        f"| shap.KernelExplainer | nsamples={SHAP_NSAMPLES}, default l1_reg='num_features(10)' "
        f"| {rel_l2(sk[r], ref.values):.4f} | – | {calls_sk:,.0f} | {ms(t_sk)} |",
        f"| shap.KernelExplainer | nsamples={SHAP_NSAMPLES}, l1_reg=False | {rel_l2(sk_nol1[r], ref.values):.4f} "
        f"| – | {calls_sk:,.0f} | {ms(t_sk_nol1)} |",
    ]
    if not full:
        met = np.mean(errs) <= 0.05 and t_ours <= t_sk
        return lines + [
            "",
            f"At the defaults: error {np.mean(errs):.4f} in {ms(t_ours)} ms per row, "
            f"{ratio(t_ours, t_sk)} the time of shap.KernelExplainer(nsamples={SHAP_NSAMPLES}) (wall; CPU) "
            f"(error ≤ 0.05 in no more time: **{'met' if met else 'not met'}**).",
            "",
        ]

    # More KernelExplainer samples, Captum, and shap's own permutation sampler at our number of model calls.
    (sk_more, calls_more), t_more = timed(lambda: counted_run(
        f, lambda g: shap_kernel(g, bg.rows, rows[r], nsamples=KERNEL_MORE, l1_reg=False), N_REFERENCE_ROWS), repeat=1)
    ck, t_ck = timed(lambda: captum_method(KernelShap, model, bg.rows, rows[r], 2), repeat=1)
    shap_permutation(f, bg.rows, rows[:1], 200)  # warm-up (shap compiles on first use)
    (sp, calls_sp), t_sp = timed(lambda: counted_run(
        f, lambda g: shap_permutation(g, bg.rows, rows[r], calls_ours), N_REFERENCE_ROWS), repeat=1)
    lines += [
        f"| shap.KernelExplainer | nsamples={KERNEL_MORE:,}, l1_reg=False (1 run, {N_REFERENCE_ROWS} rows) "
        f"| {rel_l2(sk_more, ref.values):.4f} | – | {calls_more:,.0f} | {ms(t_more, N_REFERENCE_ROWS)} |",
        f"| shap.PermutationExplainer | max_evals = our calls per row at the defaults (1 run, {N_REFERENCE_ROWS} rows) "
        f"| {rel_l2(sp, ref.values):.4f} | – | {calls_sp:,.0f} | {ms(t_sp, N_REFERENCE_ROWS)} |",
        f"| Captum KernelShap | defaults (n_samples=25), baselines = mean row, per class (1 run, {N_REFERENCE_ROWS} rows) "
        f"| {rel_l2(ck, ref.values):.4f} | – | – | {ms(t_ck, N_REFERENCE_ROWS)} |",
        "",
        f"**Early stopping against the target.** The cap is raised to {BIG_CAP:,} so the target decides; one timed "
        f"run over the {N_ROWS} rows each, with shap.KernelExplainer(nsamples={SHAP_NSAMPLES}) timed on the same rows "
        "just before it (1 run), so that each ratio compares two times taken under the same load.",
        "",
        "| target relative SE | rel. L2 error vs reference (seeds 0 / 1 / 2) | reported relative SE, max over rows "
        f"| permutations per row (min / median / max) | model calls per row | ms / row (wall; CPU) "
        f"| KernelExplainer({SHAP_NSAMPLES}) ms / row, timed just before | time ratio ours ÷ Kernel (wall; CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sweep = {}
    for target in TARGETS:
        _, t_k = timed(lambda: shap_kernel(f, bg.rows, rows), repeat=1)
        res_t, t_t, errs_t, calls_t = ours(target, BIG_CAP, 1)
        sweep[target] = (res_t, t_t, errs_t, calls_t, t_k)
        lines.append(
            f"| {target:.1%} | {np.mean(errs_t):.4f} ({seeds(errs_t)}) | {res_t.relative_standard_errors.max():.4f} "
            f"| {spread(res_t.n_permutations_used)} | {calls_t:,.0f} | {ms(t_t)} | {ms(t_k)} | {ratio(t_t, t_k)} |"
        )
        print(lines[-1], flush=True)
    # shap's own antithetic permutation sampler, given our model calls at the goal's target (1 run). It needs
    # seconds per row at that budget, so it runs on the first 2 reference rows, compared with ours on the same 2.
    goal_res, goal_t, goal_errs, calls_goal, goal_tk = sweep[GOAL_ERROR]
    two = slice(0, 2)
    _, calls_goal_two = counted_run(f, lambda g: shapley_values(g, rows[two], bg, n_permutations=BIG_CAP,
                                                                target_relative_se=GOAL_ERROR, seed=0), 2)
    (sp_goal, calls_sp_goal), t_sp_goal = timed(lambda: counted_run(
        f, lambda g: shap_permutation(g, bg.rows, rows[two], calls_goal_two), 2), repeat=1)
    lines += [
        "",
        f"shap.PermutationExplainer given our model calls at target {GOAL_ERROR:.0%} on the first 2 reference rows "
        f"({calls_goal_two:,.0f} per row; it used {calls_sp_goal:,.0f}): error {rel_l2(sp_goal, ref.values[two]):.4f} "
        f"(ours on the same rows {rel_l2(goal_res.values[two], ref.values[two]):.4f}) in {ms(t_sp_goal, 2)} ms per "
        f"row, wall; CPU (ours: {ms(goal_t)} over the {N_ROWS} rows).",
    ]

    met = np.mean(goal_errs) <= GOAL_ERROR and goal_t < goal_tk and goal_t.cpu < goal_tk.cpu
    reaching = [t for t in TARGETS if np.mean(sweep[t][2]) <= GOAL_ERROR]
    # How many permutations 2 % needs on this model, from the default run's own standard errors (SE ∝ 1/√n).
    need = DEFAULT_N_PERMUTATIONS * (res.relative_standard_errors / GOAL_ERROR) ** 2
    ref_floor = float(np.sqrt(np.mean(ref_rel_se**2)))
    lines += [
        "",
        f"Per-row permutations at target {GOAL_ERROR:.0%} (rows 0–{N_ROWS - 1}): "
        + ", ".join(f"{int(u):,}" for u in goal_res.n_permutations_used) + ".",
        "",
        f"**Goal: error ≤ {GOAL_ERROR} in less time per row than shap.KernelExplainer(nsamples={SHAP_NSAMPLES}) on the "
        f"same rows: {'met' if met else 'not met'}.** At target {GOAL_ERROR:.0%} the error is {np.mean(goal_errs):.4f} "
        f"in {ms(goal_t)} ms per row (wall; CPU), {ratio(goal_t, goal_tk)} KernelExplainer's {ms(goal_tk)} ms timed "
        "just before "
        f"(KernelExplainer's error: {rel_l2(sk[r], ref.values):.4f})."
        + (f" The loosest target tried that reaches error ≤ {GOAL_ERROR} is {max(reaching):.1%}: "
           f"{ms(sweep[max(reaching)][1])} ms per row, {ratio(sweep[max(reaching)][1], sweep[max(reaching)][4])} "
           "KernelExplainer's time." if reaching else f" No target tried reaches error ≤ {GOAL_ERROR}.")
        + f" Why: the error is set by the game, not by our implementation — shap.PermutationExplainer, given the same "
        f"model calls, lands at about the same error (defaults: {rel_l2(sp, ref.values):.4f} vs ours "
        f"{np.mean(errs):.4f}; at target {GOAL_ERROR:.0%}: {rel_l2(sp_goal, ref.values[two]):.4f} vs "
        f"{rel_l2(goal_res.values[two], ref.values[two]):.4f} on two rows) in {ratio(scaled(t_sp, N_ROWS / N_REFERENCE_ROWS), t_ours)} "
        f"our time (wall; CPU). At the default cap of {DEFAULT_N_PERMUTATIONS} the rows' own relative SE is "
        f"{spread_pct(res.relative_standard_errors)} (min / median / max); SE ∝ 1/√permutations, so {GOAL_ERROR:.0%} "
        f"needs about {spread(need)} permutations per row, {np.median(need) / DEFAULT_N_PERMUTATIONS:.0f}× the cap "
        f"for the median row, and time grows in proportion. The measured error also carries the 100k reference's own "
        f"≈ {ref_floor:.4f}, so {GOAL_ERROR} against it needs ≈ {np.sqrt(max(GOAL_ERROR**2 - ref_floor**2, 0)):.4f} "
        f"against the truth. KernelExplainer is fast because it spends {calls_sk:,.0f} model calls per row "
        f"({calls_goal / calls_sk:,.0f}× fewer than ours at target {GOAL_ERROR:.0%}); its error is "
        f"{rel_l2(sk[r], ref.values) / np.mean(errs):.0f}× ours at the defaults, and with {KERNEL_MORE:,} samples still "
        f"{rel_l2(sk_more, ref.values):.4f}. Meeting the goal would take a lower-variance estimator (e.g. a control "
        f"variate or regression adjustment), not a different stopping rule.",
        "",
    ]
    return lines


def spread_pct(values: np.ndarray) -> str:
    return f"{values.min():.1%} / {np.median(values):.1%} / {values.max():.1%}"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = main()
    out = ROOT / "benchmarks" / "results" / "shap.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(f"(written to {out.relative_to(ROOT)})")

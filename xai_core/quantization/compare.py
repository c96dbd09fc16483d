"""Comparing variants with fp32: fp32's side computed once (`prepare_comparison`), then each variant on its own
(`compare_variant`), so that a page can cache each variant separately; `compare_variants` does it all in one call."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from xai_core import scoring
from xai_core.datasets import ImageSet, TableSet, TextSet
from xai_core.errors import XaiError
from xai_core.evaluation import data_labels, model_inputs
from xai_core.model import LoadedModel
from xai_core.quantization.drift import (DriftReference, ImageDriftReference, TextDriftReference, drift_reference,
                                        VariantDrift, fp32_occlusion, variant_drift)
from xai_core.quantization.specs import BITS, BuildContext, SpeedVerdict, Variant, VariantSpec
from xai_core.quantization.timing import DISTURBED, Clock, TimingContext
from xai_core.quantization.variants import build_variant, default_specs
from xai_core.quantization.weights import copy_with_weights

ProgressFn = Callable[[int, int, str], None]
FP32 = VariantSpec("fp32")
FP32_OCCLUSION = "fp32 occlusion"  # a step of fp32's side that runs only once a real int8 variant asks for it
UNTIMED, TIMED = "building, answering, explaining", "timing"  # compare_many's two phases


@dataclass(frozen=True)
class ComparisonSettings:
    """Everything besides the model, the data and the variant that changes a variant's result."""

    batch_sizes: tuple[int, ...] = (1, 256)  # latency is measured at these batch sizes
    n_drift: int = 12  # explanation drift on this many images or rows (0: none)
    n_calibration: int = 128  # static int8 calibrates its activation ranges on this many inputs
    max_rows: int = 2000  # answers compared on a seeded sample of this many rows
    seed: int = 0


@dataclass
class VariantResult:
    """One row of the comparison: the variant against fp32 on the same data."""

    label: str
    spec: VariantSpec
    score: float | None  # accuracy or R² against the labels (None when unlabelled)
    agreement: float | None  # top-1 agreement with fp32 (classification)
    divergence: float  # mean KL(fp32 ‖ variant) for classifiers, MSE against fp32's output for regression
    size_bytes: int
    size_basis: str
    latency_ms: dict[int, float]  # batch size → median ms per batch
    speedup: dict[int, float]  # batch size → fp32 time / variant time, both from the same run
    drift: dict[str, float] = field(default_factory=dict)  # metric → value (rank correlation, top-k overlap)
    drift_method: str = ""
    notes: list[str] = field(default_factory=list)
    fp32_latency_ms: dict[int, float] = field(default_factory=dict)  # fp32's time in the run that timed this variant
    timing_group: str = ""  # variants of one group run the same kernels and share one timing
    timing_cpu_share: float | None = None  # share of its timing run the timing thread had a CPU (None: not known)
    drift_values: np.ndarray | None = field(default=None, repr=False)  # its maps (n, H, W) or φ (n, d)
    seconds: float = 0.0  # how long computing this row took
    step_seconds: dict[str, float] = field(default_factory=dict)  # of which: building, answering, timing, explaining


@dataclass(frozen=True)
class VariantFailure:
    """A variant that could not be built, and why (said to the user; the others are still compared)."""

    label: str
    spec: VariantSpec
    error: str


@dataclass
class QuantizationComparison:
    """Every variant of one model compared with fp32 on the same data; the page and notebooks read this."""

    model_name: str
    task: str
    score_name: str | None
    n_rows: int
    results: list[VariantResult]  # fp32 first
    bits_curve: pd.DataFrame  # bits, granularity, score, agreement, divergence
    drift_reference: DriftReference | None  # fp32's explanations the variants' are compared with
    drift_variants: dict[str, np.ndarray]  # label → maps (n, H, W) or φ (n, d) of the explained class
    errors: dict[str, str]  # variants that could not be built: label → why
    settings: dict
    seconds: float

    def to_frame(self) -> pd.DataFrame:
        """One row per variant: the side-by-side table (also the CSV download)."""
        rows = []
        base = self.results[0]
        for r in self.results:
            row = {"variant": r.label}
            if self.score_name:
                row[self.score_name] = r.score
                row[f"Δ {self.score_name}"] = None if r.score is None or base.score is None else r.score - base.score
            if self.task == "classification":
                row["agreement with fp32"] = r.agreement
                row["mean KL vs fp32"] = r.divergence
            else:
                row["MSE vs fp32"] = r.divergence
            row["size (bytes)"] = r.size_bytes
            row["size basis"] = r.size_basis
            row["size ratio vs fp32"] = base.size_bytes / r.size_bytes if r.size_bytes else None
            for batch, ms in r.latency_ms.items():
                row[f"ms / batch {batch}"] = ms
                row[f"fp32 ms / batch {batch}, same run"] = r.fp32_latency_ms.get(batch)
                row[f"speedup at batch {batch}"] = r.speedup.get(batch)
            row["CPU share while timed"] = r.timing_cpu_share
            for name, value in r.drift.items():
                row[name] = value
            row["drift method"] = r.drift_method
            rows.append(row)
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- fp32's side, once


class Gate:
    """Steps that may run side by side (`shared`: building, answering, explaining) and steps that must run alone
    (`alone`: timing). A step waiting to run alone lets the shared steps in flight finish, and no new one starts until
    it is done, so a timing is never slowed by this comparison's own work."""

    def __init__(self):
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._alone or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self):
        with self._cond:
            self._waiting += 1
            try:
                while self._alone or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
                self._cond.notify_all()  # shared steps held back by this wait may go on if it ends in an error
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


class ComparisonContext:
    """fp32's side of a comparison, computed once and read by every variant's: the compared rows and their labels,
    fp32's answers, the model lifted once (`build`), the timing context, and fp32's explanations (`drift`)."""

    def __init__(self, model: LoadedModel, data: ImageSet | TableSet | TextSet, x: torch.Tensor, labels: np.ndarray | None,
                 reference: np.ndarray, settings: ComparisonSettings, build: BuildContext, timing: TimingContext,
                 drift: DriftReference | None):
        self.model, self.data, self.x, self.labels, self.reference = model, data, x, labels, reference
        self.settings, self.build, self.timing, self.drift = settings, build, timing, drift
        self._occlusion: np.ndarray | None = None
        # answers of the rounded-weight variants already computed, (bits, per_channel) → probabilities: the bits curve
        # reads them instead of running the same rounded model again
        self.rounded_answers: dict[tuple[int, bool], np.ndarray] = {}
        self._lock = threading.Lock()
        self.gate = Gate()  # building, answering and explaining run side by side; timing runs alone
        self._outcomes: dict[VariantSpec, VariantResult | VariantFailure] = {}  # compare_many's, once per spec
        self._many_lock = threading.Lock()
        self.computed: list[str] = []  # labels of the variants compare_many computed, in order (tests count them)
        self.wall_seconds: dict[VariantSpec, float] = {}  # compare_many's wall time, shared out among its variants
        self.workers = 1  # the most variants compare_many worked on at once
        self.phase_seconds: dict[str, float] = {}  # compare_many's wall time: UNTIMED (side by side), then TIMED
        self.seconds = 0.0  # how long preparing it took
        self.step_seconds: dict[str, float] = {}  # of which: rows, lifting, fp32 answers, fp32 explanations (+ occlusion)

    @property
    def task(self) -> str:
        return self.model.info.task

    def missing(self, specs: list[VariantSpec]) -> list[VariantSpec]:
        """fp32 and those of `specs` that `compare_many` has not computed yet."""
        return [s for s in dict.fromkeys([FP32, *specs]) if s not in self._outcomes]

    @property
    def score_name(self) -> str | None:
        return None if self.labels is None else scoring.score_name(self.task)

    def fp32_occlusion(self):
        """fp32's occlusion maps of the drift images, or leave-one-word-out values of the drift documents (computed
        once, for the real int8 variants)."""
        with self._lock:
            if self._occlusion is None:
                if not isinstance(self.drift, (ImageDriftReference, TextDriftReference)):
                    raise XaiError("Occlusion drift is for image and text models.")
                started = time.perf_counter()
                self._occlusion = fp32_occlusion(self.model, self.drift)
                self.step_seconds[FP32_OCCLUSION] = time.perf_counter() - started
            return self._occlusion


def prepare_comparison(model: LoadedModel, data: ImageSet | TableSet | TextSet, settings: ComparisonSettings | None = None,
                       background: TableSet | None = None, clock: Clock = time.perf_counter,
                       workers: int | None = None) -> ComparisonContext:
    """fp32's side of the comparison of `model`'s variants on `data` (a seeded sample of `settings.max_rows` rows).
    With more than one worker (default: `default_workers()`), fp32's answers and its explanations run side by side."""
    watch = _Stopwatch()
    settings = settings or ComparisonSettings()
    rng = np.random.default_rng(settings.seed)
    subset, x, labels = _compared_rows(model, data, settings.max_rows, rng)
    calibration = x[torch.from_numpy(rng.permutation(len(x))[:settings.n_calibration])]
    build = BuildContext(model, calibration)
    watch.lap("rows")
    timing = TimingContext(build.flat_fp32(), x, settings.batch_sizes, clock=clock)
    watch.lap("lifting")

    def explanations() -> tuple[DriftReference | None, float]:
        started = time.perf_counter()
        return drift_reference(model, subset, settings.n_drift, background, settings.seed), time.perf_counter() - started

    if (workers or default_workers()) > 1:  # fp32's explanations on an idle core while fp32 answers on this one
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xai-compare") as pool:
            explaining = pool.submit(explanations)
            reference = model.predict_proba(x)
            watch.lap("fp32 answers")
            drift, watch.laps["fp32 explanations"] = explaining.result()
    else:
        reference = model.predict_proba(x)
        watch.lap("fp32 answers")
        drift, watch.laps["fp32 explanations"] = explanations()
    context = ComparisonContext(model, subset, x, labels, reference, settings, build, timing, drift)
    context.seconds, context.step_seconds = watch.total(), watch.laps
    return context


class _Stopwatch:
    """Seconds spent in each named step (for the benchmark's breakdown and the page's total)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.start


def _compared_rows(model: LoadedModel, data: ImageSet | TableSet | TextSet, max_rows: int, rng: np.random.Generator):
    """Up to `max_rows` rows of `data` (a seeded sample, in order), the model's inputs for them, and their labels."""
    if len(data) == 0:
        raise XaiError("There is no data to compare the variants on.")
    index = np.sort(rng.choice(len(data), size=min(len(data), max_rows), replace=False))
    if isinstance(data, TableSet):
        subset = TableSet(data.X.iloc[index], None if data.y is None else data.y.iloc[index], data.target_name)
    else:
        subset = data.subset(index)
    return subset, model_inputs(model, subset), data_labels(subset)


# ---------------------------------------------------------------------------------------- one variant


def divergence(task: str, reference: np.ndarray, other: np.ndarray) -> float:
    """Mean KL(reference ‖ other) of class probabilities (classification), or the MSE of the predictions (regression)."""
    if task == "classification":
        p = np.clip(np.asarray(reference, dtype=np.float64), 1e-12, 1)  # float64: KL of close models is tiny
        q = np.clip(np.asarray(other, dtype=np.float64), 1e-12, 1)
        return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))
    return float(np.mean((np.asarray(reference[:, 0], dtype=np.float64) - other[:, 0]) ** 2))


@dataclass
class _Untimed:
    """What comparing one variant computes before its timing: the variant, its answers and its drift."""

    spec: VariantSpec
    variant: Variant
    out: np.ndarray
    drift: VariantDrift | None
    watch: "_Stopwatch"


def _untimed(context: ComparisonContext, spec: VariantSpec, tick: Callable[[int, str], None]) -> _Untimed:
    """Build, answer and explain `spec`'s variant: the work that may run beside other variants' (each step holds the
    context's gate shared, so a timing run waits for the step in flight and runs alone)."""
    watch = _Stopwatch()
    tick(0, "building")
    with context.gate.shared():
        variant = build_variant(context.model, spec, context=context.build)
    watch.lap("building")
    tick(1, "answering")
    if spec == FP32:  # the model itself on the same rows: fp32's answers, computed once in prepare_comparison
        out = context.reference
    else:
        with context.gate.shared():
            out = variant.answer_model.predict_proba(context.x)
        if spec.kind == "weights" and spec.sparsity == 0:
            context.rounded_answers[(spec.bits, spec.per_channel)] = out
    watch.lap("answering")
    drift = None
    if context.drift is not None and spec != FP32:
        tick(2, "explaining")
        waited = [0.0]

        def occlusion_reference() -> np.ndarray:
            started = time.perf_counter()
            try:
                return context.fp32_occlusion()
            finally:
                waited[0] += time.perf_counter() - started

        with context.gate.shared():
            drift = variant_drift(variant, context.drift, occlusion_reference)
        watch.lap("explaining")
        if waited[0] > 0:  # computing fp32's occlusion (or waiting for it) is fp32's side, not this variant's
            watch.laps["explaining"] -= waited[0]
            watch.laps[FP32_OCCLUSION] = waited[0]
    return _Untimed(spec, variant, out, drift, watch)


def _timed(context: ComparisonContext, done: _Untimed, tick: Callable[[int, str], None]) -> VariantResult:
    """`done`'s variant timed in a run interleaved with fp32 (its own, unless `TimingContext.measure` already timed its
    group with the others) — alone: no other step of this comparison runs meanwhile — and its row of the comparison."""
    spec, variant, out, drift, watch = done.spec, done.variant, done.out, done.drift, done.watch
    tick(3, "timing (interleaved with fp32, nothing else running)")
    builder = spec.builder
    with context.gate.alone():
        latency = context.timing.latency(builder.timing_group(spec), lambda: builder.timed_module(variant, context.build))
    claimed = context.timing.claim_seconds(latency.group)  # the first variant of a group pays for its run's part
    watch.laps["timing"] = 0.0 if claimed is None else claimed
    task = context.task
    return VariantResult(
        label=spec.label, spec=spec, score=scoring.score(task, out, context.labels),
        agreement=scoring.agreement(context.reference, out) if task == "classification" else None,
        divergence=divergence(task, context.reference, out), size_bytes=variant.size_bytes,
        size_basis=variant.size_basis, latency_ms=dict(latency.ms), speedup=latency.speedup,
        drift={} if drift is None else drift.metrics, drift_method="" if drift is None else drift.method,
        notes=list(variant.notes), fp32_latency_ms=dict(latency.fp32_ms), timing_group=latency.group,
        timing_cpu_share=latency.cpu_share,
        drift_values=None if drift is None else drift.values, seconds=sum(watch.laps.values()),
        step_seconds=watch.laps,
    )


def compare_variant(context: ComparisonContext, spec: VariantSpec, progress: ProgressFn | None = None) -> VariantResult:
    """`spec`'s variant against fp32: built (on the model lifted once), answered, explained, and timed in its own run
    interleaved with fp32. Raises XaiError when the variant cannot be built for this model."""
    def tick(step: int, message: str) -> None:
        if progress is not None:
            progress(step, 4, f"{spec.label}: {message}")

    result = _timed(context, _untimed(context, spec, tick), tick)
    tick(4, "done")
    return result


def try_compare_variant(context: ComparisonContext, spec: VariantSpec,
                        progress: ProgressFn | None = None) -> VariantResult | VariantFailure:
    """`compare_variant`, with a variant that cannot be built returned as a `VariantFailure` (fp32 itself raises)."""
    try:
        return compare_variant(context, spec, progress)
    except XaiError as exc:
        if spec == FP32:
            raise
        return VariantFailure(spec.label, spec, str(exc))


MAX_WORKERS = 4  # beyond this the timing, which runs alone, dominates; and each worker holds copies of the model


def default_workers() -> int:
    """Threads for a comparison's building, answering and explaining: the cores torch's own threads leave idle, at
    most `MAX_WORKERS`. The dashboard's server runs one torch thread per call, so on 2 cores two variants are worked
    on at once; with torch's default of one thread per core, one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores // max(1, torch.get_num_threads())))


def compare_many(context: ComparisonContext, specs: list[VariantSpec], progress: ProgressFn | None = None,
                 workers: int | None = None) -> list[VariantResult | VariantFailure]:
    """fp32 and every variant of `specs` against fp32 (as `try_compare_variant`), in that order. Each is computed
    once per context: a later call with one more spec computes only that one, and a call from another thread waits
    for this one instead of computing the same again.

    Building, answering and explaining run on `workers` threads side by side (default: `default_workers()`); then each
    variant is timed, one at a time, in this thread, with nothing else of the comparison running. The results are a
    serial run's but for the times. `progress` is called from this thread only."""
    wanted = list(dict.fromkeys([FP32, *specs]))
    with context._many_lock:
        missing = context.missing(wanted)
        if missing:
            started = time.perf_counter()
            workers = max(1, min(workers or default_workers(), len(missing)))
            context.workers = max(context.workers, workers)
            computed = _compute_many(context, missing, progress, workers)
            wall = time.perf_counter() - started
            busy = sum(o.seconds for o in computed.values() if isinstance(o, VariantResult)) or 1.0
            for spec, outcome in computed.items():  # the wall time, shared out by each variant's own seconds
                if isinstance(outcome, VariantResult):
                    context.wall_seconds[spec] = wall * outcome.seconds / busy
            context._outcomes.update(computed)
        return [context._outcomes[s] for s in wanted]


def _compute_many(context: ComparisonContext, specs: list[VariantSpec], progress: ProgressFn | None,
                  workers: int) -> dict[VariantSpec, VariantResult | VariantFailure]:
    steps = {spec: 0 for spec in specs}
    latest = [""]
    lock = threading.Lock()
    caller = threading.get_ident()

    def report() -> None:
        if progress is not None:
            with lock:
                done, message = sum(steps.values()), latest[0]
            progress(done, 4 * len(specs), message)

    def ticker(spec: VariantSpec) -> Callable[[int, str], None]:
        def tick(step: int, message: str) -> None:
            with lock:
                steps[spec] = step
                latest[0] = f"{spec.label}: {message}"
            if threading.get_ident() == caller:
                report()
        return tick

    def untimed(spec: VariantSpec) -> _Untimed | VariantFailure:
        try:
            return _untimed(context, spec, ticker(spec))
        except XaiError as exc:
            if spec == FP32:
                raise
            return VariantFailure(spec.label, spec, str(exc))

    def occlusion() -> None:
        try:
            with context.gate.shared():  # a timing elsewhere (compare_variant in another thread) waits for it
                context.fp32_occlusion()
        except XaiError:  # the real int8 variant that needs it raises the same, and fails on its own
            pass

    started = time.perf_counter()
    done: dict[VariantSpec, _Untimed | VariantFailure] = {}
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            done[spec] = untimed(spec)
    else:
        # the longest first: a variant that builds slowly (static int8's calibration), then fp32's occlusion, which
        # the real int8 variants are compared with, then the real int8 variants (their occlusion on the real model
        # besides the gradient method), then the rest
        order = sorted(specs, key=lambda s: (not s.builder.builds_slowly, not s.builder.real_int8))
        first = order[:1] if order[0].builder.builds_slowly else []  # a second slow one waits: fp32's occlusion first
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="xai-compare") as pool:
            futures: dict[concurrent.futures.Future, VariantSpec | None] = {}
            futures.update({pool.submit(untimed, spec): spec for spec in first})
            if (any(s.builder.real_int8 for s in specs) and FP32_OCCLUSION not in context.step_seconds
                    and isinstance(context.drift, (ImageDriftReference, TextDriftReference))):
                futures[pool.submit(occlusion)] = None
            futures.update({pool.submit(untimed, spec): spec for spec in order if spec not in first})
            pending = set(futures)
            try:
                while pending:
                    _, pending = concurrent.futures.wait(pending, timeout=0.25,
                                                         return_when=concurrent.futures.FIRST_COMPLETED)
                    report()
            except BaseException:  # e.g. Streamlit stopping this run when the user changes a control: do not make
                for future in pending:  # them wait for variants nobody will see; the steps in flight still finish
                    future.cancel()
                raise
        for future, spec in futures.items():
            outcome = future.result()  # an unexpected error in a worker is raised here
            if spec is not None:
                done[spec] = outcome
    timing_started = time.perf_counter()
    context.phase_seconds[UNTIMED] = context.phase_seconds.get(UNTIMED, 0.0) + timing_started - started
    # every group in one run, fp32 once per round for all of them; alone: nothing else of the comparison runs meanwhile
    groups: dict[str, Callable[[], nn.Module]] = {}
    for spec, outcome in done.items():
        if isinstance(outcome, _Untimed):
            groups.setdefault(spec.builder.timing_group(spec),
                              functools.partial(spec.builder.timed_module, outcome.variant, context.build))
    with lock:
        latest[0] = f"timing {len(groups)} group{'s' if len(groups) != 1 else ''} of variants, interleaved with fp32"
    report()
    with context.gate.alone():
        context.timing.measure(groups)
    outcomes: dict[VariantSpec, VariantResult | VariantFailure] = {}
    for spec in specs:
        outcome = done[spec]
        if isinstance(outcome, _Untimed):
            try:
                outcome = _timed(context, outcome, ticker(spec))
            except XaiError as exc:  # e.g. the real half model has no kernel for one of its ops on this CPU
                if spec == FP32:
                    raise
                outcome = VariantFailure(spec.label, spec, str(exc))
        outcomes[spec] = outcome
        ticker(spec)(4, "done")
        context.computed.append(spec.label)
    context.phase_seconds[TIMED] = context.phase_seconds.get(TIMED, 0.0) + time.perf_counter() - timing_started
    return outcomes


def assemble(context: ComparisonContext, outcomes: list[VariantResult | VariantFailure],
             bits_curve: pd.DataFrame | None = None, seconds: float | None = None) -> QuantizationComparison:
    """The comparison from fp32's result (first) and every variant's outcome. `seconds`: by default the time spent
    computing fp32's side and each result (whenever they were computed; of results computed side by side by
    `compare_many`, their share of its wall time)."""
    results = [o for o in outcomes if isinstance(o, VariantResult)]
    if not results or results[0].spec != FP32:
        raise XaiError("A comparison starts with fp32's own result.")
    return QuantizationComparison(
        model_name=context.model.info.name, task=context.task, score_name=context.score_name, n_rows=len(context.x),
        results=results, bits_curve=pd.DataFrame() if bits_curve is None else bits_curve,
        drift_reference=context.drift,
        drift_variants={r.label: r.drift_values for r in results[1:] if r.drift_values is not None},
        errors={o.label: o.error for o in outcomes if isinstance(o, VariantFailure)},
        settings={"kind": context.model.info.input_kind, "batch_sizes": list(context.settings.batch_sizes),
                  "n_drift": context.settings.n_drift, "n_calibration": len(context.build.calibration),
                  "rows": len(context.x), "seed": context.settings.seed, "threads": torch.get_num_threads(),
                  "workers": context.workers},
        seconds=(context.seconds + sum(context.wall_seconds.get(r.spec, r.seconds) for r in results)
                 if seconds is None else seconds),
    )


def compare_variants(
    model: LoadedModel,
    data: ImageSet | TableSet | TextSet,
    specs: list[VariantSpec] | None = None,
    background: TableSet | None = None,
    batch_sizes: tuple[int, ...] = (1, 256),
    n_drift: int = 12,
    n_calibration: int = 128,
    max_rows: int = 2000,
    bits_curve: bool = True,
    seed: int = 0,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> QuantizationComparison:
    """Build every variant in `specs` (fp32 is always first) and compare it with fp32 on `data`.

    Accuracy/agreement/divergence on up to `max_rows` rows; latency at `batch_sizes`, each variant (or group of
    variants running the same kernels) timed in its own run interleaved with fp32; explanation drift on `n_drift` rows
    or images (Grad-CAM for images, Shapley values for tables). The model is lifted once for all of it. Variants are
    built, answered and explained on `workers` threads side by side and timed one at a time (`compare_many`).
    """
    started = time.perf_counter()
    specs = [FP32] + [s for s in (specs if specs is not None else default_specs(model)) if s != FP32]
    steps = len(specs) + 1 + (1 if bits_curve else 0)

    def tick(step: int, message: str) -> None:
        if progress is not None:
            progress(min(step, steps), steps, message)

    tick(1, "fp32: answers, lifting, explanations")
    context = prepare_comparison(model, data, ComparisonSettings(tuple(batch_sizes), n_drift, n_calibration, max_rows,
                                                                 seed), background, workers=workers)
    outcomes = compare_many(context, specs, lambda done, total, message: tick(1 + done * len(specs) // total, message),
                            workers)
    curve = None
    if bits_curve:
        tick(steps, "bits curve")
        curve = bits_curve_for(context)
    return assemble(context, outcomes, curve, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------- bits curve


def bits_curve(model: LoadedModel, data: ImageSet | TableSet | TextSet, max_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The bits curve of `compare_variants`, on its own (the same rows for the same `max_rows` and `seed`)."""
    _, x, labels = _compared_rows(model, data, max_rows, np.random.default_rng(seed))
    return bits_curve_frame(model, x, labels, module=BuildContext(model).flat_fp32())


def bits_curve_for(context: ComparisonContext) -> pd.DataFrame:
    """The bits curve on a prepared comparison's rows and lifted graph."""
    return bits_curve_frame(context.model, context.x, context.labels, context.reference, context.build.flat_fp32(),
                            known=dict(context.rounded_answers))


def bits_curve_frame(model: LoadedModel, x: torch.Tensor, labels: np.ndarray | None,
                     reference: np.ndarray | None = None, module: nn.Module | None = None,
                     known: dict[tuple[int, bool], np.ndarray] | None = None) -> pd.DataFrame:
    """Score and agreement with fp32 for weight fake quantization at 8, 6, 4, 3, 2 bits, per channel and per tensor.
    `module`: the model's module in a form that runs faster (its flat graph), if there is one. `known`: answers on `x`
    of rounded variants already computed ((bits, per_channel) → probabilities), not computed again."""
    known = known or {}
    task = model.info.task
    module = model.module if module is None else module
    if reference is None:
        reference = model.predict_proba(x)
    rows = [{"bits": 32, "granularity": g, "score": scoring.score(task, reference, labels),
             "agreement": 1.0 if task == "classification" else None, "divergence": 0.0}
            for g in ("per-channel", "per-tensor")]
    for per_channel in (True, False):
        for bits in BITS:
            out = known.get((bits, per_channel))
            if out is None:
                rounded = dataclasses.replace(model, module=copy_with_weights(module, bits, per_channel, 0.0))
                out = rounded.predict_proba(x)
            rows.append({"bits": bits, "granularity": "per-channel" if per_channel else "per-tensor",
                         "score": scoring.score(task, out, labels),
                         "agreement": scoring.agreement(reference, out) if task == "classification" else None,
                         "divergence": divergence(task, reference, out)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- verdicts


def speed_verdicts(comparison: QuantizationComparison) -> list[SpeedVerdict]:
    """Plain sentences on where a variant is not faster than fp32, and why: each kind of variant says its own."""
    groups: dict[object, tuple] = {}
    for r in comparison.results[1:]:
        builder = r.spec.builder
        key = type(builder).speed_verdicts
        groups.setdefault(key, (builder, []))[1].append(r)
    verdicts = [v for builder, results in groups.values() for v in builder.speed_verdicts(results, comparison)]
    disturbed = {r.timing_group: r.timing_cpu_share for r in comparison.results
                 if r.timing_cpu_share is not None and r.timing_cpu_share < DISTURBED}
    if disturbed:
        runs = ", ".join(f"{group} {share:.0%}" for group, share in disturbed.items())
        verdicts.insert(0, SpeedVerdict("warning", "**Other work disturbed the timings**: the timing thread had a CPU "
                                        f"for only part of the time ({runs}; on a quiet machine about 100%). Other "
                                        "sessions or processes were running, and these speedups may be off by far "
                                        "more than usual: compare again when the machine is quieter before trusting "
                                        "them."))
    return verdicts

"""Latency: each timed module interleaved with fp32 round by round, so both share the same machine state.

A variant's speedup is fp32's median time divided by its own, both from the same run. Variants that run the same
kernels (see `VariantBuilder.timing_group`) share one timing; the groups of one comparison are timed in one run
(`TimingContext.measure`), fp32 once per round for all of them; a variant added later is timed in a run of its own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from xai_core.errors import XaiError

Clock = Callable[[], float]
FP32 = "fp32"


BUDGET_S = 0.05  # seconds per module and batch size. The shapes CNN's speedups (8 runs each, 1 thread): run-to-run
# variation 1.0–4.9% at 0.05 s and 0.9–4.6% at 0.1 s, for int8 static, bf16 and int8 dynamic at batches 1 and 32; a run
# of one group took 0.24–0.31 s instead of 0.33–0.36 s


def measure_latency(modules: dict[str, nn.Module], x: torch.Tensor, batch_sizes=(1, 256), budget_s: float = BUDGET_S,
                    max_rounds: int = 40, clock: Clock = time.perf_counter,
                    spent: dict[str, float] | None = None) -> dict[str, dict[int, float]]:
    """Median ms per batch of every module, interleaved round by round so that all share the same machine state.

    Each module is warmed up once (first calls pay one-off costs: packing, allocation), then timed for at least 5
    rounds and about `budget_s` per module; a module whose single call already exceeds the budget (half precision on a
    CPU without half kernels takes seconds) is timed once per batch size, so it cannot hold the page up. `clock`:
    seconds, monotonic (tests pass a fake one). `spent`: filled with each module's seconds in its calls.
    """
    result: dict[str, dict[int, float]] = {name: {} for name in modules}
    spent = {} if spent is None else spent
    with torch.inference_mode():
        for name, module in modules.items():
            t0 = clock()
            module(x[:1])
            spent[name] = spent.get(name, 0.0) + clock() - t0
        for batch in batch_sizes:
            reps = -(-batch // len(x))
            xb = x.repeat((reps,) + (1,) * (x.ndim - 1))[:batch].contiguous()
            times: dict[str, list[float]] = {name: [] for name in modules}
            active = list(modules)
            start = clock()
            rounds = 0
            while active:
                for name in active:
                    t0 = clock()
                    modules[name](xb)
                    times[name].append(clock() - t0)
                rounds += 1
                over_budget = clock() - start >= budget_s * len(modules)
                active = [name for name in active if rounds < max_rounds
                          and not (over_budget and rounds >= (1 if times[name][0] >= budget_s else 5))]
            for name in modules:
                result[name][batch] = float(np.median(times[name]) * 1000)
                spent[name] += float(np.sum(times[name]))
    return result


DISTURBED = 0.8  # a timing run whose thread had a CPU less than this share of its time was disturbed


def timed_run(run: Callable[[], dict], clock: Clock) -> tuple[dict, float | None]:
    """`run()`, and the share of its wall time the calling thread spent on a CPU. A timing only computes, so on a quiet
    machine that is ~1; what is missing went to other work (other sessions, other processes, a thread holding the GIL)
    that also slowed some of the timed calls. None where it cannot be told: with more than one torch thread the work is
    not all in this thread, and with a clock other than perf_counter (tests) the two clocks do not compare."""
    if clock is not time.perf_counter or torch.get_num_threads() != 1:
        return run(), None
    cpu, wall = time.thread_time(), time.perf_counter()
    result = run()
    wall = time.perf_counter() - wall
    return result, (min(1.0, (time.thread_time() - cpu) / wall) if wall > 0 else None)


@dataclass(frozen=True)
class Latency:
    """Median ms per batch of one timing group, and fp32's in the same run."""

    group: str
    ms: dict[int, float]  # batch size → median ms per batch
    fp32_ms: dict[int, float]  # fp32's, interleaved with it in the same run
    cpu_share: float | None = None  # share of the run's wall time the timing thread had a CPU (see `timed_run`)
    seconds: float = 0.0  # this group's part of its run: its own calls and its share of fp32's

    @property
    def speedup(self) -> dict[int, float]:
        """Batch size → fp32 time / this time, both from the same run."""
        return {b: self.fp32_ms[b] / self.ms[b] for b in self.ms}


class TimingContext:
    """What every timing run of one comparison shares: fp32's flat module, the inputs and the batch sizes. Each timing
    group is measured once (later calls read it back); runs happen one at a time, so two do not slow each other."""

    def __init__(self, fp32: nn.Module, x: torch.Tensor, batch_sizes: tuple[int, ...], budget_s: float = BUDGET_S,
                 clock: Clock = time.perf_counter):
        self.fp32_module, self.x, self.batch_sizes = fp32, x, tuple(batch_sizes)
        self.budget_s, self.clock = budget_s, clock
        self._runs: dict[str, Latency] = {}
        self._errors: dict[str, XaiError] = {}  # groups whose timed module could not be built
        self._claimed: set[str] = set()
        self._lock = threading.RLock()

    def fp32(self) -> Latency:
        """fp32's own time (the fp32 row, and every variant that runs fp32's kernels): from the first run that timed
        it, alone or with other groups (`measure`)."""
        with self._lock:
            if FP32 not in self._runs:
                self._run({})
            return self._runs[FP32]

    def latency(self, group: str, module: Callable[[], nn.Module]) -> Latency:
        """The timing of `group`: `module()` interleaved with fp32 in a run of their own (measured on first call,
        unless `measure` timed it with others). Raises the XaiError building its module raised."""
        if group == FP32:
            return self.fp32()
        with self._lock:
            if group not in self._runs:
                self.measure({group: module})
            if group in self._errors:
                raise self._errors[group]
            return self._runs[group]

    def measure(self, groups: dict[str, Callable[[], nn.Module]]) -> None:
        """Time every group of `groups` not timed yet in one run, fp32 and all of them interleaved round by round: each
        speedup is still fp32's time over the variant's in the same run, and fp32 runs once per round for all of them
        instead of once per group. A group whose module cannot be built is remembered; `latency` raises its error."""
        with self._lock:
            modules: dict[str, nn.Module] = {}
            for group, build in groups.items():
                if group == FP32 or group in self._runs or group in self._errors:
                    continue
                try:
                    modules[group] = build()
                except XaiError as exc:
                    self._errors[group] = exc
            if modules or (FP32 in groups and FP32 not in self._runs):
                self._run(modules)

    def _run(self, modules: dict[str, nn.Module]) -> None:
        spent: dict[str, float] = {}
        timed = {FP32: self.fp32_module, **modules}
        run, share = timed_run(lambda: measure_latency(timed, self.x, self.batch_sizes, self.budget_s,
                                                       clock=self.clock, spent=spent), self.clock)
        fp32_part = spent[FP32] / max(1, len(modules))
        for group in modules:
            self._runs[group] = Latency(group, run[group], run[FP32], share, spent[group] + fp32_part)
        if FP32 not in self._runs:
            self._runs[FP32] = Latency(FP32, run[FP32], run[FP32], share, 0.0 if modules else spent[FP32])

    def claim_seconds(self, group: str) -> float | None:
        """The seconds of `group`'s part of its run, the first time they are asked for (then None): the first variant
        of a group pays for its timing, the others share it."""
        with self._lock:
            if group in self._claimed or group not in self._runs:
                return None
            self._claimed.add(group)
            return self._runs[group].seconds

"""Latency: each timed module interleaved with fp32 round by round, so both share the same machine state.

A variant's speedup is fp32's median time divided by its own, both from the same run. Variants that run the same
kernels (see `VariantBuilder.timing_group`) share one run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

Clock = Callable[[], float]
FP32 = "fp32"


BUDGET_S = 0.05  # seconds per module and batch size. The shapes CNN's speedups (8 runs each, 1 thread): run-to-run
# variation 1.0–4.9% at 0.05 s and 0.9–4.6% at 0.1 s, for int8 static, bf16 and int8 dynamic at batches 1 and 32; a run
# of one group took 0.24–0.31 s instead of 0.33–0.36 s


def measure_latency(modules: dict[str, nn.Module], x: torch.Tensor, batch_sizes=(1, 256), budget_s: float = BUDGET_S,
                    max_rounds: int = 40, clock: Clock = time.perf_counter) -> dict[str, dict[int, float]]:
    """Median ms per batch of every module, interleaved round by round so that all share the same machine state.

    Each module is warmed up once (first calls pay one-off costs: packing, allocation), then timed for at least 5
    rounds and about `budget_s` per module; a module whose single call already exceeds the budget (half precision on a
    CPU without half kernels takes seconds) is timed once per batch size, so it cannot hold the page up. `clock`:
    seconds, monotonic (tests pass a fake one).
    """
    result: dict[str, dict[int, float]] = {name: {} for name in modules}
    with torch.inference_mode():
        for module in modules.values():
            module(x[:1])
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
    return result


@dataclass(frozen=True)
class Latency:
    """Median ms per batch of one timing group, and fp32's in the same run."""

    group: str
    ms: dict[int, float]  # batch size → median ms per batch
    fp32_ms: dict[int, float]  # fp32's, interleaved with it in the same run

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
        self._lock = threading.RLock()

    def fp32(self) -> Latency:
        """fp32 timed on its own (the fp32 row, and every variant that runs fp32's kernels)."""
        with self._lock:
            if FP32 not in self._runs:
                ms = measure_latency({FP32: self.fp32_module}, self.x, self.batch_sizes, self.budget_s,
                                     clock=self.clock)[FP32]
                self._runs[FP32] = Latency(FP32, ms, ms)
            return self._runs[FP32]

    def latency(self, group: str, module: Callable[[], nn.Module]) -> Latency:
        """The timing of `group`: `module()` interleaved with fp32 in a run of their own (measured on first call)."""
        if group == FP32:
            return self.fp32()
        with self._lock:
            if group not in self._runs:
                timed = {FP32: self.fp32_module, group: module()}
                run = measure_latency(timed, self.x, self.batch_sizes, self.budget_s, clock=self.clock)
                self._runs[group] = Latency(group, run[group], run[FP32])
            return self._runs[group]

"""Shared by the benchmarks: the machine description and writing a result section."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model(unknown: str = "unknown CPU") -> str:
    """The CPU's model name from /proc/cpuinfo (`unknown` where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return unknown


def machine() -> str:
    cpu = cpu_model()
    import torch

    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads; {datetime.date.today().isoformat()}")


def cpu_flags() -> list[str]:
    """The CPU's feature flags from /proc/cpuinfo ([] where it cannot be read): int8 and half-precision speed depend on
    them (AVX2 only, or AVX-512 VNNI / AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def write_section(name: str, markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    print(markdown)
    return path

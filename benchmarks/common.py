"""Shared by the benchmarks: the machine description and writing a result section."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from xai_core import machine as cpuinfo
from xai_core.machine import cpu_flags  # noqa: F401 (the benchmarks import it from here)

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model(unknown: str = "unknown CPU") -> str:
    """The CPU's model name from /proc/cpuinfo (`unknown` where it cannot be read)."""
    return cpuinfo.cpu_model() or unknown


def machine() -> str:
    cpu = cpu_model()
    import torch

    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads; {datetime.date.today().isoformat()}")


def write_section(name: str, markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    print(markdown)
    return path

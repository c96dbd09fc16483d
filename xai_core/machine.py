"""The machine this runs on, as /proc/cpuinfo describes it: the CPU's model name and feature flags.

The review manifest records them with every result, and the benchmarks print them: int8 and half-precision speed
depend on the flags (AVX2 only, or AVX-512 VNNI / AMX).
"""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _first_value(key: str, cpuinfo: Path) -> str | None:
    """The value of the first `key : value` line of `cpuinfo` (None where it cannot be read or has no such line)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo: Path = CPUINFO) -> str | None:
    """The CPU's model name (None where it cannot be read)."""
    return _first_value("model name", cpuinfo)


def cpu_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The CPU's feature flags ([] where they cannot be read)."""
    return (_first_value("flags", cpuinfo) or "").split()

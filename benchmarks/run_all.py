"""Run every benchmark and gather their sections into BENCHMARKS.md (machine and date in each section)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    """`run_all.py` runs every benchmark; `run_all.py shap startup` only those; `--collect-only` just rewrites BENCHMARKS.md."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only the benchmarks whose file name contains one of these")
    parser.add_argument("--collect-only", action="store_true", help="run nothing: rewrite BENCHMARKS.md from the "
                                                                      "results already in benchmarks/results/")
    args = parser.parse_args()
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if args.collect_only:
        scripts = []
    elif args.names:
        scripts = [s for s in scripts if any(name in s.name for name in args.names)]
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode != 0:
            failed.append(script.name)
    sections = [p.read_text() for p in sorted(RESULTS.glob("*.md"))]
    (ROOT / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nWritten by `python benchmarks/run_all.py` (one section per `benchmarks/bench_*.py`; "
        "ratios are measured within one run because the machine is shared and noisy).\n\n" + "\n".join(sections))
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

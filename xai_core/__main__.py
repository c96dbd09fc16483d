"""Command line: `python -m xai_core review --model M --data D --out DIR` (see `python -m xai_core review --help`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

# torch's OpenMP threads spin while they wait for each other; on a machine whose cores are busy with other work a
# spinning thread holds a core its partner needs, and every small operator waits a scheduler slice: Shapley on the
# breast cancer demo took 135-1056 ms per row with 2 threads instead of 33-38 ms, Grad-CAM 15 instead of 440 images/s
# (benchmarks/results/review.md). Sleeping waiters cost microseconds. Read once, when torch loads: set it before.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger("xai_core.review")

EPILOG = """example:
  python -m xai_core review --model assets/breast_cancer.pt2 --data assets/breast_cancer_test.csv \\
      --background assets/breast_cancer_train.csv --out reviews/breast_cancer

Rerunning the same command resumes: finished shards are kept, only the rest is computed.
"""


def build_parser() -> argparse.ArgumentParser:
    from xai_core.attribution.shapley import DEFAULT_N_PERMUTATIONS, DEFAULT_TARGET_RELATIVE_SE
    from xai_core.review import ANALYSES

    parser = argparse.ArgumentParser(prog="python -m xai_core", description="xai-dashboard from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("review", help="explain and audit a model over a whole dataset, into a folder",
                            description="Run every analysis the dashboard's pages offer over a whole dataset and "
                                        "write the results (Parquet, compressed arrays, manifest.json, report.html) "
                                        "into --out.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model file (.pt2, state_dict .pt/.pth/.safetensors, TorchScript)")
    p.add_argument("--sidecar", help="metadata JSON (default: the model's path with .json, when it exists)")
    p.add_argument("--data", required=True, nargs="+", help="a table (CSV/Parquet), or images / zips of class folders")
    p.add_argument("--background", help="training rows (table): SHAP baseline, surrogate rows, as on the pages")
    p.add_argument("--target-column", help="the label column of a table (default: found by name)")
    p.add_argument("--label-pattern", help="images: regular expression on the file name whose first group is the class")
    p.add_argument("--analyses", default=",".join(ANALYSES),
                   help=f"comma-separated, from {','.join(ANALYSES)} (default: all that fit the model; the "
                        "evaluation always runs)")
    p.add_argument("--out", required=True, help="folder for the results (created; a rerun resumes it)")
    p.add_argument("--rows", type=int, help="review only the first N rows or images")
    p.add_argument("--shard-size", type=int, default=256, help="rows or images per shard (default 256)")
    p.add_argument("--image-methods", default="", help="comma-separated image methods (default: the Image "
                   "explanations page's for the model: gradient-weighted attention for transformers, else Grad-CAM)")
    p.add_argument("--shap-estimator", choices=["auto", "exact", "sampling"], default="auto")
    p.add_argument("--shap-baseline", choices=["mean", "kmeans", "random"], default="mean")
    p.add_argument("--shap-background-size", type=int, default=10, help="k for kmeans/random baselines")
    p.add_argument("--shap-permutations", type=int, default=DEFAULT_N_PERMUTATIONS, help="sampler's cap per row")
    p.add_argument("--shap-target-se", type=float, default=DEFAULT_TARGET_RELATIVE_SE,
                   help="sampler stops a row at this relative standard error")
    p.add_argument("--surrogate-depth", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="seed of the SHAP sampler, surrogate and bootstrap")
    p.add_argument("--ray", metavar="auto|ADDRESS", help="run the per-row and per-image work on Ray ('auto': start or "
                                                         "join a local cluster). One-thread workers, one per CPU: "
                                                         "faster than in-process from a few thousand rows on, after "
                                                         "~10 s of start-up")
    p.add_argument("--ray-workers", type=int, help="Ray workers (default: the cluster's CPUs)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--pdf", action="store_true", help="also print report.pdf (needs Chromium and Playwright)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--crash-after-shards", type=int, help=argparse.SUPPRESS)  # tests: a hard crash mid-run
    return parser


class ProgressBar:
    """tqdm on stderr when installed, else one line rewritten in place with a count and an ETA."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            if self.bar is None:
                self.bar = tqdm(total=total, unit="unit", file=sys.stderr, dynamic_ncols=True)
            self.bar.set_description_str(message[:60])
            self.bar.update(done - self.bar.n)
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done else float("nan")
        sys.stderr.write(f"\r{done}/{total} units, ETA {eta:5.0f} s  {message[:60]:<60}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def review(args) -> int:
    from xai_core.attribution.shapley import ShapleySettings
    from xai_core.data_loading import load_data
    from xai_core.review import ModelSource, ReviewSettings, run_review
    from xai_core.surrogate import SurrogateSettings

    source = ModelSource.from_files(args.model, args.sidecar)
    model = source.load()
    data = load_data(_read_files(args.data), model.info, args.target_column, label_pattern=args.label_pattern)
    background = None
    if args.background:
        background = load_data(_read_files([args.background]), model.info, args.target_column)
    settings = ReviewSettings(
        analyses=tuple(a.strip() for a in args.analyses.split(",") if a.strip()),
        image_methods=tuple(m.strip() for m in args.image_methods.split(",") if m.strip()),
        shapley=ShapleySettings(baseline=args.shap_baseline, n_background=args.shap_background_size,
                                estimator=args.shap_estimator, n_permutations=args.shap_permutations,
                                target_relative_se=args.shap_target_se, seed=args.seed),
        surrogate=SurrogateSettings(max_depth=args.surrogate_depth, seed=args.seed),
        seed=args.seed, shard_size=args.shard_size, max_rows=args.rows)
    written = 0

    def on_shard(_name: str, _index: int) -> None:
        nonlocal written
        written += 1
        if args.crash_after_shards is not None and written >= args.crash_after_shards:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, like a power cut

    bar = ProgressBar(not args.quiet)
    try:
        result = run_review(model, data, args.out, settings, background=background, source=source, ray_address=args.ray,
                            ray_workers=args.ray_workers, progress=bar, on_shard=on_shard)
    finally:
        bar.close()
    out = Path(args.out)
    if not args.no_report or args.pdf:
        from xai_core.report import write_pdf, write_report

        html_path = write_report(result, out / "report.html")
        log.info("report: %s (%.1f MB)", html_path, html_path.stat().st_size / 1e6)
        if args.pdf:
            write_pdf(html_path, out / "report.pdf")
    print(f"review written to {out}" + ("" if result.complete else f" (missing: {', '.join(result.missing)})"))
    return 0


def _read_files(paths) -> list[tuple[str, bytes]]:
    from xai_core.errors import XaiError

    files = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise XaiError(f"The data file '{path}' does not exist.")
        files.append((path.name, path.read_bytes()))
    return files


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("xai_core.review.job").setLevel(logging.WARNING)  # the progress bar says it
    from xai_core.errors import XaiError

    try:
        return review(args)
    except XaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Review jobs: throughput in-process and on a local Ray cluster (1 and 2 workers), and the report's size.

Shapley values on the breast cancer demo (30 features: the sampler) in rows/s; Grad-CAM on the shapes demo in
images/s. Each mode writes a fresh review folder; "shards" is the time spent on the per-row work alone, "total" the
whole job (model hashing, evaluation, Ray start-up and worker start-up included). The direct call is what the page
runs: one `explain_table` / `explain_batch` call on the same rows.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, write_section  # noqa: E402
from xai_core.attribution.image import explain_batch  # noqa: E402
from xai_core.attribution.shapley import ShapleySettings  # noqa: E402
from xai_core.attribution.tabular import explain_table  # noqa: E402
from xai_core.demo import demo_model_bytes, load_demo_data  # noqa: E402
from xai_core.report import write_report  # noqa: E402
from xai_core.review import ModelSource, ReviewSettings, run_review  # noqa: E402

SHAP_ROWS, SHAP_SHARD = 32, 8
IMAGES, IMAGE_SHARD = 256, 64
NOTE = '- Reading: on 2 shared cores, in-process torch already uses both cores, so a second Ray worker cannot add compute; the table shows what Ray costs (worker start-up, model loaded once per worker from its bytes), not a speed-up. Ray pays off with more cores or machines. The Shapley rows/s are low because the sampler spends up to 1536 permutations per row (≈ 40,000 model rows per explained row) on the exported `.pt2` module.'


def case(key: str):
    model_bytes, sidecar = demo_model_bytes(key)
    source = ModelSource(model_bytes, f"{key}.pt2", sidecar)
    model = source.load()
    data = load_demo_data(key, model)
    background = load_demo_data(key, model, split="train") if key == "breast_cancer" else None
    return source, model, data, background


def timed_review(source, model, data, background, settings, out: Path, ray: str | None = None, workers=None):
    started = time.perf_counter()
    review = run_review(model, data, out, settings, background=background, source=source, ray_address=ray,
                        ray_workers=workers)
    total = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text())
    return review, total, manifest["timings"]["shards_wall_seconds"]


def main() -> None:
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-review-"))
    rows = []
    sizes = {}
    cases = [
        ("Shapley values, breast cancer", "rows", "breast_cancer",
         ReviewSettings(analyses=("shap",), shard_size=SHAP_SHARD, max_rows=SHAP_ROWS), SHAP_ROWS),
        ("Grad-CAM, shapes", "images", "shapes",
         ReviewSettings(analyses=("images",), shard_size=IMAGE_SHARD, max_rows=IMAGES), IMAGES),
    ]
    for title, unit, key, settings, n in cases:
        source, model, data, background = case(key)
        started = time.perf_counter()
        if unit == "rows":
            explain_table(model, data.X.iloc[:n], "shapley", ShapleySettings(), background=background.X)
        else:
            explain_batch(model, data.images[:n], "grad_cam", batch_size=16)
        direct = time.perf_counter() - started
        rows.append((title, "direct call (the page's)", "-", direct, direct, n / direct, unit))
        review, total, shards = timed_review(source, model, data, background, settings, work / f"{key}-local")
        rows.append((title, "review, in-process", "-", total, shards, n / shards, unit))
        report = write_report(review, work / f"{key}-local" / "report.html")
        sizes[title] = report.stat().st_size
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for workers in (1, 2):
                _, total, shards = timed_review(source, model, data, background, settings,
                                                work / f"{key}-ray{workers}", ray="auto", workers=workers)
                rows.append((title, f"review, Ray {workers} worker{'s' if workers > 1 else ''}", str(workers), total,
                             shards, n / shards, unit))
        finally:
            ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    lines = ["## Review jobs: throughput and report size", "", f"- machine: {machine()}",
             f"- Shapley: first {SHAP_ROWS} breast cancer test rows (30 features, sampler, ShapleySettings() defaults, "
             f"training mean row as baseline), shards of {SHAP_SHARD}. Grad-CAM: first {IMAGES} shapes test images, "
             f"shards of {IMAGE_SHARD}, batch 16.",
             "- Ray: a local cluster started with `ray.init(num_cpus=2)`, one CPU and one torch thread per worker; "
             "in-process runs use every torch thread. The machine's 2 cores are shared with other jobs.",
             NOTE, "",
             "| work | runner | Ray workers | total s | per-row work s | throughput |", "|---|---|---|---|---|---|"]
    for title, runner, workers, total, shards, rate, unit in rows:
        lines.append(f"| {title} | {runner} | {workers} | {total:.1f} | {shards:.1f} | {rate:.2f} {unit}/s |")
    lines += ["", "report.html (self-contained, plotly.js inlined once, "
              f"{len(__import__('plotly.offline', fromlist=['get_plotlyjs']).get_plotlyjs()) / 1e6:.1f} MB of it):"]
    lines += [f"- {title}: {size / 1e6:.2f} MB" for title, size in sizes.items()]
    write_section("review", "\n".join(lines))


if __name__ == "__main__":
    main()

"""Review jobs: throughput in-process vs on a local Ray cluster, cost per row from 1k to 100k rows, a 10k-row review.

1. Throughput, all in one process and one run: Shapley values on the breast cancer demo (30 features: the sampler)
   in rows/s, Grad-CAM on the shapes demo in images/s; in-process with 2 and 1 torch threads, and on a local Ray
   cluster (`ray.init(num_cpus=2)`) with 1 and 2 workers of one thread each. "Per-row work" is the time spent on the
   shards (the pool's start-up and model loading included, the cluster's own start not); "total" the whole job.
   A small contrast runs the same work in a subprocess with OpenMP's default spinning waiters.
2. Scale: the command line (`python -m xai_core review`, every analysis, report.html) on 1k and 10k rows; at 100k
   rows the whole-data parts run in full and Shapley on 3 shards (first, middle, last), extrapolated to all shards.
   The report's size and the time headless Chromium takes to open it and draw every figure.

The tables beyond the demo's 143 test rows are drawn from them with replacement, each feature moved by Gaussian noise
of 5 % of its training standard deviation (seeded): the rows look like the demo's, and a longer table's first rows are
the shorter one's. The Grad-CAM images are the 400 shapes test images repeated (Grad-CAM's cost does not depend on
the content). `--quick` runs everything small and does not write the results file.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command line does (xai_core/__main__.py), before torch

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_section  # noqa: E402
from xai_core.datasets import ImageSet, TableSet  # noqa: E402
from xai_core.demo import ASSETS, demo_model_bytes, load_demo_data  # noqa: E402
from xai_core.review import ModelSource, ReviewSettings, run_review  # noqa: E402

# scale: (rows, Ray workers or None for in-process) of each command-line review
SIZES = {"full": dict(shap_rows=384, shap_shard=48, images=2000, image_shard=250, big=100_000, spin_rows=6,
                      spin_images=64, scale=((1_000, None), (10_000, None), (10_000, 2))),
         "quick": dict(shap_rows=24, shap_shard=6, images=200, image_shard=50, big=5_000, spin_rows=2, spin_images=32,
                       scale=((60, None), (200, None), (200, 2)))}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def case(key: str):
    model_bytes, sidecar = demo_model_bytes(key)
    source = ModelSource(model_bytes, f"{key}.pt2", sidecar)
    model = source.load()
    return source, model


def scaled_table(model, n: int, seed: int = 0) -> TableSet:
    """n rows drawn from the demo's test rows, each feature jittered by 5 % of its training std (see the docstring)."""
    test, train = load_demo_data("breast_cancer", model), load_demo_data("breast_cancer", model, split="train")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(test), size=n)
    X = test.X.to_numpy()[pick] + rng.normal(size=(n, test.X.shape[1])) * 0.05 * train.X.to_numpy().std(axis=0)
    X = np.maximum(X, 0.0)  # every breast cancer feature is a size or a ratio
    return TableSet(pd.DataFrame(X, columns=test.X.columns), test.y.iloc[pick].reset_index(drop=True), test.target_name)


def repeated_images(model, n: int) -> ImageSet:
    data = load_demo_data("shapes", model)
    pick = np.arange(n) % len(data)
    return ImageSet(data.images[pick], [f"{data.names[i]}#{k}" for k, i in enumerate(pick)], data.labels[pick])


def timed_review(source, model, data, background, settings, out: Path, ray=None, workers=None):
    """(whole job s, per-row phase wall s, shard compute s summed over workers)."""
    started = time.perf_counter()
    run_review(model, data, out, settings, background=background, source=source, ray_address=ray, ray_workers=workers)
    total = time.perf_counter() - started
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    compute = sum(v for k, v in timings.items() if k.endswith("_shard_seconds"))
    return total, timings["shards_wall_seconds"], compute


# ---------------------------------------------------------------------------------------- 1. throughput


def throughput(size: dict, work: Path) -> tuple[list, dict]:
    import ray

    rows, loads = [], {"start": load()}
    sources = {key: case(key) for key in ("breast_cancer", "shapes")}
    bc_source, bc_model = sources["breast_cancer"]
    cases = [
        ("Shapley values, breast cancer", "rows", bc_source, bc_model, scaled_table(bc_model, size["shap_rows"]),
         load_demo_data("breast_cancer", bc_model, split="train"),
         ReviewSettings(analyses=("shap",), shard_size=size["shap_shard"])),
        ("Grad-CAM, shapes", "images", *sources["shapes"], repeated_images(sources["shapes"][1], size["images"]), None,
         ReviewSettings(analyses=("images",), shard_size=size["image_shard"])),
    ]
    threads = torch.get_num_threads()
    for title, unit, source, model, data, background, settings in cases:
        n = len(data)
        for t in (threads, 1):
            torch.set_num_threads(t)
            total, shards, compute = timed_review(source, model, data, background, settings, work / f"{unit}-local{t}")
            rows.append((title, f"in-process, {t} torch thread{'s' if t > 1 else ''}", total, shards, compute,
                         n / shards, unit))
        torch.set_num_threads(threads)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for workers in (1, 2):
                total, shards, compute = timed_review(source, model, data, background, settings,
                                                      work / f"{unit}-ray{workers}", ray="auto", workers=workers)
                rows.append((title, f"Ray, {workers} worker{'s' if workers > 1 else ''} x 1 thread", total, shards,
                             compute, n / shards, unit))
        finally:
            ray.shutdown()
        loads[title] = load()
    return rows, loads


SPIN_PROBE = """
import json, sys, time, torch
sys.path.insert(0, {root!r})
from benchmarks.bench_review import case, repeated_images, scaled_table
from xai_core.attribution.image import explain_batch
from xai_core.attribution.shapley import ShapleySettings
from xai_core.attribution.tabular import explain_table
from xai_core.demo import load_demo_data
_, bc = case("breast_cancer"); _, shapes = case("shapes")
rows = scaled_table(bc, {rows}); train = load_demo_data("breast_cancer", bc, split="train")
images = repeated_images(shapes, {images}).images
t = time.perf_counter(); explain_table(bc, rows.X, "shapley", ShapleySettings(), background=train.X)
shap = {rows} / (time.perf_counter() - t)
t = time.perf_counter(); explain_batch(shapes, images, "grad_cam", batch_size=16)
print(json.dumps({{"policy": __import__("os").environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads(),
                  "rows_per_s": shap, "images_per_s": {images} / (time.perf_counter() - t)}}))
"""


def spin_contrast(size: dict) -> list[dict]:
    """The same small work, 2 torch threads, in fresh processes: OpenMP's default (spinning) waiters, then sleeping."""
    results = []
    for policy in ("ACTIVE", "PASSIVE"):  # ACTIVE: libgomp's default behaviour when OMP_WAIT_POLICY is unset
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        code = SPIN_PROBE.format(root=str(ROOT), rows=size["spin_rows"], images=size["spin_images"])
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        results.append({**json.loads(done.stdout.strip().splitlines()[-1]), "load": load()})
    return results


# ---------------------------------------------------------------------------------------- 2. scale


def cli_review(csv: Path, out: Path, workers: int | None) -> dict:
    command = [sys.executable, "-m", "xai_core", "review", "--model", str(ASSETS / "breast_cancer.pt2"), "--data",
               str(csv), "--background", str(ASSETS / "breast_cancer_train.csv"), "--out", str(out), "-q"]
    if workers:
        command += ["--ray", "auto", "--ray-workers", str(workers)]
    before = load()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=7200)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    manifest = json.loads((out / "manifest.json").read_text())
    report = out / "report.html"
    return {"seconds": seconds, "timings": manifest["timings"], "report_bytes": report.stat().st_size,
            "open": open_in_chromium(report), "load_before": before, "load_after": load()}


def open_in_chromium(report: Path) -> dict:
    """Seconds from navigation to the load event, and to every Plotly figure drawn, in headless Chromium (no network)."""
    from playwright.sync_api import sync_playwright

    from xai_core.report import chromium_path

    with sync_playwright() as playwright:
        started = time.perf_counter()
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        launch = time.perf_counter() - started
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            started = time.perf_counter()
            page.goto(report.resolve().as_uri(), wait_until="load", timeout=120_000)
            loaded = time.perf_counter() - started
            page.wait_for_function("() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
                                   ".every(d => d.querySelector('.main-svg'))", timeout=120_000)
            drawn = time.perf_counter() - started
            figures = page.evaluate("document.querySelectorAll('.plotly-graph-div').length")
        finally:
            browser.close()
    return {"launch": launch, "load_event": loaded, "all_figures_drawn": drawn, "figures": figures}


def big_sample(size: dict, work: Path) -> dict:
    """n = size['big'] rows: the whole-data parts in full, Shapley on the first, middle and last shards only."""
    from xai_core.evaluation import evaluate
    from xai_core.review.job import _shard_inputs, compute_shard, data_sha256, make_plan

    source, model = case("breast_cancer")
    background = load_demo_data("breast_cancer", model, split="train")
    settings = ReviewSettings(analyses=("shap",))
    before = load()
    t = time.perf_counter()
    data = scaled_table(model, size["big"])
    made = time.perf_counter() - t
    t = time.perf_counter()
    data_sha256(data)
    plan = make_plan(model, data, settings)
    inputs = _shard_inputs(model, data, settings, background)
    planned = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(model, data, n_bootstrap=settings.n_bootstrap, seed=settings.seed)
    evaluation = time.perf_counter() - t
    picks = sorted({0, len(plan.shards) // 2, len(plan.shards) - 1})
    seconds, rows = 0.0, 0
    for index in picks:
        t = time.perf_counter()
        compute_shard(model, inputs, settings, "shap", index, plan.shards[index], work / "big")
        seconds += time.perf_counter() - t
        rows += plan.shards[index][1] - plan.shards[index][0]
    return {"n": len(data), "n_shards": len(plan.shards), "sampled_shards": picks, "sampled_rows": rows,
            "shap_seconds_per_row": seconds / rows, "evaluation_seconds": evaluation, "plan_and_hash_seconds": planned,
            "table_seconds": made, "load_before": before, "load_after": load()}


# ---------------------------------------------------------------------------------------- writing


def markdown(size, through, loads, spin, scale, big) -> str:
    by = {(t, r): (total, shards, compute, rate, unit) for t, r, total, shards, compute, rate, unit in through}
    lines = ["## Review jobs: throughput, cost per row from 1k to 100k rows, a 10k-row review",
             "", f"- machine: {machine()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
             "- Load averages (1 / 5 / 15 min) are given with each part: above 2, other jobs shared the 2 cores. "
             "Ratios below come from one run of this script, measured minutes apart.",
             f"- Throughput: {size['shap_rows']} breast cancer rows (shards of {size['shap_shard']}; 30 features, the "
             f"sampler with ShapleySettings() defaults, training mean row as baseline) and {size['images']} shapes "
             f"images (shards of {size['image_shard']}, batch 16). Load at start {loads['start']}.",
             "", "| work | runner | total s | per-row phase s | shard compute s (sum over workers) | throughput "
             "(per-row phase) | load after (1/5/15 min) |", "|---|---|---|---|---|---|---|"]
    for title, runner, total, shards, compute, rate, unit in through:
        lines.append(f"| {title} | {runner} | {total:.1f} | {shards:.1f} | {compute:.1f} | {rate:.1f} {unit}/s | "
                     f"{loads[title]} |")
    lines += ["", "Ray against in-process on the same 2 cores (per-row work; positive = Ray slower):", ""]
    for title in ("Shapley values, breast cancer", "Grad-CAM, shapes"):
        if (title, "Ray, 2 workers x 1 thread") not in by:
            continue
        local = by[(title, "in-process, 2 torch threads")][1]
        ray2 = by[(title, "Ray, 2 workers x 1 thread")][1]
        ray1 = by[(title, "Ray, 1 worker x 1 thread")][1]
        one = by[(title, "in-process, 1 torch thread")][1]
        lines.append(f"- {title}: Ray 2 workers {100 * (ray2 / local - 1):+.0f} % against in-process with 2 threads "
                     f"(goal <= +15 %: {'met' if ray2 <= 1.15 * local else 'not met'}); Ray 1 worker "
                     f"{100 * (ray1 / one - 1):+.0f} % against in-process with 1 thread (Ray's own cost).")
        compute2 = by[(title, "Ray, 2 workers x 1 thread")][2]
        lines.append(f"  Reading: {ray2 - compute2 / 2:.1f} s of Ray's {ray2:.1f} s is not compute split over 2 workers "
                     "(worker start, model loading in each worker, scheduling): a fixed cost that weighs on a job this "
                     "short and fades on long ones (the 10,000-row run below).")
    lines += ["", "OpenMP's waiting threads, 2 torch threads, same work in fresh processes (the command line and this "
              "benchmark set `OMP_WAIT_POLICY=PASSIVE`):", ""]
    lines += [f"- {s['policy']}: {s['rows_per_s']:.1f} Shapley rows/s ({size['spin_rows']} rows), "
              f"{s['images_per_s']:.0f} Grad-CAM images/s ({size['spin_images']} images); load after {s['load']}"
              for s in spin]
    lines += ["", "### Scale: the command line on 1k and 10k rows, a 100k-row sample", "",
              "`python -m xai_core review --model assets/breast_cancer.pt2 --data ROWS.csv --background "
              "assets/breast_cancer_train.csv --out DIR [--ray auto --ray-workers 2]` (every analysis: evaluation, "
              "SHAP, surrogate, quantization; report.html written). SHAP phase = wall time of the per-row shards "
              "(with Ray: the cluster's and workers' start included); compute ms/row = shard compute summed over "
              "workers / rows, the per-row cost that should stay flat as the table grows:", "",
              "| rows | runner | total s | SHAP phase s | compute ms/row | evaluation s | surrogate s | quantization s | "
              "report MB | Chromium: load event s | all figures drawn s | load before -> after |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, workers, r in scale:
        t = r["timings"]
        runner = f"Ray, {workers} workers" if workers else "in-process"
        lines.append(f"| {n:,} | {runner} | {r['seconds']:.0f} | {t['shards_wall_seconds']:.0f} | "
                     f"{1000 * t['shap_shard_seconds'] / n:.1f} | {t.get('evaluation', 0):.1f} | "
                     f"{t.get('surrogate', 0):.1f} | {t.get('quantization', 0):.1f} | {r['report_bytes'] / 1e6:.2f} | "
                     f"{r['open']['load_event']:.2f} | {r['open']['all_figures_drawn']:.2f} | "
                     f"{r['load_before']} -> {r['load_after']} |")
    if big is None:
        big = {"n": 0, "shap_seconds_per_row": float("nan"), "table_seconds": float("nan"), "n_shards": 0,
               "plan_and_hash_seconds": float("nan"), "evaluation_seconds": float("nan"), "sampled_shards": [],
               "sampled_rows": 0, "load_before": "-", "load_after": "-"}
    per_row_big = 1000 * big["shap_seconds_per_row"]
    extrapolated = big["shap_seconds_per_row"] * big["n"]
    lines += ["", f"{big['n']:,} rows (not run in full): the table made, hashed and planned in "
              f"{big['table_seconds'] + big['plan_and_hash_seconds']:.1f} s, the evaluation with its bootstrap in "
              f"{big['evaluation_seconds']:.1f} s (both in full); SHAP on shards {big['sampled_shards']} of "
              f"{big['n_shards']} ({big['sampled_rows']} rows): {per_row_big:.1f} ms/row, so about "
              f"{extrapolated / 60:.0f} min for all rows in-process (extrapolated, not measured; surrogate and "
              f"quantization not run at this size). Load {big['load_before']} -> {big['load_after']}.", ""]
    largest = max((n for n, _, _ in scale), default=None)
    for n_rows in sorted({n for n, _, _ in scale}):
        local = next((r for n, w, r in scale if n == n_rows and not w), None)
        on_ray = next((r for n, w, r in scale if n == n_rows and w == 2), None)
        if local and on_ray:
            a, b = local["timings"]["shards_wall_seconds"], on_ray["timings"]["shards_wall_seconds"]
            lines += [f"Ray, 2 workers against in-process at {n_rows:,} rows (command line, SHAP phase, runs minutes "
                      f"apart): {a:.0f} s in-process, {b:.0f} s on Ray: {100 * (b / a - 1):+.0f} % (goal <= +15 %: "
                      f"{'met' if b <= 1.15 * a else 'not met'}); whole command {local['seconds']:.0f} s vs "
                      f"{on_ray['seconds']:.0f} s.", ""]
    for w, ten in [(w, r) for n, w, r in scale if n == largest]:
        lines.append(f"{largest:,}-row goals ({f'Ray, {w} workers' if w else 'in-process'}): review "
                     f"{ten['seconds'] / 60:.1f} min (goal <= 10: "
                     f"{'met' if ten['seconds'] <= 600 else 'not met'}), report {ten['report_bytes'] / 1e6:.1f} MB "
                     f"(goal <= 10: {'met' if ten['report_bytes'] <= 10e6 else 'not met'}), Chromium "
                     f"{ten['open']['all_figures_drawn']:.1f} s to draw every figure (goal <= 5: "
                     f"{'met' if ten['open']['all_figures_drawn'] <= 5 else 'not met'}; browser launch "
                     f"{ten['open']['launch']:.1f} s not counted).")
        lines.append("")
    lines += estimate_32_cores(by, size, scale)
    return "\n".join(lines)


def estimate_32_cores(by: dict, size: dict, scale: list) -> list[str]:
    """A written estimate for a 32-core cluster: fixed start-up plus rows x per-row cost in a worker / 32."""
    ray_runs = [(n, r) for n, w, r in scale if w == 2]
    if not ray_runs:
        return []
    n, r = max(ray_runs, key=lambda item: item[0])
    t = r["timings"]
    per_row = t["shap_shard_seconds"] / n  # s of one worker's compute per row
    startup = max(t["shards_wall_seconds"] - t["shap_shard_seconds"] / 2, 0.0)  # the phase beyond 2-way compute
    rate = 32 / per_row

    def minutes(rows: int) -> str:
        return f"{(startup + rows * per_row / 32) / 60:.1f} min"

    lines = ["### Estimate for a 32-core cluster (not measured)", "",
             f"From the {n:,}-row command-line run on Ray (2 workers): a worker spent {1000 * per_row:.0f} ms per row "
             f"(one torch thread, sharing 2 busy cores), and the SHAP phase took {startup:.0f} s more than that compute "
             "split over 2 workers (cluster start, worker start and model loading, scheduling). On 32 workers, one per "
             f"core, with the same per-row cost and start-up: about {rate:.0f} rows/s once running, so SHAP on 10k rows "
             f"in about {minutes(10_000)} and on 100k in about {minutes(100_000)}, plus the whole-data parts on the "
             "driver (evaluation, surrogate, quantization: seconds here). Assumes cores not shared with other work (the "
             "per-row cost measured here is inflated whenever the load was above 2), the review folder on storage every worker "
             "shares, and enough shards to keep 32 workers busy (10k rows at the default 256 per shard = 40 shards: use "
             "--shard-size 64 or less)."]
    gc = "Grad-CAM, shapes"
    if (gc, "Ray, 2 workers x 1 thread") in by:
        total, phase, compute, _, _ = by[(gc, "Ray, 2 workers x 1 thread")]
        per_image = compute / size["images"]
        lines += ["", f"Grad-CAM: a worker spent {1000 * per_image:.1f} ms per image; 32 workers: about "
                  f"{32 / per_image:.0f} images/s once running (the {size['images']}-image run was "
                  f"{100 * (compute / 2) / phase:.0f} % compute, the rest start-up)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print, do not write the results file")
    parser.add_argument("--parts", default="throughput,spin,scale,big")
    parser.add_argument("--raw", type=Path, help="also keep the raw measurements (JSON) in this file")
    parser.add_argument("--from-raw", type=Path, help="write the results from a --raw file, measuring nothing")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        text = markdown(raw["size"], [tuple(r) for r in raw["throughput"]], raw["loads"], raw["spin"],
                        [tuple(r) for r in raw["scale"]], raw["big"])
        print(text) if args.quick else write_section("review", text)
        return
    parts = set(args.parts.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-review-"))
    raw: dict = {"size": size, "throughput": [], "loads": {"start": load()}, "spin": [], "scale": [], "big": None}

    def keep() -> None:  # after every part, so an interrupted run keeps what it measured (--from-raw)
        if args.raw:
            args.raw.write_text(json.dumps(raw, default=str))

    try:
        if "throughput" in parts:
            raw["throughput"], raw["loads"] = throughput(size, work)
            keep()
        if "spin" in parts:
            raw["spin"] = spin_contrast(size)
            keep()
        if "big" in parts:
            raw["big"] = big_sample(size, work)
            keep()
        if "scale" in parts:
            source, model = case("breast_cancer")
            for n, workers in size["scale"]:
                csv = work / f"rows-{n}.csv"
                table = scaled_table(model, n)
                table.X.assign(target=table.y.to_numpy()).to_csv(csv, index=False)
                raw["scale"].append((n, workers, cli_review(csv, work / f"review-{n}-{workers}", workers)))
                print(n, workers, json.dumps(raw["scale"][-1][2]), flush=True)
                keep()
    finally:
        print(json.dumps(raw, default=str), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(size, raw["throughput"], raw["loads"], raw["spin"], raw["scale"], raw["big"])
    if args.quick:
        print(text)
    else:
        write_section("review", text)

if __name__ == "__main__":
    main()

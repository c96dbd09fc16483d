"""The torchvision zoo at 224×224: per architecture and format (.pt2, state_dict), the time to load, one forward pass,
Grad-CAM on the default layer and Integrated Gradients (as ratios to the forward pass), int8 build times and the int8
speed-up over fp32 (same run, interleaved), with int8's top-1 agreement with fp32 on random inputs.

Random weights (heads re-initialised), batch 1 unless stated. Each model's timings are taken within one run, so the
ratios hold on a loaded machine even when the milliseconds do not. Run: `python benchmarks/bench_zoo.py [names…]`.
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from benchmarks.common import cpu_flags, machine, write_section  # noqa: E402
from tests.test_zoo import CLASS_NAMES, ZOO, random_weights  # noqa: E402
from xai_core.attribution.image import default_layer, explain_batch  # noqa: E402
from xai_core.loading import load_model  # noqa: E402
from xai_core.quantization import (  # noqa: E402
    BuildContext,
    VariantSpec,
    build_variant,
    measure_latency,
)

SIZE = 224
IG_STEPS = 16


def vector_flags() -> str:
    """The CPU's vector extensions that decide which int8/fp32 kernels run, and the capability torch picked."""
    flags = set(cpu_flags())
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    present = [f for f in wanted if f in flags]
    return f"{' '.join(present) or 'none of ' + '/'.join(wanted)}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def model_bytes(name: str, fmt: str) -> tuple[bytes, dict]:
    net = random_weights(name, SIZE)  # torchvision's defaults: 224×224 for every architecture here
    buffer = io.BytesIO()
    if fmt == "pt2":
        program = torch.export.export(net, (torch.randn(2, 3, SIZE, SIZE),),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
        torch.export.save(program, buffer)
        return buffer.getvalue(), {"class_names": CLASS_NAMES}
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue(), {"class_names": CLASS_NAMES, "input_shape": [3, SIZE, SIZE]}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench(name: str, fmt: str) -> dict:
    row: dict = {"model": name, "format": fmt}
    data, sidecar = model_bytes(name, fmt)
    start = time.perf_counter()
    model = load_model(data, f"{name}.{'pt2' if fmt == 'pt2' else 'pt'}", sidecar=sidecar)
    row["load_s"] = time.perf_counter() - start
    row["layer"] = default_layer(model)
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    explain_batch(model, x, "grad_cam")  # warm-up: the private copy is made once
    forward = lambda: model.forward_batched(x)  # noqa: E731
    cam = lambda: explain_batch(model, x, "grad_cam")  # noqa: E731
    ig = lambda: explain_batch(model, x, "integrated_gradients", n_steps=IG_STEPS)  # noqa: E731
    t_forward, t_cam, t_ig = [], [], []
    for _ in range(3):  # interleaved, so load on the shared machine hits all three alike
        t_forward.append(median_ms(forward, 3))
        t_cam.append(median_ms(cam, 1))
        t_ig.append(median_ms(ig, 1))
    row["forward_ms"], row["cam_ms"], row["ig_ms"] = (statistics.median(t) for t in (t_forward, t_cam, t_ig))

    calibration = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    context = BuildContext(model, calibration)
    start = time.perf_counter()
    try:
        flat = context.flat_fp32()
        row["lift_s"] = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what fails and goes on
        row["int8_error"] = f"lifting: {type(exc).__name__}: {str(exc)[:120]}"
        return row
    modules = {"fp32": flat}
    probe = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    reference = model.predict_proba(probe).argmax(1)
    for kind in ("int8-dynamic", "int8-static"):
        start = time.perf_counter()
        try:
            variant = build_variant(model, VariantSpec(kind), calibration, context)
        except Exception as exc:  # noqa: BLE001
            row[f"{kind}_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
            continue
        row[f"{kind}_build_s"] = time.perf_counter() - start
        row[f"{kind}_agreement"] = float((variant.model.predict_proba(probe).argmax(1) == reference).mean())
        modules[kind] = variant.model.module
    latency = measure_latency(modules, calibration, batch_sizes=(1, 8), budget_s=0.5)
    for kind in modules:
        if kind != "fp32":
            row[f"{kind}_speedup"] = {b: latency["fp32"][b] / latency[kind][b] for b in (1, 8)}
    return row


def fmt_s(row, key):
    return f"{row[key]:.1f}" if key in row else "—"


def main(names: list[str] | None = None) -> None:
    torch.set_num_threads(2)
    names = names or list(ZOO)
    rows = []
    for name in names:
        for fmt in ("pt2", "state_dict"):
            print(f"{name} {fmt} …", flush=True)
            rows.append(bench(name, fmt))
            print(rows[-1], flush=True)
            gc.collect()
            write(rows, len(names) * 2)  # after every model, so an interrupted run keeps what it measured


def write(rows: list[dict], planned: int) -> None:
    lines = [
        "## The torchvision zoo at 224×224 (`benchmarks/bench_zoo.py`)",
        "",
        f"Machine: {machine()}",
        "",
        f"CPU flags: {vector_flags()}",
        "",
        f"Random weights, batch 1, one 224×224 image; Grad-CAM on the default layer, Integrated Gradients with {IG_STEPS} "
        "steps (internal batch 64), both as multiples of one forward pass measured interleaved in the same run. int8: "
        "build time (the lifted graph is shared, its time is the lift column), speed-up = fp32's median time / int8's at "
        "batch 1 and 8, both as flat lifted graphs timed interleaved; agreement = top-1 agreement with fp32 on 4 random "
        "inputs.",
        "",
        "| model | format | load s | default layer | forward ms | Grad-CAM × forward | IG × forward | lift s | "
        "int8 dynamic build s | speed-up b1 / b8 | agreement | int8 static build s | speed-up b1 / b8 | agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["model"], r["format"], f"{r['load_s']:.1f}", f"`{r['layer']}`", f"{r['forward_ms']:.0f}",
                 f"{r['cam_ms'] / r['forward_ms']:.2f}×", f"{r['ig_ms'] / r['forward_ms']:.1f}×", fmt_s(r, "lift_s")]
        for kind in ("int8-dynamic", "int8-static"):
            if f"{kind}_build_s" in r:
                speed = r[f"{kind}_speedup"]
                cells += [f"{r[f'{kind}_build_s']:.1f}", f"{speed[1]:.2f}× / {speed[8]:.2f}×", f"{r[f'{kind}_agreement']:.2f}"]
            else:
                error = r.get(f"{kind}_error") or r.get("int8_error", "")
                cells += [f"fails: {error[:90]}", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Reading: Grad-CAM costs about one forward pass plus a backward pass to the hooked layer; IG runs "
        f"{IG_STEPS} forward and backward passes. int8 speed-ups below 1× mean the int8 kernels lose to fp32's on this "
        "CPU at that batch size (no VNNI/AMX, or quantize/dequantize overhead around few large layers).",
    ]
    if len(rows) < planned:
        lines += ["", f"(Partial run: {len(rows)} of {planned} architecture × format cases measured.)"]
    write_section("zoo", "\n".join(lines))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"zoo models to measure (default: all of {', '.join(ZOO)})")
    main(parser.parse_args().names)

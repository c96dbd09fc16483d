"""Start-up in a real browser, side by side with ExplainerDashboard's, in one run.

Measured in Debian's headless Chromium (Playwright), "first chart" meaning the first Plotly chart drawn (its SVG in
the page):
- cold start: server process start → first chart of the landing page (and → the landing page fully rendered);
- reload: the browser's reload button (the same server, a new session, the browser's cache kept) → first chart;
- page switch with results cached: Model & data → Image explanations → Model & data, each → its first chart;
- ExplainerDashboard's cold start on a breast-cancer MLP (benchmarks/explainerdashboard_anchor.py), process start →
  first chart, run from its own virtual environment (created on first use in ~/.cache/xai-bench, never part of this
  project's requirements);
- optionally the same for another commit of this project (`--baseline REV`, e.g. the commit before a change).

Goals (issue 19): cold start ≤ 5 s, reload ≤ 1 s, cached page switch ≤ 0.5 s.
Run: `python benchmarks/bench_startup.py [--rounds 3] [--anchor-rounds 1] [--baseline REV] [--no-anchor]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_flags, machine, write_section  # noqa: E402
from tests.server import CHROMIUM_ARGS, chromium_path, free_port, running_dashboard, running_server  # noqa: E402

ANCHOR_VENV = Path.home() / ".cache" / "xai-bench" / "explainerdashboard-venv"
ANCHOR_SCRIPT = ROOT / "benchmarks" / "explainerdashboard_anchor.py"
FIRST_CHART = "() => !!document.querySelector('.js-plotly-plot .main-svg')"
NEW_CHART = "() => !!document.querySelector('.js-plotly-plot:not([data-bench-old]) .main-svg')"
MARK_OLD = "() => document.querySelectorAll('.js-plotly-plot').forEach(e => e.setAttribute('data-bench-old', '1'))"
IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') "
        "&& document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                  "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def wait_until_idle(pid: int, busy_below: float = 0.1, quiet_for: float = 1.0, timeout: float = 300.0) -> float:
    """Wait until process `pid` has used less than `busy_below` of a core for `quiet_for` seconds (the server's warm-up
    after its first page finished); returns the seconds waited."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        before = cpu()
        time.sleep(quiet_for)
        if cpu() - before < busy_below * quiet_for:
            break
    return time.perf_counter() - start


def first_chart(page, timeout: float = 180_000, fresh: bool = False) -> None:
    page.wait_for_function(NEW_CHART if fresh else FIRST_CHART, timeout=timeout, polling="raf")


def measure_project(browser, root: Path, rounds: int, switches: bool = True) -> dict[str, list[float]]:
    """Cold start, full render, reloads and cached page switches of the dashboard in the checkout at `root`."""
    out: dict[str, list[float]] = {k: [] for k in ("healthy", "cold", "full", "warm_up", "reload", "reload_full",
                                                    "switch", "reload_kb", "switch_kb")}
    received: list[int] = []

    def count_bytes(page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(len(payload or b""))))
    for _ in range(rounds):
        start = time.perf_counter()
        with running_dashboard(root=root, timeout=120) as (url, healthy_after, process):
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(180_000)
            page.goto(url, wait_until="commit")
            first_chart(page)
            out["cold"].append(time.perf_counter() - start)
            out["healthy"].append(healthy_after)
            page.wait_for_function(IDLE, timeout=180_000)
            out["full"].append(time.perf_counter() - start)
            context.close()
            # the server finishes what it started after the first page (the warm-up) before reloads are timed
            out["warm_up"].append(out["full"][-1] + wait_until_idle(process.pid))
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(180_000)
            count_bytes(page)
            page.goto(url)
            page.wait_for_function(IDLE)
            for _ in range(3):  # the browser's reload button: a new session on the same server, browser cache kept
                page.evaluate(MARK_OLD)
                received.clear()
                t = time.perf_counter()
                page.reload(wait_until="commit")
                first_chart(page, fresh=True)
                out["reload"].append(time.perf_counter() - t)
                page.wait_for_function(IDLE, timeout=180_000)
                out["reload_full"].append(time.perf_counter() - t)
                out["reload_kb"].append(sum(received) / 1000)
            context.close()
            if switches:
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(300_000)
                count_bytes(page)
                page.goto(url)
                page.wait_for_function(IDLE)
                for i in range(3):  # the first visit to Image explanations computes; later ones are cached
                    for link in ("Image explanations", "Model & data"):
                        page.evaluate(MARK_OLD)
                        received.clear()
                        t = time.perf_counter()
                        page.get_by_role("link", name=link).click()
                        first_chart(page, fresh=True, timeout=300_000)
                        cached = i > 0 or link == "Model & data"
                        if cached:
                            out["switch"].append(time.perf_counter() - t)
                        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
                        if cached:
                            out["switch_kb"].append(sum(received) / 1000)
                context.close()
    return out


def anchor_python() -> Path:
    python = ANCHOR_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "explainerdashboard"], check=True)
    return python


def measure_anchor(browser, rounds: int) -> list[float]:
    python = anchor_python()
    cold = []
    for _ in range(rounds):
        port = free_port()
        start = time.perf_counter()
        with running_server([str(python), str(ANCHOR_SCRIPT), str(port)], f"http://127.0.0.1:{port}", "/",
                            timeout=600) as (url, _healthy, _process):
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.goto(url, wait_until="commit", timeout=180_000)
            first_chart(page, timeout=600_000)
            cold.append(time.perf_counter() - start)
            context.close()
    return cold


@contextlib.contextmanager
def checkout(rev: str):
    """The tree of commit `rev` in a temporary folder (git archive: the working tree is not touched)."""
    with tempfile.TemporaryDirectory(prefix="xai-baseline-") as folder:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


def spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--anchor-rounds", type=int, default=1)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--baseline", help="also measure this commit of the project (cold start, reloads, page switches)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    flags = cpu_flags()
    print("CPU flags:", " ".join(flags), flush=True)
    load_before = os.getloadavg()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        ours = measure_project(browser, ROOT, args.rounds)
        print("ours:", ours, flush=True)
        baseline = None
        if args.baseline:
            with checkout(args.baseline) as folder:
                baseline = measure_project(browser, folder, args.rounds)
            print("baseline:", baseline, flush=True)
        anchor = [] if args.no_anchor else measure_anchor(browser, args.anchor_rounds)
        print("anchor:", anchor, flush=True)
        browser.close()
    load_after = os.getloadavg()
    med = statistics.median
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rows = [
        ("server process start → health check OK", ours["healthy"], baseline and baseline["healthy"], ""),
        ("**cold start**: process start → first chart drawn", ours["cold"], baseline and baseline["cold"], "≤ 5 s"),
        ("cold start → landing page fully drawn (all charts, idle)", ours["full"], baseline and baseline["full"], ""),
        ("cold start → server idle again (background warm-up done)", ours["warm_up"], baseline and baseline["warm_up"], ""),
        ("**reload** (same server, new session) → first chart", ours["reload"], baseline and baseline["reload"], "≤ 1 s"),
        ("reload → landing page fully drawn", ours["reload_full"], baseline and baseline["reload_full"], ""),
        ("reload: bytes received over the websocket (kB)", ours["reload_kb"], baseline and baseline["reload_kb"], ""),
        ("**page switch**, results cached → first chart", ours["switch"], baseline and baseline["switch"], "≤ 0.5 s"),
        ("page switch: bytes received (kB)", ours["switch_kb"], baseline and baseline["switch_kb"], ""),
    ]
    fmt = {True: dict(unit=" kB", digits=0), False: {}}
    table = "\n".join(f"| {name} | {spread(v, **fmt['kB' in name])} | {len(v)} | "
                      + (f"{spread(b, **fmt['kB' in name])} | " if baseline else "") + f"{goal} |"
                      for name, v, b, goal in rows)
    header = "| measure | median (min–max) | runs | " + (f"`{args.baseline}` | " if baseline else "") + "goal |"
    line = "|---|---|---|" + ("---|" if baseline else "") + "---|"
    anchor_part = ""
    if anchor:
        anchor_part = (f"\nExplainerDashboard 0.5.8 (its default dashboard, kernel SHAP) on a breast-cancer MLP "
                       f"(`benchmarks/explainerdashboard_anchor.py`), process start → first chart drawn: "
                       f"{spread(anchor)} over {len(anchor)} run(s). **Ratio** to this dashboard's cold start (medians): "
                       f"{med(anchor) / med(ours['cold']):.1f}× faster here"
                       + (f" (the baseline `{args.baseline}`: {med(anchor) / med(baseline['cold']):.1f}×)"
                          if baseline else "") + ".\n")
    ratios = ""
    if baseline:
        ratios = (f"\nAgainst `{args.baseline}`: cold start {med(baseline['cold']) / med(ours['cold']):.1f}× faster, "
                  f"reload {med(baseline['reload']) / med(ours['reload']):.1f}× faster, cached page switch "
                  f"{med(baseline['switch']) / med(ours['switch']):.1f}× faster.\n")
    markdown = f"""## Dashboard start-up, reloads and page switches (`benchmarks/bench_startup.py`)

Machine: {machine()}; commit {rev}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores
shared with other jobs: numbers vary run to run).
CPU flags (of interest): {' '.join(f for f in RELEVANT_FLAGS if f in flags) or 'none'}.

Headless Chromium through Playwright; "first chart" is the first Plotly chart drawn. The landing page (the shapes demo)
is drawn from its shipped snapshot (`assets/landing/`) while torch and the demo model load on a background thread.

{header}
{line}
{table}
{ratios}{anchor_part}"""
    write_section("startup", markdown)


if __name__ == "__main__":
    main()

"""Demo cold start (server start → first page rendered) and page rerun time after caching, in a real browser.

Goals: cold start ≤ 5 s, rerun after caching ≤ 1 s. Run: `python benchmarks/bench_startup.py`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_section  # noqa: E402
from tests.server import CHROMIUM_ARGS, chromium_path, running_dashboard  # noqa: E402

IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && document.querySelectorAll('.js-plotly-plot').length >= 3"


def rendered(page) -> None:
    page.get_by_text("Confusion matrix").first.wait_for(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)


def main(repeats: int = 3) -> None:
    from playwright.sync_api import sync_playwright

    cold, server_ready, reruns, reloads = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            start = time.perf_counter()
            with running_dashboard() as (url, healthy_after, _process):
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                page.goto(url)
                rendered(page)
                cold.append(time.perf_counter() - start)
                server_ready.append(healthy_after)
                for _ in range(3):
                    t = time.perf_counter()
                    page.reload()
                    rendered(page)
                    reloads.append(time.perf_counter() - t)
                    # A rerun in the same session: toggle the normalisation-free control (the demo selector) away and back.
                    select = page.get_by_test_id("stSelectbox").first
                    select.click()
                    page.get_by_role("option", name="Handwritten digits (image, 32×32, CNN)").click()
                    rendered(page)
                    t = time.perf_counter()
                    select.click()
                    page.get_by_role("option", name="Shapes (image, 64×64 scenes, CNN)").click()
                    page.wait_for_timeout(50)
                    rendered(page)
                    reruns.append(time.perf_counter() - t)
                page.close()
        browser.close()
    med = statistics.median
    markdown = f"""## Dashboard start-up and reruns (`benchmarks/bench_startup.py`)

Machine: {machine()}

| measure | median | runs | goal |
|---|---|---|---|
| server process start → health check OK | {med(server_ready):.2f} s | {len(server_ready)} | |
| cold start: server start → demo page fully rendered in Chromium | {med(cold):.2f} s | {len(cold)} | ≤ 5 s |
| page reload (new session, caches warm) → rendered | {med(reloads):.2f} s | {len(reloads)} | ≤ 1 s |
| rerun in a session: switch back to a cached demo → rendered | {med(reruns):.2f} s | {len(reruns)} | ≤ 1 s |
"""
    write_section("startup", markdown)


if __name__ == "__main__":
    main()

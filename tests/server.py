"""Start the real dashboard on 127.0.0.1 for browser tests and benchmarks, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@contextlib.contextmanager
def running_server(command: list[str], url: str, health_path: str, cwd: Path = ROOT, timeout: float = 60.0,
                   env: dict | None = None):
    """Yield (URL, seconds from process start to a 200 on `health_path`, process) of a server started by `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})})
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("The server exited:\n" + process.stdout.read().decode(errors="replace"))
            try:
                with urllib.request.urlopen(f"{url}{health_path}", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > timeout:
                raise TimeoutError("The server did not become healthy in time")
            time.sleep(0.05)
        yield url, time.perf_counter() - start, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_dashboard(timeout: float = 60.0, env: dict | None = None, root: Path = ROOT):
    """Yield (base URL, seconds from process start to healthy, process) of a fresh dashboard server (of the checkout
    at `root`: the benchmark compares against another commit's)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(Path(root) / "dashboard.py"), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    with running_server(command, f"http://127.0.0.1:{port}", "/_stcore/health", cwd=Path(root), timeout=timeout,
                        env=env) as running:
        yield running

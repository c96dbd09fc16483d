import functools
import os
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _share_cores_between_workers() -> None:
    """pytest.ini runs the suite in pytest-xdist workers (-n 2): each worker and the processes it starts (dashboard
    servers, the CLI) get an equal share of the cores as torch/OpenMP threads, instead of every worker using them all."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if not os.environ.get("PYTEST_XDIST_WORKER") or workers < 2:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


_share_cores_between_workers()


def pytest_addoption(parser, pluginmanager):
    """pytest.ini asks for `-n 2 --dist loadgroup`; without pytest-xdist (`-p no:xdist`, or not installed) accept the
    two options and run every test in this one process."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist", "pytest-xdist is not loaded: its options are accepted and ignored")
    # _addoption: pytest reserves lowercase short options; pytest-xdist registers its own -n the same way
    group._addoption("-n", "--numprocesses", dest="numprocesses", default=0, help="ignored: pytest-xdist is not loaded")
    group.addoption("--dist", dest="dist", default="no", help="ignored: pytest-xdist is not loaded")


def _scan_installed_components_once() -> None:
    """Every AppTest run makes Streamlit scan the metadata of every installed package for v2 components (~1.3 s here,
    700 distributions parsed); the installed packages do not change during a test session, so scan once."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # an older Streamlit without v2 components does not scan
        return
    if not hasattr(manifest_scanner.scan_component_manifests, "cache_info"):
        manifest_scanner.scan_component_manifests = functools.lru_cache(maxsize=None)(
            manifest_scanner.scan_component_manifests)


_scan_installed_components_once()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

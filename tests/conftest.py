import functools
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)


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

"""xai_core is a library: importable in a notebook with no Streamlit loaded."""

import pkgutil
import subprocess
import sys

import xai_core


def test_xai_core_never_imports_streamlit():
    modules = [m.name for m in pkgutil.walk_packages(xai_core.__path__, "xai_core.") if not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print('streamlit' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("False"), "an xai_core module imports streamlit"
    assert len(modules) >= 8

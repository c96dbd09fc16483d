"""What the user chose (demo or uploads) lives in `st.session_state`; models and data are cached by content hash.

Every page calls `current_selection()` to get the model and data the Model & data page set up.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass

import streamlit as st

from xai_core.data_loading import load_data
from xai_core.datasets import ImageSet, TableSet
from xai_core.demo import DEMOS, ASSETS, load_demo_data, load_demo_model
from xai_core.loading import load_model
from xai_core.model import LoadedModel

DEFAULT_DEMO = "shapes"
# Only the operator can allow unpickling whole models, by starting the server with XAI_ALLOW_PICKLE=1.
ALLOW_PICKLE = os.environ.get("XAI_ALLOW_PICKLE") == "1"


@dataclass
class Selection:
    """The model and data every page works on, plus where they came from."""

    model: LoadedModel
    data: ImageSet | TableSet | None
    source: str  # "demo" or "upload"
    demo_key: str | None
    data_key: str  # content hash of the data, for result caches
    background: TableSet | None = None  # tabular demos: training rows (SHAP baselines, surrogates)


_freeze_lock = threading.Lock()
_modules_when_frozen = 0


def freeze_long_lived_objects() -> None:
    """Put every object alive in gc's permanent generation, whenever modules were imported since the last time.

    Streamlit runs a full `gc.collect(2)` after every script run. Loading a torch.export model and explaining one
    import torch.export, sympy, captum… and the heap then holds ~600,000 tracked objects, nearly all as long-lived as
    the process (modules, classes, functions); each collection walked them all, ~0.2 s with the GIL held, after every
    run of every session (a third of the server's CPU with 20 concurrent sessions, benchmarks/bench_load.py). Frozen,
    they are skipped, and the per-run collection still frees the cycles each run leaves (Plotly figures). A freeze
    happens only when the set of modules grew (the first runs of each page), so it happens a bounded number of times;
    frozen objects are still freed by reference counting, only reference cycles among the objects alive at one of
    those moments are never collected.
    """
    global _modules_when_frozen
    if len(sys.modules) <= _modules_when_frozen:
        return
    with _freeze_lock:
        if len(sys.modules) <= _modules_when_frozen:
            return
        _modules_when_frozen = len(sys.modules)
        gc.collect()
        gc.freeze()


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\x00")
    return h.hexdigest()


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def cached_demo_model(key: str) -> LoadedModel:
    return load_demo_model(key)


@st.cache_data(max_entries=16, show_spinner="Loading the demo data…")
def cached_demo_data(key: str, model_sha: str, split: str = "test"):
    return load_demo_data(key, cached_demo_model(key), split=split)


@st.cache_resource(max_entries=8, show_spinner="Loading the uploaded model…")
def cached_uploaded_model(key: str, _data: bytes, filename: str, _sidecar: bytes | None, overrides_json: str) -> LoadedModel:
    return load_model(_data, filename, sidecar=_sidecar, overrides=json.loads(overrides_json), allow_pickle=ALLOW_PICKLE)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Reading the uploaded data…")
def cached_uploaded_data(key: str, model_sha: str, _files: list[tuple[str, bytes]], target_column: str | None, _model: LoadedModel):
    return load_data(_files, _model.info, target_column)


def uploaded_model() -> LoadedModel | None:
    """The model from this session's uploads (raises XaiError if it does not load)."""
    upload = st.session_state.get("model_upload")
    if not upload:
        return None
    overrides_json = json.dumps(upload.get("overrides") or {}, sort_keys=True)
    key = _digest(upload["bytes"], upload.get("sidecar") or b"", overrides_json)
    return cached_uploaded_model(key, upload["bytes"], upload["name"], upload.get("sidecar"), overrides_json)


def uploaded_data(model: LoadedModel):
    files = st.session_state.get("data_upload")
    if not files:
        return None, ""
    key = _digest(*[name.encode() + b"\x00" + data for name, data in files])
    target = st.session_state.get("target_column")
    return cached_uploaded_data(key, model.sha256, files, target, model), key


def current_selection() -> Selection:
    """The model and data chosen on the Model & data page (the default demo on a first visit)."""
    freeze_long_lived_objects()
    source = st.session_state.setdefault("source", "demo")
    if source == "upload" and st.session_state.get("model_upload"):
        model = uploaded_model()
        data, data_key = uploaded_data(model)
        return Selection(model, data, "upload", None, data_key)
    key = st.session_state.setdefault("demo_key", DEFAULT_DEMO)
    if key not in DEMOS:
        key = st.session_state["demo_key"] = DEFAULT_DEMO
    model = cached_demo_model(key)
    data = cached_demo_data(key, model.sha256)
    background = cached_demo_data(key, model.sha256, "train") if DEMOS[key].train_file else None
    return Selection(model, data, "demo", key, f"demo:{key}", background)


def demo_available() -> bool:
    return all((ASSETS / d.model_file).exists() for d in DEMOS.values())

"""What the user chose (demo or uploads) lives in `st.session_state`; models and data are cached by content hash.

Every page calls `current_selection()` to get the model and data the Model & data page set up.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import copy
import gc
import hashlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

# xai_core imports torch: it is imported inside the functions that need it, so a cold server can draw the landing page
# (ui.model_page's snapshot) before torch has loaded, and load it on a background thread meanwhile (`warm_up`).
if TYPE_CHECKING:
    from xai_core.datasets import ImageSet, TableSet
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


# ---------------------------------------------------------------------------------------- warming up off the request

# Work started on a background thread before any session asked for it (the default demo's model and data while the
# landing page is drawn from its snapshot). The cached functions below take the result from here instead of computing
# it again, so nothing is computed twice; a failure surfaces in the session that asks, as if computed there.
_started: dict[tuple, concurrent.futures.Future] = {}
_started_lock = threading.Lock()
_warm_up_started = False
# The modules the pages import, so the first visit to a page after the landing does not pay for torch, captum, sklearn…
WARM_MODULES = ("xai_core.demo", "xai_core.evaluation", "xai_core.preprocessing", "xai_core.viz.model",
                "xai_core.data_loading", "xai_core.loading", "xai_core.attribution.image", "xai_core.attribution.tabular",
                "xai_core.attribution.shapley", "xai_core.metrics", "xai_core.surrogate", "xai_core.viz.image",
                "xai_core.viz.importance", "xai_core.viz.tree", "xai_core.quantization", "xai_core.viz.quantization",
                "captum.attr")  # xai_core imports captum inside the methods: ~0.9 s the first explanation would wait


# Script runs in flight in this process (dashboard.py counts them). The warm-up imports between runs: an import holds
# the GIL for most of its time, so a reload arriving during the warm-up ran its script at half speed or worse.
_runs_in_flight = 0
_runs_changed = threading.Condition()
MAX_YIELD_PER_MODULE = 1.0  # seconds the warm-up waits for runs in flight before each import (a landing run: ~0.1 s)


@contextlib.contextmanager
def serving():
    """Count a script run as in flight while it lasts (the warm-up waits for it between imports)."""
    global _runs_in_flight
    with _runs_changed:
        _runs_in_flight += 1
    try:
        yield
    finally:
        with _runs_changed:
            _runs_in_flight -= 1
            _runs_changed.notify_all()


def _yield_to_runs() -> None:
    with _runs_changed:
        _runs_changed.wait_for(lambda: _runs_in_flight == 0, timeout=MAX_YIELD_PER_MODULE)


def _take_started(what: tuple):
    with _started_lock:
        return _started.pop(what, None)


def warm_up(key: str | None = None, delay: float = 0.5) -> None:
    """Once per process: import the pages' modules and load demo `key` (its model, test and training data) on a
    background thread, `delay` seconds from now (after the first page has been sent to the browser)."""
    global _warm_up_started
    with _started_lock:
        if _warm_up_started:
            return
        _warm_up_started = True
        key = key or DEFAULT_DEMO
        futures = {what: concurrent.futures.Future() for what in (("model", key), ("data", key, "test"),
                                                                   ("data", key, "train"))}
        _started.update(futures)

    def run() -> None:
        time.sleep(delay)
        import importlib

        from xai_core.demo import DEMOS, load_demo_data, load_demo_model

        for what, load in ((("model", key), lambda: load_demo_model(key)),
                           (("data", key, "test"), lambda: load_demo_data(key, futures[("model", key)].result())),
                           (("data", key, "train"), lambda: load_demo_data(key, futures[("model", key)].result(),
                                                                           split="train")
                            if DEMOS[key].train_file else None)):
            try:
                futures[what].set_result(load())
            except BaseException as exc:  # noqa: BLE001 - handed to the session that asks for it
                futures[what].set_exception(exc)
        for name in WARM_MODULES:
            _yield_to_runs()
            try:
                importlib.import_module(name)
            except Exception:  # a page importing it will show the error; warming up is only an optimisation
                logging.getLogger(__name__).exception("warming up: importing %s failed", name)
        freeze_long_lived_objects()

    threading.Thread(target=run, name="xai-warm-up", daemon=True).start()


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def cached_demo_model(key: str) -> LoadedModel:
    started = _take_started(("model", key))
    if started is not None:
        return started.result()
    from xai_core.demo import load_demo_model

    return load_demo_model(key)


@st.cache_data(max_entries=16, show_spinner="Loading the demo data…")
def cached_demo_data(key: str, model_sha: str, split: str = "test"):
    model = cached_demo_model(key)
    started = _take_started(("data", key, split))
    if started is not None and started.result() is not None:
        return started.result()
    from xai_core.demo import load_demo_data

    return load_demo_data(key, model, split=split)


@st.cache_resource(max_entries=8, show_spinner="Loading the uploaded model…")
def cached_uploaded_model(key: str, _data: bytes, filename: str, _sidecar: bytes | None, overrides_json: str) -> LoadedModel:
    from xai_core.loading import load_model

    return load_model(_data, filename, sidecar=_sidecar, overrides=json.loads(overrides_json), allow_pickle=ALLOW_PICKLE)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Reading the uploaded data…")
def cached_uploaded_data(key: str, model_sha: str, _files: list[tuple[str, bytes]], settings: "DataSettings",
                         _model: LoadedModel):
    from xai_core.data_loading import load_data

    return load_data(_files, _model.info, settings.target_column, ignore_columns=settings.ignore_columns,
                     label_pattern=settings.label_pattern)


@dataclass(frozen=True)
class DataSettings:
    """Every choice on the Model & data page that changes how the uploaded data is read (and so every result)."""

    target_column: str | None = None  # None: find it; "": no labels
    ignore_columns: tuple[str, ...] = ()
    label_pattern: str | None = None  # images: regex on the file name giving the class

    def digest_part(self) -> str:
        return json.dumps([self.target_column, list(self.ignore_columns), self.label_pattern])


def data_settings() -> DataSettings:
    return DataSettings(st.session_state.get("target_column"), tuple(st.session_state.get("ignore_columns") or ()),
                        st.session_state.get("label_pattern") or None)


def uploaded_model() -> LoadedModel | None:
    """The model from this session's uploads (raises XaiError if it does not load)."""
    upload = st.session_state.get("model_upload")
    if not upload:
        return None
    overrides_json = json.dumps(upload.get("overrides") or {}, sort_keys=True)
    key = _digest(upload["bytes"], upload.get("sidecar") or b"", overrides_json)
    return cached_uploaded_model(key, upload["bytes"], upload["name"], upload.get("sidecar"), overrides_json)


def uploaded_data(model: LoadedModel):
    """The uploaded data read for `model`, and a key naming the files and every setting that changes how they are read."""
    files = st.session_state.get("data_upload")
    if not files:
        return None, ""
    settings = data_settings()
    key = _digest(*[name.encode() + b"\x00" + data for name, data in files], settings.digest_part())
    return cached_uploaded_data(key, model.sha256, files, settings, model), key


def current_selection() -> Selection:
    """The model and data chosen on the Model & data page (the default demo on a first visit)."""
    freeze_long_lived_objects()
    source = st.session_state.setdefault("source", "demo")
    if source == "upload" and st.session_state.get("model_upload"):
        model = uploaded_model()
        data, data_key = uploaded_data(model)
        return Selection(model, data, "upload", None, data_key)
    from xai_core.demo import DEMOS

    key = st.session_state.setdefault("demo_key", DEFAULT_DEMO)
    if key not in DEMOS:
        key = st.session_state["demo_key"] = DEFAULT_DEMO
    model = cached_demo_model(key)
    data = cached_demo_data(key, model.sha256)
    background = cached_demo_data(key, model.sha256, "train") if DEMOS[key].train_file else None
    return Selection(model, data, "demo", key, f"demo:{key}", background)


# ---------------------------------------------------------------------------------------- uploads across reloads

# A browser reload starts a new Streamlit session with an empty session state. The uploads and the page's choices
# are kept server-side under a random token that the URL carries (?upload=…), so a reload of the same tab gets them
# back. Bounded in count, bytes and age; the token is 128 random bits, as secret as the session itself.
KEPT_STATE_KEYS = ("source", "source_control", "model_upload", "data_upload", "target_column", "ignore_columns",
                   "label_pattern", "target_select", "ignore_select", "pattern_input", "ov_task", "ov_kind", "ov_shape",
                   "ov_arch", "ov_classes", "ov_features", "ov_mean", "ov_std", "ov_resize")
MAX_KEPT_UPLOADS = 32
MAX_KEPT_BYTES = 2 * 1024**3
KEEP_SECONDS = 24 * 3600
_kept: "collections.OrderedDict[str, tuple[float, int, dict]]" = collections.OrderedDict()
_kept_lock = threading.Lock()


def _upload_bytes(saved: dict) -> int:
    model = saved.get("model_upload") or {}
    return len(model.get("bytes") or b"") + len(model.get("sidecar") or b"") + sum(
        len(d) for _, d in saved.get("data_upload") or [])


def _keep(token: str, saved: dict) -> None:
    size = _upload_bytes(saved)
    with _kept_lock:
        _kept.pop(token, None)
        if size > MAX_KEPT_BYTES:
            return
        _kept[token] = (time.time(), size, saved)
        now = time.time()
        while _kept and (len(_kept) > MAX_KEPT_UPLOADS or sum(v[1] for v in _kept.values()) > MAX_KEPT_BYTES
                         or now - next(iter(_kept.values()))[0] > KEEP_SECONDS):
            _kept.popitem(last=False)


def _kept_state(token: str) -> dict | None:
    with _kept_lock:
        entry = _kept.get(token)
        if entry is None or time.time() - entry[0] > KEEP_SECONDS:
            return None
        return entry[2]


def keep_uploads_across_reloads() -> None:
    """At the top of every run: give a reloaded tab its uploads back (from the URL's token), else remember them."""
    state = st.session_state
    token = st.query_params.get("upload")
    if token and not state.get("model_upload") and not state.get("data_upload") and "upload_token" not in state:
        saved = _kept_state(token)
        if saved is not None:
            for key, value in saved.items():
                state[key] = copy.copy(value)
            state["upload_token"] = token
            state["uploads_restored"] = True
    if state.get("model_upload") or state.get("data_upload"):
        token = state.setdefault("upload_token", secrets.token_urlsafe(16))
        _keep(token, {key: copy.copy(state[key]) for key in KEPT_STATE_KEYS if key in state})
        if st.query_params.get("upload") != token:
            st.query_params["upload"] = token


def demo_available() -> bool:
    from xai_core.demo import ASSETS, DEMOS

    return all((ASSETS / d.model_file).exists() for d in DEMOS.values())

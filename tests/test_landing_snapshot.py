"""The landing page's shipped snapshot: equal to the view computed live, refused when an asset changed, drawn without
torch; and the background warm-up's model and data are the ones the pages then use (nothing loaded twice)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ui import model_page, state
from ui.model_page import SNAPSHOTS, build_demo_view, load_snapshot, save_snapshot
from xai_core.demo import DEMOS

ROOT = Path(__file__).resolve().parents[1]


def assert_views_equal(live, shipped):
    assert live.texts == json.loads(json.dumps(shipped.texts))
    assert json.loads(json.dumps(live.texts)) == shipped.texts
    assert sorted(live.figures) == sorted(shipped.figures)
    for key, fig in live.figures.items():
        assert json.loads(fig.to_json()) == json.loads(shipped.figures[key].to_json()), key
    assert sorted(live.tables) == sorted(shipped.tables)
    for key, frame in live.tables.items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), shipped.tables[key].reset_index(drop=True),
                                      check_exact=True)


def test_the_shipped_snapshot_is_the_view_computed_live():
    snapshot = load_snapshot(state.DEFAULT_DEMO)
    assert snapshot is not None, ("assets/landing is missing or stale: rebuild it with `python -m ui.model_page`")
    assert_views_equal(build_demo_view(state.DEFAULT_DEMO), snapshot.view)
    assert snapshot.view.texts["performance"]["score"][0] == "Accuracy"


def test_a_snapshot_of_other_asset_bytes_is_not_used(tmp_path):
    view = model_page.ModelPageView(texts={"name": "x"}, figures={}, tables={"t": pd.DataFrame({"a": [1.5]})})
    save_snapshot("wine", view, ["wine.pt2"], root=tmp_path)
    loaded = load_snapshot("wine", root=tmp_path)
    assert loaded is not None and loaded.view.texts == {"name": "x"}
    pd.testing.assert_frame_equal(loaded.view.tables["t"], view.tables["t"])
    doc = json.loads((tmp_path / "wine" / "view.json").read_text())
    doc["files"]["wine.pt2"] = "0" * 64  # as if the model had been retrained since
    (tmp_path / "wine" / "view.json").write_text(json.dumps(doc))
    assert load_snapshot("wine", root=tmp_path) is None
    assert load_snapshot("no_such_demo", root=tmp_path) is None


def test_the_landing_page_is_drawn_without_importing_torch():
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from ui import state
state._warm_up_started = True  # this test looks at the page alone; the warm-up would import torch meanwhile
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / 'dashboard.py')!r}, default_timeout=120).run()
assert not at.exception, at.exception
assert [m.value for m in at.metric] and at.metric[0].label == "Accuracy", [m.label for m in at.metric]
heavy = sorted(m for m in ("torch", "captum", "sklearn", "scipy") if m in sys.modules)
assert heavy == [], heavy
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_the_warm_up_loads_each_thing_once_and_the_pages_get_it(monkeypatch):
    import xai_core.demo as demo

    calls = []
    real_model, real_data = demo.load_demo_model, demo.load_demo_data
    monkeypatch.setattr(demo, "load_demo_model", lambda key: calls.append(("model", key)) or real_model(key))
    monkeypatch.setattr(demo, "load_demo_data",
                        lambda key, model, split="test": calls.append(("data", key, split)) or real_data(key, model, split=split))
    monkeypatch.setattr(state, "_warm_up_started", False)
    monkeypatch.setattr(state, "_started", {})
    monkeypatch.setattr(state, "WARM_MODULES", ("xai_core.metrics",))
    state.cached_demo_model.clear()
    state.cached_demo_data.clear()
    try:
        state.warm_up("wine", delay=0)
        state.warm_up("wine", delay=0)  # once per process
        model = state.cached_demo_model("wine")
        test = state.cached_demo_data("wine", model.sha256)
        train = state.cached_demo_data("wine", model.sha256, "train")
        assert sorted(calls) == [("data", "wine", "test"), ("data", "wine", "train"), ("model", "wine")]
        assert state._started == {}
        assert len(test.X) == len(pd.read_csv(demo.ASSETS / "wine_test.csv"))
        assert len(train.X) == len(pd.read_csv(demo.ASSETS / "wine_train.csv"))
        assert state.cached_demo_model("wine") is model and len(calls) == 3
    finally:
        state.cached_demo_model.clear()
        state.cached_demo_data.clear()


def test_a_failed_warm_up_fails_in_the_session_that_asks(monkeypatch):
    import pytest

    import xai_core.demo as demo

    def broken(key):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(demo, "load_demo_model", broken)
    monkeypatch.setattr(state, "_warm_up_started", False)
    monkeypatch.setattr(state, "_started", {})
    monkeypatch.setattr(state, "WARM_MODULES", ())
    state.cached_demo_model.clear()
    try:
        state.warm_up("diabetes", delay=0)
        with pytest.raises(RuntimeError, match="disk gone"):
            state.cached_demo_model("diabetes")
    finally:
        state.cached_demo_model.clear()


def test_the_demo_titles_read_from_the_source_are_the_demos():
    titles = model_page.demo_titles_from_source()
    assert list(titles.items()) == [(k, d.title) for k, d in DEMOS.items()]


def test_snapshots_ship_for_the_default_demo_only():
    assert sorted(p.name for p in SNAPSHOTS.iterdir()) == [state.DEFAULT_DEMO]


def test_input_values_are_sent_as_their_counts():
    """The input-value histogram goes to the browser as 60 counts per channel (one set of bins for the overlaid
    channels), not as the 786,432 raw values; the counts are those of the values the model is fed."""
    import numpy as np

    from xai_core.datasets import images_to_tensor
    from xai_core.demo import load_demo_data, load_demo_model
    from xai_core.viz.model import model_input_figure

    model = load_demo_model("shapes")
    data = load_demo_data("shapes", model)
    fig = model_input_figure(data.images, model.info, bins=60)
    x = images_to_tensor(data.images[:64], model.info).numpy().astype(float)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.type for t in fig.data] == ["image", "bar", "bar", "bar"]
    edges = np.histogram_bin_edges(x.ravel(), bins=60)
    for c, (trace, color) in enumerate(zip(bars, ("#d7301f", "#17a398", "#2b6cb0"))):
        values = x[:, c].ravel()
        assert list(trace.y) == np.histogram(values, bins=edges)[0].tolist() and sum(trace.y) == values.size
        np.testing.assert_allclose(trace.x, (edges[:-1] + edges[1:]) / 2)
        assert trace.width == edges[1] - edges[0] and trace.marker.color == color and trace.xaxis == "x2"
        assert trace.name.endswith(f"mean {values.mean():.2f}, std {values.std():.2f}")
    assert len(fig.to_json()) < 80_000


def test_the_warm_up_imports_only_between_script_runs(monkeypatch):
    import importlib
    import threading

    events = []
    done = threading.Event()
    real_import = importlib.import_module

    def recording_import(name, *args, **kwargs):
        if name == "json":  # the warm-up's module (other code imports through importlib too)
            events.append(("import", name))
            done.set()
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", recording_import)
    monkeypatch.setattr(state, "_warm_up_started", False)
    monkeypatch.setattr(state, "_started", {})
    monkeypatch.setattr(state, "WARM_MODULES", ("json",))
    monkeypatch.setattr(state, "MAX_YIELD_PER_MODULE", 600.0)  # a run in flight is waited for, however long it takes
    state.cached_demo_model.clear()
    state.cached_demo_data.clear()
    try:
        with state.serving():
            state.warm_up("wine", delay=0)
            state.cached_demo_model("wine")  # the demo is loaded meanwhile: a page may be waiting for it
            assert not done.wait(0.5)  # the import waits for the run in flight to end
            events.append(("run ended",))
        assert done.wait(60)
        assert events == [("run ended",), ("import", "json")]
    finally:
        state.cached_demo_model.clear()
        state.cached_demo_data.clear()

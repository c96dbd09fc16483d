"""Per-run costs that made 20 concurrent sessions slow (benchmarks/bench_load.py) stay gone."""

import gc

import xai_core.metrics
from tests.apptest import open_page


def test_long_lived_objects_are_frozen_once_and_not_again_on_a_repeated_run():
    at = open_page("views/image_explanations.py", demo_key="shapes")
    at.run()  # freezes what the first run imported lazily (captum…)
    assert not at.exception
    frozen = gc.get_freeze_count()
    assert frozen > 100_000  # modules, classes, functions: skipped by the full collection after every run
    at.run()  # nothing new imported: no further freeze, so live session objects are not frozen run after run
    assert not at.exception
    assert gc.get_freeze_count() <= frozen  # (frozen objects can still be freed by reference counting)


def test_faithfulness_curves_are_computed_once_for_all_sessions(monkeypatch):
    open_page("views/image_explanations.py", demo_key="shapes")  # computes (or finds) the curves
    calls = []
    real = xai_core.metrics.faithfulness_curves
    monkeypatch.setattr(xai_core.metrics, "faithfulness_curves", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = open_page("views/image_explanations.py", demo_key="shapes")  # another session
    assert not at.exception
    assert not calls
    assert any(chart.proto.spec for chart in at.get("plotly_chart"))


def test_image_explanation_figures_are_built_once_and_rebuilt_when_a_control_changes(monkeypatch):
    import xai_core.viz.image as viz_image

    open_page("views/image_explanations.py", demo_key="shapes")  # builds (or finds) the figures
    built = []
    for name in ("overlay_figure", "image_figure", "probabilities_figure", "overlay_grid_figure", "faithfulness_figure"):
        real = getattr(viz_image, name)
        monkeypatch.setattr(viz_image, name, lambda *a, _name=name, _real=real, **k: built.append(_name) or _real(*a, **k))
    at = open_page("views/image_explanations.py", demo_key="shapes")  # another session: the same figures
    assert not at.exception
    assert built == []
    sent = [chart.proto.spec for chart in at.get("plotly_chart")]
    at.selectbox(key="ie_cmap").set_value("Viridis").run()  # the colour map changes the overlays, not the rest
    assert not at.exception
    assert sorted(built) == ["overlay_figure", "overlay_grid_figure", "overlay_grid_figure"]
    changed = [a != b for a, b in zip(sent, [chart.proto.spec for chart in at.get("plotly_chart")])]
    assert sum(changed) == 3, changed


def test_an_uploads_model_page_is_built_once_and_rebuilt_when_a_setting_changes(monkeypatch):
    from tests.apptest import run_app, upload_state
    from ui import model_page
    from xai_core.demo import ASSETS, demo_model_bytes

    model_bytes, sidecar = demo_model_bytes("wine")
    data = [("wine_test.csv", (ASSETS / "wine_test.csv").read_bytes())]
    at = run_app(**upload_state(model_bytes, "wine.pt2", sidecar=sidecar, data=data))
    assert not at.exception, at.exception
    built = []
    real = model_page.build_view
    monkeypatch.setattr(model_page, "build_view", lambda *a, **k: built.append(1) or real(*a, **k))
    at.run()
    assert not at.exception and built == []
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "1.000"
    at.selectbox(key="target_select").set_value("(none)").run()  # the data read without labels: a new view
    assert not at.exception, at.exception
    assert built == [1]
    assert "Accuracy" not in [m.label for m in at.metric]
    assert any("unlabelled" in c.value for c in at.caption) or any("no labels" in i.value for i in at.info)
    at.selectbox(key="target_select").set_value("(auto)").run()  # back: the first view again, not rebuilt
    assert built == [1] and {m.label: m.value for m in at.metric}["Accuracy"] == "1.000"

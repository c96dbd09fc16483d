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

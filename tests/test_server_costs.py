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

"""Per-figure HTML downloads open offline, and are built only when asked (never on a rerun)."""

import re

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from tests.apptest import error_messages, open_page
from ui.look import offline_figure_html


def test_downloaded_figure_needs_no_network():
    page = offline_figure_html(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])))
    assert page.count(get_plotlyjs()[:2000]) == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "cdn.plot.ly" not in page.replace(get_plotlyjs(), "")


def test_pages_do_not_build_downloads_on_a_run(monkeypatch):
    built = []
    original = go.Figure.to_html
    monkeypatch.setattr(go.Figure, "to_html", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    at = open_page("views/surrogate_tree.py", demo_key="wine")
    assert not at.exception and not error_messages(at)
    buttons = [b for b in at.get("download_button") if b.proto.label == "HTML"]
    assert buttons, "the surrogate tree has an HTML download"
    assert built == []

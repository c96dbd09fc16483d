"""report.html in Debian's headless Chromium with every non-file request refused: no errors, every figure drawn."""

import pytest

from tests.test_review_report import HOSTILE_CLASS, hostile_wine_review, shapes_review

pytestmark = pytest.mark.xdist_group("browser")  # one worker runs them all: they share one server and one browser


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    wine = hostile_wine_review(tmp_path_factory.mktemp("wine"))
    shapes = shapes_review(tmp_path_factory.mktemp("shapes"))
    return [wine.path / "report.html", shapes.path / "report.html"]


def open_offline(browser, path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    attempts, errors, dialogs = [], [], []

    def route(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            attempts.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
                           ".every(d => d.querySelector('.main-svg'))", timeout=60_000)
    return context, page, attempts, errors, dialogs


def test_reports_open_offline_with_every_figure_drawn(browser, reports):
    for path in reports:
        context, page, attempts, errors, dialogs = open_offline(browser, path)
        try:
            figures = page.locator(".plotly-graph-div")
            drawn = page.locator(".plotly-graph-div .main-svg")
            assert figures.count() >= 1 and drawn.count() >= figures.count()
            broken = page.evaluate("() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".length")
            assert broken == 0
            assert attempts == [], attempts
            assert errors == [], errors
            assert dialogs == [], dialogs
        finally:
            context.close()


def test_hostile_class_name_is_shown_as_text(browser, reports):
    context, page, _, _, dialogs = open_offline(browser, reports[0])
    try:
        assert page.get_by_text(HOSTILE_CLASS, exact=False).first.is_visible()
        assert page.locator("h1").inner_text() == "Review of <b>evil</b>.pt2"
        assert page.locator("h1 b").count() == 0
        assert dialogs == []
    finally:
        context.close()


def test_cli_prints_the_pdf(tmp_path):
    """`--pdf`: report.pdf printed by the same Chromium (in its own process: Playwright's sync API runs one loop)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "review"
    result = subprocess.run([sys.executable, "-m", "xai_core", "review", "--model", "assets/wine.pt2", "--data",
                             "assets/wine_test.csv", "--analyses", "surrogate", "--out", str(out), "--pdf", "-q"],
                            cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert (out / "report.html").exists()

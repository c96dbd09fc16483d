"""In the running dashboard: the Review report page's report.html and a figure's HTML download both open offline."""

from pathlib import Path

import pytest

from tests.browser.test_report_offline import open_offline
from xai_core.demo import load_demo_data, load_demo_model
from xai_core.review import ReviewSettings, run_review

pytestmark = pytest.mark.xdist_group("browser")  # one worker runs them all: they share one server and one browser


@pytest.fixture(scope="module")
def wine_review(review_root):
    """A stored review in the shared server's review root."""
    model = load_demo_model("wine")
    data, background = load_demo_data("wine", model), load_demo_data("wine", model, split="train")
    run_review(model, data, review_root / "wine-review", ReviewSettings(analyses=("surrogate",)), background=background)
    return review_root / "wine-review"


def download(page, name: str, target: Path) -> Path:
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=name, exact=True).first.click()
    info.value.save_as(target)
    return target


def test_downloads_from_the_review_page_open_offline(browser, dashboard_url, wine_review, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{dashboard_url}/review")
        page.get_by_role("heading", name="Review report").first.wait_for()
        field = page.get_by_label("Review folder (inside the review root)")
        field.fill(wine_review.name)
        field.press("Enter")
        page.get_by_text("Surrogate fidelity").first.wait_for()
        assert page.locator("[data-testid='stException']").count() == 0
        report = download(page, "report.html (opens offline)", tmp_path / "report.html")
        figure = download(page, "HTML", tmp_path / "figure.html")  # the first figure's own download
        assert "report.html" not in figure.read_text()[:4000] and "Review of" not in figure.read_text()
    finally:
        context.close()
    for path in (report, figure):
        offline, view, attempts, errors, dialogs = open_offline(browser, path)
        try:
            assert view.locator(".plotly-graph-div .main-svg").count() >= 1
            assert attempts == [] and errors == [] and dialogs == [], (path.name, attempts, errors)
        finally:
            offline.close()
    assert (wine_review / "report.html").exists()  # built on the click, kept for the next one

"""A bookmarked link to a page, opened as the very first request to a fresh server, gets the real app."""

import pytest

from tests.server import running_dashboard

pytestmark = pytest.mark.xdist_group("browser")  # one worker runs them all: they share one server and one browser


def test_a_deep_link_as_the_first_request_runs_the_dashboard_not_a_bare_page(browser):
    # Streamlit treats a folder named `pages/` beside the entry point as old-style multipage pages: a deep link that
    # arrived before dashboard.py had ever run used to execute the page file on its own, without the wide layout and
    # with a navigation of file names, for every later session too.
    with running_dashboard() as (url, _seconds, _process):
        for _ in range(2):  # the first session, and one after it
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/quantization")  # also the name of its file
            page.get_by_role("heading", name="Quantization").first.wait_for()
            nav = page.get_by_test_id("stSidebarNav").inner_text()
            assert "Model & data" in nav and "Quantization" in nav, nav
            assert page.locator("[data-testid='stException']").count() == 0
            context.close()

"""Fixtures for tests in a real headless Chromium (Debian's, driven by Playwright; no browser download)."""

from pathlib import Path

import pytest

from tests.server import CHROMIUM_ARGS, chromium_path, running_dashboard

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(scope="session")
def review_root(tmp_path_factory):
    """The one review root of the shared server (its XAI_REVIEW_ROOT): tests write the reviews they open there."""
    return tmp_path_factory.mktemp("reviews")


@pytest.fixture(scope="session")
def dashboard_url(review_root):
    """One dashboard server for every browser test that does not need a fresh one."""
    with running_dashboard(env={"XAI_REVIEW_ROOT": str(review_root)}) as (url, _seconds, _process):
        yield url


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (see the README's test command).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

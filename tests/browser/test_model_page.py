"""The whole app in a real browser: the server starts, the demo renders, nothing raises."""

import re

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.xdist_group("browser")  # one worker runs them all: they share one server and one browser


def wait_for_app(page):
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def test_demo_renders_without_exceptions(page, dashboard_url):
    page.goto(dashboard_url)
    page.get_by_role("heading", name="Model & data").wait_for()
    page.get_by_text("Confusion matrix").first.wait_for()
    wait_for_app(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert page.get_by_text("Accuracy").first.is_visible()
    assert page.locator(".js-plotly-plot").count() >= 3
    screenshot(page, "model_page_shapes")


@pytest.mark.slow
def test_switching_to_a_tabular_demo(page, dashboard_url):
    page.goto(dashboard_url)
    page.get_by_role("heading", name="Model & data").wait_for()
    page.get_by_text("Confusion matrix").first.wait_for()
    page.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="Wine (table, 3 classes)").click()
    page.get_by_text("13 features").first.wait_for()
    page.get_by_text("Confusion matrix").first.wait_for()
    wait_for_app(page)
    assert page.get_by_text("3 classes").first.is_visible()
    assert page.locator("[data-testid='stException']").count() == 0
    screenshot(page, "model_page_wine")


def open_page_for_demo(page, dashboard_url, demo_title, link_name):
    page.goto(dashboard_url)
    page.get_by_text("Confusion matrix").first.wait_for()
    page.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name=demo_title).click()
    # the chosen demo's own page (a table's data are rows), not the landing demo's still on screen: a link clicked
    # before the demo's run reached the browser raced it (seen once under the full suite)
    page.get_by_text(re.compile(r"^\d+ rows (with labels|, unlabelled)")).first.wait_for()
    page.get_by_text("Confusion matrix").first.wait_for()
    wait_for_app(page)
    page.get_by_role("link", name=link_name).click()


@pytest.mark.slow
def test_feature_importance_page_renders(page, dashboard_url):
    open_page_for_demo(page, dashboard_url, "Wine (table, 3 classes)", "Feature importance")
    page.get_by_text("Efficiency check").first.wait_for()
    page.get_by_role("heading", name="One row").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=60_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stException']").count() == 0
    screenshot(page, "feature_importance_wine")


@pytest.mark.slow
def test_image_explanations_page_renders(page, dashboard_url):
    page.goto(dashboard_url)
    page.get_by_text("Confusion matrix").first.wait_for()
    wait_for_app(page)
    page.get_by_role("link", name="Image explanations").click()
    page.get_by_text("Pointing game").first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=90_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Grad-CAM for 'triangle'").count() + page.locator("text=Grad-CAM for").count() >= 1
    screenshot(page, "image_explanations_shapes")


@pytest.mark.slow
def test_surrogate_page_renders(page, dashboard_url):
    open_page_for_demo(page, dashboard_url, "Breast cancer (table, binary classifier)", "Surrogate tree")
    page.get_by_role("heading", name="Local surrogate (LIME)").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Fidelity").first.is_visible()
    screenshot(page, "surrogate_breast_cancer")


def wait_for_quantization(page):
    page.get_by_role("heading", name="Explanation drift").wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=120_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stException']").count() == 0


@pytest.mark.slow
def test_quantization_page_renders_on_an_image_demo(page, dashboard_url):
    page.goto(dashboard_url)
    page.get_by_text("Confusion matrix").first.wait_for()
    wait_for_app(page)
    page.get_by_role("link", name="Quantization").click()
    wait_for_quantization(page)
    assert page.get_by_text("int8 static").first.is_visible()
    screenshot(page, "quantization_shapes")


def test_quantization_page_renders_on_a_tabular_demo(page, dashboard_url):
    open_page_for_demo(page, dashboard_url, "Wine (table, 3 classes)", "Quantization")
    wait_for_quantization(page)
    # which speed verdict appears depends on the machine's load; that one is shown at all is what renders here
    verdict = page.get_by_text("int8 dynamic is").first
    assert verdict.is_visible() and any(w in verdict.inner_text() for w in ("slower", "no faster", "faster only"))
    screenshot(page, "quantization_wine")

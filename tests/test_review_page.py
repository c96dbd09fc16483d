"""The Review report page: writes a review of what is loaded, opens stored reviews only from inside the review root."""

import pytest

from tests.apptest import error_messages, open_page
from xai_core.demo import load_demo_data, load_demo_model
from xai_core.review import ReviewSettings, load_review, run_review

PAGE = "views/review.py"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_REVIEW_ROOT", str(tmp_path))
    return tmp_path


def test_opens_a_stored_review_without_computing(root, monkeypatch):
    model = load_demo_model("wine")
    data, background = load_demo_data("wine", model), load_demo_data("wine", model, split="train")
    review = run_review(model, data, root / "wine-review", ReviewSettings(analyses=("shap", "surrogate")),
                        background=background)
    import xai_core.review.job as job

    monkeypatch.setattr(job, "compute_shard", lambda *a, **k: pytest.fail("the page recomputed a shard"))
    monkeypatch.setattr(job, "GLOBAL_ANALYSES", {})  # any whole-data analysis would raise KeyError
    at = open_page(PAGE, demo_key="wine", rv_open_name="wine-review")
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    assert {m.label: m.value for m in at.metric}["Surrogate fidelity"] == f"{review.surrogate.fidelity:.3f}"
    ev = review.evaluation
    low, high = ev.score_interval
    assert f"{ev.score:.3f} ({low:.3f} – {high:.3f})" in "".join(m.value for m in at.markdown)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "report.html (opens offline)" in labels and "SHAP values (CSV)" in labels


@pytest.mark.parametrize("name", ["../elsewhere", "/etc", "a/../../b", "."])
def test_paths_outside_the_root_are_refused(root, name):
    (root.parent / "elsewhere").mkdir(exist_ok=True)
    at = open_page(PAGE, demo_key="wine", rv_open_name=name)
    assert not at.exception
    assert any("only from folders inside the review root" in e for e in error_messages(at)), error_messages(at)


def test_writes_a_review_of_the_loaded_demo(root):
    at = open_page(PAGE, demo_key="wine")
    assert not at.exception and not error_messages(at)
    at.multiselect(key="rv_analyses").set_value(["surrogate"])
    at.text_input(key="rv_write_name").set_value("from-page")
    at.button(key="rv_write").click().run()
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    review = load_review(root / "from-page")
    assert review.complete and review.surrogate is not None and review.shap is None
    assert review.manifest["model_file_sha256"]
    assert review.manifest["data"]["background_rows"] is not None  # the demo's training rows, as on the pages
    assert {m.label: m.value for m in at.metric}["Surrogate fidelity"] == f"{review.surrogate.fidelity:.3f}"


@pytest.mark.parametrize("key, method", [("shapes_vit", "Gradient-weighted attention"), ("shapes", "Grad-CAM")])
def test_the_images_analysis_names_the_method_a_review_will_use(root, key, method):
    at = open_page(PAGE, demo_key=key)
    assert not at.exception and not error_messages(at)
    assert f"Image explanations ({method})" in at.multiselect(key="rv_analyses").options

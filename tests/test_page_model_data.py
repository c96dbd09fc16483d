"""The Model & data page through Streamlit's AppTest: the demo, every demo, and uploads good and bad."""

import io
import json

import pytest
import torch
from torch import nn

from tests.apptest import error_messages as errors
from tests.apptest import run_app, upload_state
from xai_core.demo import ASSETS, DEMOS, demo_model_bytes


def test_first_visit_shows_the_default_demo_with_its_accuracy():
    at = run_app()
    assert not at.exception, at.exception
    assert not errors(at)
    assert at.title[0].value == "Model & data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Format"] == "torch.export"
    assert float(metrics["Accuracy"]) >= 0.95


@pytest.mark.parametrize("key", list(DEMOS))
def test_every_demo_renders(key):
    at = run_app(demo_key=key)
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    metrics = {m.label: m.value for m in at.metric}
    if key == "diabetes":
        assert float(metrics["R²"]) > 0.3
    else:
        assert float(metrics["Accuracy"]) >= 0.9


def test_choosing_a_demo_in_the_selector():
    at = run_app()
    at.selectbox(key="demo_select").set_value("wine").run()
    assert not at.exception
    assert at.session_state["demo_key"] == "wine"
    assert any("alcohol" in str(df.value.columns.tolist()) for df in at.dataframe)


def test_upload_of_a_model_with_matching_table():
    model_bytes, sidecar = demo_model_bytes("breast_cancer")
    table = (ASSETS / "breast_cancer_test.csv").read_bytes()
    at = run_app(**upload_state(model_bytes, "bc.pt2", sidecar, [("bc.csv", table)]))
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Accuracy"]) >= 0.9


def test_upload_of_a_model_alone_asks_for_data():
    model_bytes, sidecar = demo_model_bytes("wine")
    at = run_app(**upload_state(model_bytes, "wine.pt2", sidecar))
    assert not at.exception
    assert any("Upload data" in i.value for i in at.info)


def test_upload_of_a_pickle_shows_an_error_and_the_page_keeps_running():
    buffer = io.BytesIO()
    torch.save(nn.Linear(3, 2), buffer)
    at = run_app(**upload_state(buffer.getvalue(), "model.pt"))
    assert not at.exception
    assert any("pickled Python object" in e for e in errors(at))
    assert at.title[0].value == "Model & data"


def test_upload_of_data_that_does_not_fit_the_model():
    model_bytes, sidecar = demo_model_bytes("wine")
    at = run_app(**upload_state(model_bytes, "wine.pt2", sidecar, [("other.csv", b"a,b\n1,2\n")]))
    assert not at.exception
    assert any("needs 13 features" in e for e in errors(at))


def test_upload_of_images_for_a_tabular_model():
    model_bytes, sidecar = demo_model_bytes("wine")
    zipped = (ASSETS / "shapes_test.zip").read_bytes()
    at = run_app(**upload_state(model_bytes, "wine.pt2", sidecar, [("shapes.zip", zipped)]))
    assert not at.exception
    assert any("takes a table" in e for e in errors(at))


def test_upload_of_an_image_model_with_a_zip_of_class_folders():
    model_bytes, sidecar = demo_model_bytes("digits")
    zipped = (ASSETS / "digits_test.zip").read_bytes()
    at = run_app(**upload_state(model_bytes, "digits.pt2", sidecar, [("digits.zip", zipped)]))
    assert not at.exception
    assert not errors(at), errors(at)
    assert float({m.label: m.value for m in at.metric}["Accuracy"]) >= 0.9


def test_sidecar_with_wrong_class_count_is_reported():
    model_bytes, _ = demo_model_bytes("wine")
    at = run_app(**upload_state(model_bytes, "wine.pt2", json.dumps({"class_names": ["a", "b"]}).encode()))
    assert not at.exception
    assert any("3 class scores but 2 class names" in e for e in errors(at))

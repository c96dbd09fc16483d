"""The Model & data page through Streamlit's AppTest: the demo, every demo, and uploads good and bad."""

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from tests.apptest import error_messages as errors
from tests.apptest import run_app, upload_state
from tests.test_demo import SCORED_DEMOS
from xai_core.demo import ASSETS, DEMOS, demo_model_bytes


def test_first_visit_shows_the_default_demo_with_its_accuracy():
    at = run_app()
    assert not at.exception, at.exception
    assert not errors(at)
    assert at.title[0].value == "Model & data"
    metrics = {m.label: m.value for m in at.metric}
    assert any("Format" in m.value and "torch.export" in m.value for m in at.markdown)
    assert float(metrics["Accuracy"]) >= 0.95


@pytest.mark.parametrize("key", SCORED_DEMOS)
def test_every_demo_shows_the_numbers_computed_from_its_assets(key):
    from tests.test_demo import independent_labels_and_predictions
    from xai_core.demo import load_demo_model

    at = run_app(demo_key=key)
    labels, predicted, classes = independent_labels_and_predictions(key, load_demo_model(key).module)
    if classes:
        check_page_numbers(at, labels, predicted, classes)
    else:
        assert not at.exception and not errors(at), errors(at)
        r2 = {m.label: m.value for m in at.metric}["R²"]
        assert r2 == f"{skm.r2_score(labels, predicted):.3f}" and float(r2) > 0.3


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


# ---------------------------------------------------------------------------------------- the numbers shown, checked


def confusion_shown(at) -> tuple[np.ndarray, dict]:
    """The confusion-matrix heatmap's cell counts as drawn (z), and its layout."""
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-confusion")]
    spec = json.loads(chart.proto.spec)
    (heatmap,) = [t for t in spec["data"] if t["type"] == "heatmap"]
    z = heatmap["z"]
    if isinstance(z, dict):  # Plotly's typed-array encoding
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
            [int(v) for v in str(z["shape"]).split(",")])
    return np.asarray(z), {"x": heatmap["x"], "y": heatmap["y"], "x_title": spec["layout"]["xaxis"]["title"]["text"],
                           "y_title": spec["layout"]["yaxis"]["title"]["text"], "text": heatmap["text"]}


def bootstrap_by_hand(correct: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(n_bootstrap)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def check_page_numbers(at, labels, predicted, classes):
    """The page's accuracy, interval and confusion matrix equal those computed here from labels and predictions."""
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    expected = skm.confusion_matrix(labels, predicted, labels=range(len(classes)))  # rows true, columns predicted
    z, layout = confusion_shown(at)
    assert layout["y_title"] == "true class" and layout["x_title"] == "predicted class"
    assert layout["x"] == list(classes) and layout["y"] == list(classes)
    np.testing.assert_array_equal(z, expected)
    assert [[cell.split("<br>")[0] for cell in row] for row in layout["text"]] == expected.astype(str).tolist()
    accuracy = [m for m in at.metric if m.label == "Accuracy"]
    assert len(accuracy) == 1
    correct = (np.asarray(labels) == np.asarray(predicted)).astype(float)
    assert accuracy[0].value == f"{correct.mean():.3f}"
    low, high = bootstrap_by_hand(correct)
    assert f"95% bootstrap interval {low:.3f} – {high:.3f} over {len(labels)} rows" in accuracy[0].help


class NearestClass(nn.Module):
    """Predicts the class whose index is nearest to feature p (the second feature is ignored)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("centres", torch.arange(3, dtype=torch.float32))

    def forward(self, x):
        return -10 * (x[:, :1] - self.centres) ** 2


def nearest_class_upload(rows: list[tuple[float, str]]) -> dict:
    buffer = io.BytesIO()
    program = torch.export.export(NearestClass().eval(), (torch.zeros(2, 2),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    torch.export.save(program, buffer)
    sidecar = json.dumps({"class_names": ["low", "mid", "high"], "feature_names": ["p", "q"]}).encode()
    table = "p,q,label\n" + "".join(f"{p},{i},{label}\n" for i, (p, label) in enumerate(rows))
    return upload_state(buffer.getvalue(), "nearest.pt2", sidecar, [("rows.csv", table.encode())])


# Every true 'high' that is missed is predicted 'low', and no true 'low' is predicted 'high': not symmetric.
KNOWN_ROWS = [(0.1, "low"), (-0.2, "low"), (0.9, "low"),
              (1.2, "mid"), (0.8, "mid"),
              (2.0, "high"), (2.4, "high"), (1.7, "high"), (0.3, "high")]


def test_uploaded_model_and_table_show_the_hand_counted_confusion_matrix():
    at = run_app(**nearest_class_upload(KNOWN_ROWS))
    names = ["low", "mid", "high"]
    labels = [names.index(label) for _, label in KNOWN_ROWS]
    predicted = [int(np.clip(np.rint(p), 0, 2)) for p, _ in KNOWN_ROWS]
    assert skm.confusion_matrix(labels, predicted).tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 3]]  # counted by hand
    check_page_numbers(at, labels, predicted, names)


def test_labels_given_as_indices_up_to_the_last_class_are_scored():
    rows = [(p, str(["low", "mid", "high"].index(label))) for p, label in KNOWN_ROWS]
    at = run_app(**nearest_class_upload(rows))
    labels = [int(label) for _, label in rows]
    predicted = [int(np.clip(np.rint(p), 0, 2)) for p, _ in rows]
    check_page_numbers(at, labels, predicted, ["low", "mid", "high"])


def test_a_label_equal_to_the_number_of_classes_is_refused_with_a_message():
    at = run_app(**nearest_class_upload([(0.1, "0"), (1.1, "1"), (2.2, "3")]))
    assert not at.exception, at.exception
    assert any(re.search(r"\['3'\] are neither classes of this model \(low, mid, high\) nor class indices 0…2", e)
               for e in errors(at)), errors(at)
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-confusion")]

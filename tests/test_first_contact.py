"""First contact with a foreign model (issue 13): no silent wrong numbers, settings that take effect, messages that
name the fix, and uploads that survive a reload. Each test failed on the code before the fix."""

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.apptest import error_messages, open_page, run_app, upload_state
from xai_core import XaiError
from xai_core.data_loading import load_data, load_images, prepare_table, suggest_label_pattern
from xai_core.demo import ASSETS, demo_model_bytes, load_demo_model
from xai_core.evaluation import evaluate
from xai_core.loading import load_model
from xai_core.metrics import sanity_check
from xai_core.model import ModelInfo
from xai_core.preprocessing import check_preprocessing


class ZeroOnePixels(nn.Module):
    """The digits demo CNN behind its own normalisation: a model that takes pixels in [0, 1], as many do."""

    def __init__(self, inner: nn.Module, mean: float, std: float):
        super().__init__()
        self.inner, self.mean, self.std = inner, mean, std

    def forward(self, x):
        return self.inner((x - self.mean) / self.std)


@pytest.fixture(scope="module")
def foreign_digits():
    """A .pt2 of a digits classifier trained on [0, 1] pixels, and the held-out digits (a zip of class folders)."""
    demo = load_demo_model("digits")
    net = ZeroOnePixels(demo.module, demo.info.mean[0], demo.info.std[0]).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(net, (torch.zeros(2, 1, 32, 32),), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue(), [("digits_test.zip", (ASSETS / "digits_test.zip").read_bytes())]


def _accuracy(at) -> float:
    return float({m.label: m.value for m in at.metric}["Accuracy"])


# ---------------------------------------------------------------------------------------- 1. no silent assumption


def test_assumed_normalisation_is_named_and_a_far_better_one_offered(foreign_digits, monkeypatch):
    from xai_core import preprocessing

    monkeypatch.setattr(preprocessing, "MAX_CHECKED_IMAGES", 10_000)  # every image, to compare with all of them
    model_bytes, files = foreign_digits
    model = load_model(model_bytes, "foreign.pt2")
    assert set(model.assumed) == {"mean", "std"}  # nothing declared how pixels are normalised
    check = check_preprocessing(model, files)
    assert check.current.accuracy < 0.6
    assert check.better is not None and check.better.mean == (0.0,) and check.better.std == (1.0,)
    assert check.better.accuracy >= 0.98
    # independent answer: the same model scored directly on [0, 1] pixels
    data = load_data(files, model.info.updated(mean=(0.0,), std=(1.0,)))
    x = torch.from_numpy(data.images).float().permute(0, 3, 1, 2) / 255
    with torch.no_grad():
        direct = (model.module(x).argmax(1).numpy() == data.labels).mean()
    assert check.better.accuracy == pytest.approx(direct) and check.better.n_images == len(data) == 450


def test_page_warns_about_the_assumption_and_one_click_fixes_the_accuracy(foreign_digits):
    model_bytes, files = foreign_digits
    at = run_app(**upload_state(model_bytes, "foreign.pt2", data=files))
    assert not at.exception, at.exception
    assert _accuracy(at) < 0.6
    assert any("assumed" in w.value and "normalisation" in w.value for w in at.warning)
    offer = [e.value for e in at.error if "fits this model far better" in e.value]
    assert offer and "[0, 1]" in offer[0]
    at.button(key="use_convention").click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="ov_mean").value == "0" and at.text_input(key="ov_std").value == "1"
    assert _accuracy(at) >= 0.98
    assert not any("fits this model far better" in e.value for e in at.error)


def test_torchscript_image_model_without_shape_says_the_shape_was_assumed(foreign_digits):
    demo = load_demo_model("digits")
    scripted = torch.jit.trace(ZeroOnePixels(demo.module, 0.3, 0.3).eval(), torch.zeros(2, 1, 32, 32))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    with pytest.raises(XaiError, match=r"\[2, 3, 224, 224\] \(input shape assumed: nothing in the file or sidecar "
                                       r"gives it.*Set the input shape"):
        load_model(buffer.getvalue(), "digits_ts.pt")
    loaded = load_model(buffer.getvalue(), "digits_ts.pt", overrides={"input_shape": [1, 32, 32]})
    assert "input_shape" not in loaded.assumed and set(loaded.assumed) == {"mean", "std"}


def test_state_dict_input_size_is_marked_as_assumed():
    import torchvision

    net = torchvision.models.resnet18(num_classes=3).eval()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    loaded = load_model(buffer.getvalue(), "r18.pt")
    assert {"input_shape", "mean", "std"} <= set(loaded.assumed)
    declared = load_model(buffer.getvalue(), "r18.pt", overrides={"input_shape": [3, 64, 64], "mean": [0.5] * 3,
                                                                  "std": [0.5] * 3})
    assert declared.assumed == {}


# ---------------------------------------------------------------------------------------- 2. settings take effect


def _wine_upload(frame: pd.DataFrame):
    model_bytes, sidecar = demo_model_bytes("wine")
    return upload_state(model_bytes, "wine.pt2", sidecar, [("wine.csv", frame.to_csv(index=False).encode())])


def test_target_column_of_another_name_and_none_change_the_score():
    frame = pd.read_csv(ASSETS / "wine_test.csv").rename(columns={"target": "cultivar"})
    at = run_app(**_wine_upload(frame))
    assert not at.exception, at.exception
    assert any("no labels" in i.value for i in at.info)  # 'cultivar' is not found automatically
    at.selectbox(key="target_select").set_value("cultivar").run()
    assert not at.exception, at.exception
    model = load_demo_model("wine")
    expected = evaluate(model, prepare_table(frame, model.info, "cultivar")).score
    assert _accuracy(at) == pytest.approx(expected, abs=5e-4)
    at.selectbox(key="target_select").set_value("(none)").run()
    assert not [m for m in at.metric if m.label == "Accuracy"]
    assert any("no labels" in i.value for i in at.info)


def test_columns_to_ignore_drop_an_id_column_on_the_page():
    frame = pd.read_csv(ASSETS / "wine_test.csv")
    frame.insert(0, "sample_id", np.arange(len(frame)) + 1000)
    frame = frame.drop(columns=["alcohol"]).assign(alcohol=pd.read_csv(ASSETS / "wine_test.csv")["alcohol"])
    at = run_app(**_wine_upload(frame))
    assert not error_messages(at)  # matched by name: the id column is ignored with a note
    model = load_demo_model("wine")
    # without names, an extra id column is a real problem: the message names the two ways out
    unnamed = pd.read_csv(ASSETS / "wine_test.csv")
    unnamed.insert(0, "sample_id", np.arange(len(unnamed)) + 1000)
    unnamed.columns = [f"c{i}" for i in range(unnamed.shape[1])]  # c0 id, c1…c13 features in order, c14 labels
    with pytest.raises(XaiError, match="pick the label column in Target column.*Columns to ignore"):
        prepare_table(unnamed, model.info)
    at = run_app(**_wine_upload(unnamed))
    assert any("Target column" in e for e in error_messages(at))
    at.selectbox(key="target_select").set_value("c14").run()
    at.multiselect(key="ignore_select").set_value(["c0"]).run()
    assert not at.exception and not error_messages(at), error_messages(at)
    expected = evaluate(model, prepare_table(unnamed, model.info, "c14", ignore_columns=["c0"])).score
    assert _accuracy(at) == pytest.approx(expected, abs=5e-4) and expected > 0.9


# ---------------------------------------------------------------------------------------- 4. TorchScript


def test_tabular_torchscript_takes_its_width_from_the_sidecar_feature_names():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    names = [f"q{i}" for i in range(8)]
    model = load_model(buffer.getvalue(), "survey.pt", sidecar={"feature_names": names})
    assert model.info.input_kind == "tabular" and model.info.input_shape == (8,)
    assert model.info.feature_names == tuple(names) and model.assumed == {}


def test_sanity_check_runs_on_torchscript():
    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.conv(x).relu().mean(dim=(2, 3)))

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(CNN().eval()), buffer)
    model = load_model(buffer.getvalue(), "cnn.pt", sidecar={"input_shape": [3, 16, 16]})
    images = (np.random.default_rng(0).random((3, 16, 16, 3)) * 255).astype(np.uint8)
    check = sanity_check(model, images, "saliency")
    assert check.layers == ["head", "conv"]
    assert check.correlations[-1] < 0.5 and check.passed


# ---------------------------------------------------------------------------------------- 5. messages that name the fix


@pytest.mark.parametrize("field, meant", [("input", "input_shape"), ("image_size", "input_shape"),
                                          ("target", "target_name"), ("classes", "class_names")])
def test_unknown_sidecar_fields_name_the_right_one(field, meant):
    model_bytes, _ = demo_model_bytes("wine")
    with pytest.raises(XaiError, match=rf"Did you mean '{meant}' instead of '{field}'"):
        load_model(model_bytes, "wine.pt2", sidecar={field: [3, 32, 32]})


def _png(color) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE_INFO = ModelInfo(input_shape=(3, 20, 20), class_names=("cat", "dog", "owl"), mean=(0.5,) * 3, std=(0.5,) * 3)


def test_labels_from_file_names_by_pattern_and_by_suggestion():
    files = [("dog_3.png", _png("red")), ("cat-1.png", _png("blue")), ("owl7.png", _png("green")), ("cat_9.png", _png("red"))]
    pattern = suggest_label_pattern([n for n, _ in files], IMAGE_INFO.class_names)
    data = load_images(files, IMAGE_INFO, label_pattern=pattern)
    assert data.labels.tolist() == [1, 0, 2, 0]
    by_index = load_images([("x_2_a.png", _png("red")), ("x_0_b.png", _png("red"))], IMAGE_INFO, label_pattern=r"x_(\d)_")
    assert by_index.labels.tolist() == [2, 0]
    numbered = [("2_17.png", _png("red")), ("0-3.png", _png("red")), ("1.png", _png("red"))]
    pattern = suggest_label_pattern([n for n, _ in numbered], IMAGE_INFO.class_names)
    assert load_images(numbered, IMAGE_INFO, label_pattern=pattern).labels.tolist() == [2, 0, 1]
    assert suggest_label_pattern(["3_1.png", "0_2.png"], IMAGE_INFO.class_names) is None  # 3 is no class index
    with pytest.raises(XaiError, match=r"does not match 1 file\(s\), e.g. \['owl7.png'\]"):
        load_images(files, IMAGE_INFO, label_pattern=r"^(cat|dog)[_-]")
    with pytest.raises(XaiError, match="not a valid regular expression"):
        load_images(files, IMAGE_INFO, label_pattern="(")


def test_labels_from_a_csv_of_file_names():
    files = [("a.png", _png("red")), ("b.png", _png("red")), ("c.png", _png("red"))]
    data = load_data(files + [("labels.csv", b"image,label\nc.png,2\na.png,1\nb.png,0\n")], IMAGE_INFO)
    assert data.names == ["a.png", "b.png", "c.png"] and data.labels.tolist() == [1, 0, 2]
    with pytest.raises(XaiError, match=r"neither classes of this model"):
        load_data(files + [("labels.csv", b"file,label\na.png,dog\nb.png,cat\nc.png,zebra\n")], IMAGE_INFO)
    with pytest.raises(XaiError, match=r"no label for 1 image\(s\), e.g. \['c.png'\]"):
        load_data(files + [("labels.csv", b"file,label\na.png,dog\nb.png,cat\n")], IMAGE_INFO)
    mixed = load_data(files + [("labels.csv", b"file,label\na.png,dog\nb.png,cat\nc.png,owl\n")], IMAGE_INFO)
    assert mixed.labels.tolist() == [1, 0, 2]


def test_labels_mixing_names_and_indices_is_refused():
    # names and indices in one column are ambiguous ('0' could be a class named '0'): refuse, name the values
    files = [("a.png", _png("red")), ("b.png", _png("red"))]
    with pytest.raises(XaiError, match=r"mix class names \(\['dog'\]\) and class indices \(\['0'\]\)"):
        load_data(files + [("labels.csv", b"image,label\na.png,dog\nb.png,0\n")], IMAGE_INFO)


# ---------------------------------------------------------------------------------------- 6. what users see


@pytest.mark.parametrize("depth", [5, 8])
def test_surrogate_tree_labels_do_not_overlap_at_any_depth(depth):
    """Estimate each label's box in pixels (the figure at 1,000 px wide, 6.6 px per character at 11 px) and check
    that no two boxes intersect: the old layout (leaves side by side, labels under the nodes) failed this."""
    from xai_core.demo import load_demo_data
    from xai_core.surrogate import SurrogateSettings, fit_surrogate
    from xai_core.viz.tree import tree_figure

    model = load_demo_model("breast_cancer")
    result = fit_surrogate(model, load_demo_data("breast_cancer", model, split="train"),
                           SurrogateSettings(max_depth=depth, min_samples_leaf=2))
    assert result.tree.get_depth() == depth and result.tree.get_n_leaves() >= 12
    fig = tree_figure(result)
    width_px, height_px = 1000, fig.layout.height - 110
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    boxes = []
    for trace in fig.data:
        if trace.text is None:
            continue
        for x, y, text in zip(trace.x, trace.y, trace.text):
            px, py = (x - x0) / (x1 - x0) * width_px, (y - y1) / (y0 - y1) * height_px  # from the top left
            w, h = len(re.sub("<[^>]+>", "", text)) * 6.6, 14
            if trace.textposition == "middle right":
                boxes.append((px + 8, px + 8 + w, py - h / 2, py + h / 2))
            elif trace.textposition == "top right":
                boxes.append((px, px + w, py - 8 - h, py - 8))
            elif trace.textposition == "top left":
                boxes.append((px - w, px, py - 8 - h, py - 8))
            else:  # below the node, centred (the old layout)
                boxes.append((px - w / 2, px + w / 2, py + 8, py + 8 + h))
    overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]]
    assert not overlaps, overlaps[:3]


def test_header_facts_are_written_out_in_full():
    at = run_app(demo_key="digits")
    facts = next(m.value for m in at.markdown if "Format" in m.value)
    assert "torch.export" in facts and "1×32×32 image" in facts
    assert not [m for m in at.metric if m.label in ("Format", "Input")]  # st.metric cuts long values short


def test_navigation_and_messages_use_icons_that_need_no_emoji_font():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # pictographs, arrows like ⬇, ⚠ and the emoji presentation selector need an emoji font; ✓ and ✗ do not
    emoji = re.compile("[\U0001F000-\U0001FAFF\u2B00-\u2BFF\u26A0\uFE0F]")
    for path in [root / "dashboard.py", *sorted((root / "views").glob("*.py")), *sorted((root / "ui").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg in ("icon", "page_icon") and isinstance(node.value, ast.Constant):
                assert str(node.value.value).startswith(":material/"), f"{path.name}: icon {node.value.value!r}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not emoji.search(node.value), f"{path.name}: emoji in {node.value[:60]!r}"


def test_uploads_survive_a_reload_of_the_same_tab():
    frame = pd.read_csv(ASSETS / "wine_test.csv").rename(columns={"target": "cultivar"})
    first = run_app(**_wine_upload(frame))
    first.selectbox(key="target_select").set_value("cultivar").run()
    token = first.query_params["upload"]
    token = token[0] if isinstance(token, list) else token
    assert token and len(token) >= 20
    accuracy = _accuracy(first)

    from streamlit.testing.v1 import AppTest

    from tests.apptest import DASHBOARD

    reloaded = AppTest.from_file(DASHBOARD, default_timeout=180)
    reloaded.query_params["upload"] = token
    reloaded.run()
    assert not reloaded.exception, reloaded.exception
    assert reloaded.session_state["model_upload"]["name"] == "wine.pt2"
    assert _accuracy(reloaded) == pytest.approx(accuracy)
    assert any("Restored after the reload" in c.value for c in reloaded.caption)
    stranger = AppTest.from_file(DASHBOARD, default_timeout=180)
    stranger.query_params["upload"] = "not-a-token"
    stranger.run()
    assert "model_upload" not in stranger.session_state  # an unknown token restores nothing: the demo shows

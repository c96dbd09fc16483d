"""Every model format round-trips through `load_model`; unsafe files are refused and never executed."""

import io
import json
import os
import zipfile

import pytest
import torch
import torchvision
from torch import nn

from xai_core import XaiError
from xai_core.loading import load_model, sniff_model_format


class TinyCNN(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def export_bytes(model, example, dynamic=True):
    model.eval()
    shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic else None
    program = torch.export.export(model, (example,), dynamic_shapes=shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_export_round_trip_keeps_layers_and_outputs():
    model = TinyCNN().eval()
    data = export_bytes(model, torch.randn(2, 3, 16, 16))
    loaded = load_model(data, "tiny.pt2", sidecar=json.dumps({"class_names": ["a", "b", "c"]}))
    assert loaded.format == "export"
    assert loaded.info.input_shape == (3, 16, 16) and loaded.info.input_kind == "image"
    assert loaded.info.class_names == ("a", "b", "c")
    assert loaded.supports_layer_methods
    assert loaded.module.get_submodule("features.0") is not None
    assert loaded.layer_types["features.0"] == "Conv2d"
    x = torch.randn(5, 3, 16, 16)
    torch.testing.assert_close(loaded.module(x), model(x), atol=1e-5, rtol=1e-5)


def test_export_of_tabular_regression_is_inferred():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    loaded = load_model(export_bytes(model, torch.randn(3, 4)), "reg.pt2")
    assert loaded.info.input_kind == "tabular" and loaded.info.task == "regression"
    assert loaded.info.feature_names == ("x0", "x1", "x2", "x3")


def test_export_with_two_inputs_is_refused():
    class TwoInputs(nn.Module):
        def forward(self, a, b):
            return a + b

    program = torch.export.export(TwoInputs(), (torch.randn(2, 3), torch.randn(2, 3)))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    with pytest.raises(XaiError, match="2 inputs"):
        load_model(buffer.getvalue(), "two.pt2")


def _rewrite_model_json(data: bytes, change) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename.endswith("models/model.json"):
                program = json.loads(content)
                change(program)
                content = json.dumps(program).encode()
            target.writestr(item, content)
    return out.getvalue()


def test_export_with_guard_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "guard_ran"
    data = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
    evil = _rewrite_model_json(data, lambda p: p.__setitem__("guards_code", [f"open({str(marker)!r}, 'w')"]))
    with pytest.raises(XaiError, match="guard code"):
        load_model(evil, "evil.pt2")
    assert not marker.exists()


def test_export_calling_a_python_function_is_refused():
    data = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))

    def retarget(program):
        for node in program["graph_module"]["graph"]["nodes"]:
            node["target"] = "torch.os.system"

    with pytest.raises(XaiError, match="other than tensor operators"):
        load_model(_rewrite_model_json(data, retarget), "evil.pt2")


def test_export_with_code_in_a_shape_expression_is_refused():
    data = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))

    def inject(program):
        program["range_constraints"] = {"__import__('os').system('true')": {"min_val": 1, "max_val": 2}}

    with pytest.raises(XaiError, match="shape expressions"):
        load_model(_rewrite_model_json(data, inject), "evil.pt2")


def test_state_dict_with_architecture_and_classes_from_weights():
    weights = torchvision.models.resnet18(num_classes=7).state_dict()
    loaded = load_model(saved(weights), "r18.pth", overrides={"architecture": "resnet18"})
    assert loaded.format == "state_dict" and loaded.info.n_outputs == 7
    assert loaded.info.input_shape == (3, 224, 224)
    torch.testing.assert_close(loaded.module.state_dict()["fc.weight"], weights["fc.weight"])


def test_state_dict_architecture_is_detected_and_checkpoint_unwrapped():
    weights = torchvision.models.mobilenet_v3_small(num_classes=5).state_dict()
    checkpoint = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in weights.items()}}
    loaded = load_model(saved(checkpoint), "ckpt.pt")
    assert loaded.info.architecture == "mobilenet_v3_small" and loaded.info.n_outputs == 5


def test_safetensors_state_dict():
    from safetensors.torch import save

    weights = torchvision.models.resnet18(num_classes=3).state_dict()
    data = save({k: v.contiguous() for k, v in weights.items()})
    assert sniff_model_format(data) == "safetensors"
    loaded = load_model(data, "r18.safetensors", overrides={"architecture": "resnet18"})
    assert loaded.info.n_outputs == 3


def test_state_dict_for_another_architecture_says_what_differs():
    weights = torchvision.models.resnet18(num_classes=3).state_dict()
    with pytest.raises(XaiError, match="do not fit resnet34.*resnet18"):
        load_model(saved(weights), "r18.pth", overrides={"architecture": "resnet34"})


def test_torchscript_loads_with_a_note_on_layer_methods():
    model = TinyCNN().eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    loaded = load_model(buffer.getvalue(), "tiny.pt", overrides={"input_shape": [3, 16, 16]})
    assert loaded.format == "torchscript" and not loaded.supports_layer_methods
    assert "Grad-CAM" in loaded.notes[0]
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.module(x), model(x))


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "unpickled"
    with pytest.raises(XaiError, match="pickled Python object"):
        load_model(saved({"weights": _Marker(str(marker))}), "evil.pt")
    assert not marker.exists()


def test_full_module_pickle_is_refused_by_default_and_allowed_by_operator():
    data = saved(TinyCNN())
    with pytest.raises(XaiError, match="torch.export"):
        load_model(data, "model.pt", overrides={"input_shape": [3, 8, 8]})
    loaded = load_model(data, "model.pt", overrides={"input_shape": [3, 8, 8]}, allow_pickle=True)
    assert loaded.format == "pickle"


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, this is text", "not a model file"),
    (b"PK\x03\x04garbage", "not a model file"),
])
def test_unreadable_files(data, message):
    with pytest.raises(XaiError, match=message):
        load_model(data, "x.pt")


def test_sidecar_errors_name_the_field():
    data = export_bytes(TinyCNN(), torch.randn(2, 3, 8, 8))
    with pytest.raises(XaiError, match="Unknown metadata field"):
        load_model(data, "m.pt2", sidecar=b'{"clases": ["a"]}')
    with pytest.raises(XaiError, match="not valid JSON"):
        load_model(data, "m.pt2", sidecar=b"{oops")
    with pytest.raises(XaiError, match="3 class scores but 2 class names"):
        load_model(data, "m.pt2", sidecar=b'{"class_names": ["a", "b"]}')


def test_wrong_input_shape_is_reported():
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(5, 2))), buffer)
    with pytest.raises(XaiError, match=r"failed on a batch of shape \[2, 7\] \(input shape from the page or sidecar\)"):
        load_model(buffer.getvalue(), "ts.pt", overrides={"input_kind": "tabular", "input_shape": [7]})


def test_hash_identifies_content_and_metadata():
    data = export_bytes(TinyCNN(), torch.randn(2, 3, 8, 8))
    a = load_model(data, "m.pt2")
    b = load_model(data, "renamed.pt2", overrides={"name": "m"})
    c = load_model(data, "m.pt2", sidecar={"class_names": ["x", "y", "z"]})
    assert a.sha256 == b.sha256 != c.sha256


# ---------------------------------------------------------------------------------------- limits and metadata boundaries


def test_model_size_limit_at_and_one_past(monkeypatch):
    from xai_core import loading

    data = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
    monkeypatch.setattr(loading, "MAX_MODEL_BYTES", len(data))
    assert load_model(data, "m.pt2").info.n_outputs == 2
    monkeypatch.setattr(loading, "MAX_MODEL_BYTES", len(data) - 1)
    with pytest.raises(XaiError, match=r"'m.pt2' is \d+ MiB; the limit is \d+ MiB"):
        load_model(data, "m.pt2")


def test_export_archive_size_limit_at_and_one_past(monkeypatch):
    from xai_core import loading

    data = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    monkeypatch.setattr(loading, "MAX_ARCHIVE_UNCOMPRESSED_BYTES", unpacked)
    assert load_model(data, "m.pt2").format == "export"
    monkeypatch.setattr(loading, "MAX_ARCHIVE_UNCOMPRESSED_BYTES", unpacked - 1)
    with pytest.raises(XaiError, match="archive unpacks to 0 MiB, over the 0 MiB limit"):  # the limit in force
        load_model(data, "m.pt2")


@pytest.fixture(scope="module")
def two_output_table_model():
    return export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))


def test_class_names_must_number_exactly_the_outputs(two_output_table_model):
    data = two_output_table_model
    assert load_model(data, "m.pt2", sidecar={"class_names": ["a", "b"]}).info.class_names == ("a", "b")
    for names in (["a"], ["a", "b", "c"]):
        with pytest.raises(XaiError, match=rf"returns 2 class scores but {len(names)} class names"):
            load_model(data, "m.pt2", sidecar={"class_names": names})
    assert load_model(data, "m.pt2").info.class_names == ("class 0", "class 1")  # none given: defaults


def test_feature_names_must_number_exactly_the_inputs(two_output_table_model):
    data = two_output_table_model
    assert load_model(data, "m.pt2", sidecar={"feature_names": ["u", "v", "w"]}).info.feature_names == ("u", "v", "w")
    for names in (["u", "v"], ["u", "v", "w", "z"]):
        with pytest.raises(XaiError, match=rf"takes 3 features but {len(names)} feature names"):
            load_model(data, "m.pt2", sidecar={"feature_names": names})


def test_one_output_is_regression_and_a_classifier_needs_two():
    one = export_bytes(nn.Sequential(nn.Linear(3, 1)), torch.randn(2, 3))
    assert load_model(one, "r.pt2").info.task == "regression"
    with pytest.raises(XaiError, match="A classifier must return one logit per class"):
        load_model(one, "r.pt2", sidecar={"task": "classification"})
    two = export_bytes(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
    assert load_model(two, "c.pt2").info.task == "classification"
    with pytest.raises(XaiError, match="A regression model must return one value per row; this one returns 2"):
        load_model(two, "c.pt2", sidecar={"task": "regression"})


class _Block(nn.Module):
    """A residual block calling one ReLU module twice, as torchvision's ResNet blocks do: unflattening names the
    second call `relu@1` and renames it back after generating the block's code."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


def test_a_module_called_twice_runs_from_the_unflattened_pt2_as_in_eager():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Block(), _Block(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).eval()
    x = torch.randn(3, 3, 8, 8)
    model = load_model(export_bytes(net, x), "shared.pt2")
    assert not any(getattr(m, "_run_with_interpreter", False) for m in model.module.modules())  # generated code runs
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), net(x))

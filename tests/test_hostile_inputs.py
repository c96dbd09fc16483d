"""A table of hostile and broken uploads, each run through the real loading path and through the page.

Every case must end in a clear message (or a sensible conversion), leave the app running, and execute nothing.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from tests.apptest import run_app, upload_state
from xai_core import XaiError
from xai_core.data_loading import load_data, read_table
from xai_core.demo import ASSETS, demo_model_bytes
from xai_core.loading import load_model

MARKER = Path("/tmp/xai_dashboard_hostile_marker")


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _export(model, example, dynamic=True) -> bytes:
    shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic else None
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model.eval(), (example,), dynamic_shapes=shapes), buffer)
    return buffer.getvalue()


def _edit_program(data: bytes, change) -> bytes:
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename.endswith("models/model.json"):
                program = json.loads(content)
                change(program)
                content = json.dumps(program).encode()
            target.writestr(item, content)
    return out.getvalue()


def _image(size=(32, 32), mode="RGB", color=(120, 30, 200), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class _TwoInputs(nn.Module):
    def forward(self, a, b):
        return a + b


def _two_input_program() -> bytes:
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(_TwoInputs(), (torch.randn(2, 3), torch.randn(2, 3))), buffer)
    return buffer.getvalue()


def _torchscript_cnn() -> bytes:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model.eval()), buffer)
    return buffer.getvalue()


def _wine_csv_variant(transform) -> bytes:
    frame = read_table((ASSETS / "wine_test.csv").read_bytes(), "wine.csv")
    return transform(frame)


def _damaged_zip() -> bytes:
    archive = bytearray(_zip({"3/a.png": _image(mode="L", color=3) * 3}))
    archive[40] ^= 0xFF  # a byte of the member's compressed data
    return bytes(archive)


def _big_sparse_png() -> bytes:
    side = 8000  # 64 megapixels declared, a tiny 1-bit file
    return _image((side, side), mode="1", color=0)


@dataclass
class Case:
    name: str
    model: str | tuple = "wine"  # a demo key, or (bytes, filename, sidecar bytes or None)
    data: list = field(default_factory=list)  # (name, bytes)
    expect: str | None = None  # regex of the error message; None: loads fine
    note: str | None = None  # text a successful conversion must mention


def _sample_tabular(model_key: str):
    return [("rows.csv", (ASSETS / f"{model_key}_test.csv").read_bytes())]


def cases() -> list[Case]:
    wine_bytes, wine_sidecar = demo_model_bytes("wine")
    pt2 = _export(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
    r18 = _saved(torchvision.models.resnet18(num_classes=3).state_dict())
    return [
        # hostile or wrong model files
        Case("pickle that runs code", (_saved({"w": _RunsCode()}), "evil.pt", None), expect="pickled Python object"),
        Case("whole pickled nn.Module", (_saved(nn.Linear(3, 2)), "model.pt", None), expect="torch.export"),
        Case(".pt2 with guard code", (_edit_program(pt2, lambda p: p.__setitem__("guards_code", [f"__import__('os').system('touch {MARKER}')"])), "g.pt2", None), expect="guard code"),
        Case(".pt2 calling os.system", (_edit_program(pt2, lambda p: [n.__setitem__("target", "torch.os.system") for n in p["graph_module"]["graph"]["nodes"]]), "s.pt2", None), expect="other than tensor operators"),
        Case(".pt2 with code in a shape expression", (_edit_program(pt2, lambda p: p.__setitem__("range_constraints", {f"__import__('os').system('touch {MARKER}')": {"min_val": 1, "max_val": 2}})), "e.pt2", None), expect="shape expressions"),
        Case(".pt2 of a model with two inputs", (_two_input_program(), "two.pt2", None), expect="takes 2 inputs"),
        Case("truncated .pt2", (wine_bytes[: len(wine_bytes) // 2], "cut.pt2", wine_sidecar), expect="not a model file this dashboard reads"),
        Case("empty model file", (b"", "empty.pt", None), expect="empty"),
        Case("text file named .pt", (b"this is not a model", "model.pt", None), expect="not a model file"),
        Case("state_dict for another architecture", (r18, "r18.pth", json.dumps({"architecture": "resnet50"}).encode()), expect="do not fit resnet50"),
        Case("sidecar that is not JSON", (wine_bytes, "wine.pt2", b"{class_names: oops"), expect="not valid JSON"),
        Case("class names that do not fit the model", (wine_bytes, "wine.pt2", b'{"class_names": ["a", "b"]}'), expect="3 class scores but 2 class names"),
        Case("TorchScript model (layer methods unavailable)", (_torchscript_cnn(), "ts.pt", b'{"input_shape": [1, 32, 32]}'), data=[("x.png", _image(mode="L", color=7))], note="TorchScript hides its layers"),
        # images
        Case("zip with path traversal names", "digits", [("t.zip", _zip({"../../../../tmp/3/a.png": _image(mode="L", color=3)}))], expect="unsafe paths"),
        Case("zip with a class folder one past the last class", "digits", [("t.zip", _zip({"9/a.png": _image(mode="L", color=9), "10/b.png": _image(mode="L", color=10)}))], expect=r"\['10'\] are neither classes .* indices 0…9"),
        Case("zip with a damaged member", "digits", [("t.zip", _damaged_zip())], expect=r"3/a.png is damaged"),
        Case("zip bomb", "digits", [("bomb.zip", _zip({"3/a.png": b"\x00" * (80 * 1024**2)}))], expect=r"looks like a zip bomb \(3/a.png expands \d+×\)"),
        Case("decompression-bomb image", "digits", [("huge.png", _big_sparse_png())], expect="8000×8000 pixels, over the limit of 40 megapixels"),
        Case("truncated PNG", "digits", [("cut.png", _image()[:70])], expect="'cut.png' is damaged or truncated"),
        Case("truncated JPEG", "digits", [("cut.jpg", _image(fmt="JPEG")[:300])], expect="'cut.jpg' is damaged or truncated"),
        Case("text file with an image extension", "digits", [("fake.png", b"hello, I am text")], expect="not an image"),
        Case("empty image file", "digits", [("empty.png", b"")], expect="empty"),
        Case("16-bit greyscale PNG", "digits", [("deep.png", _image(mode="I;16", color=50000))], note="16-bit"),
        Case("CMYK JPEG", "digits", [("print.jpg", _image(mode="CMYK", color=(0, 200, 0, 0), fmt="JPEG"))], note="greyscale"),
        Case("RGBA PNG", "digits", [("alpha.png", _image(mode="RGBA", color=(0, 0, 0, 0)))], note="white background"),
        Case("image far larger than the model's input", "digits", [("big.png", _image((4000, 3000), mode="L", color=5))], note="centre-cropped"),
        Case("images for a tabular model", "wine", [("x.png", _image())], expect="takes a table"),
        # tables
        Case("table for an image model", "digits", [("t.csv", b"a,b\n1,2\n")], expect="takes images"),
        Case("CSV with the wrong delimiter", "wine", [("t.csv", _wine_csv_variant(lambda f: f.to_csv(index=False, sep=" ").encode()))], expect="single column: is the delimiter right"),
        Case("CSV with a wrong column count", "wine", [("t.csv", b"alcohol,malic_acid\n1,2,3\n")], expect="line 2 has 3 fields"),
        Case("CSV with non-numeric values", "wine", [("t.csv", _wine_csv_variant(lambda f: f.assign(ash="high").to_csv(index=False).encode()))], expect="'ash' has non-numeric values"),
        Case("CSV with NaN", "wine", [("t.csv", _wine_csv_variant(lambda f: f.assign(hue=np.nan).to_csv(index=False).encode()))], expect="or infinite values"),
        Case("CSV with inf", "wine", [("t.csv", _wine_csv_variant(lambda f: f.assign(hue=np.inf).to_csv(index=False).encode()))], expect="or infinite values"),
        Case("CSV with a label equal to the number of classes", "wine", [("t.csv", _wine_csv_variant(lambda f: f.assign(target=[3] + [0] * (len(f) - 1)).to_csv(index=False).encode()))], expect=r"\['3'\] are neither classes of this model .* indices 0…2"),
        Case("CSV with labels given as class indices", "wine", [("t.csv", _wine_csv_variant(lambda f: f.assign(target=f["target"].str[-1]).to_csv(index=False).encode()))]),
        Case("CSV with duplicate columns", "wine", [("t.csv", b"alcohol,alcohol\n1,2\n")], expect="duplicate column names"),
        Case("CSV with missing columns", "wine", [("t.csv", _wine_csv_variant(lambda f: f.drop(columns=["hue", "proline"]).to_csv(index=False).encode()))], expect=r"Missing: \['hue', 'proline'\]"),
        Case("CSV with another column order", "wine", [("t.csv", _wine_csv_variant(lambda f: f[list(f.columns[::-1])].to_csv(index=False).encode()))], note="reordered"),
        Case("Parquet that is not Parquet", "wine", [("t.parquet", b"alcohol,hue\n1,2\n")], expect="Parquet"),
        Case("empty CSV", "wine", [("t.csv", b"")], expect="empty"),
    ]


CASES = cases()


def _model_bytes(case: Case):
    if isinstance(case.model, str):
        data, sidecar = demo_model_bytes(case.model)
        return data, f"{case.model}.pt2", sidecar
    return case.model


def _load_through_core(case: Case):
    data, name, sidecar = _model_bytes(case)
    model = load_model(data, name, sidecar=sidecar)
    notes = list(model.notes)
    if case.data:
        notes += load_data(case.data, model.info).notes
    return notes


def test_the_table_has_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_core(case):
    MARKER.unlink(missing_ok=True)
    if case.expect:
        with pytest.raises(XaiError, match=case.expect):
            _load_through_core(case)
    else:
        notes = _load_through_core(case)
        if case.note:
            assert any(case.note in n for n in notes), notes
    assert not MARKER.exists(), "an upload ran code"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_page(case):
    MARKER.unlink(missing_ok=True)
    data, name, sidecar = _model_bytes(case)
    at = run_app(**upload_state(data, name, sidecar, case.data))
    assert not at.exception, at.exception
    assert at.title[0].value == "Model & data"  # the page is still there
    shown = [e.value for e in at.error]
    if case.expect:
        import re

        assert any(re.search(case.expect, message) for message in shown), shown
    else:
        assert not shown, shown
        if case.note:
            texts = [c.value for c in at.caption] + [i.value for i in at.info]
            assert any(case.note in t for t in texts), texts
    assert not MARKER.exists(), "an upload ran code"

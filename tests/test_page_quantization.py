"""The Quantization page in AppTest on an image demo, a tabular demo, and a TorchScript upload."""

import io
import json

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from tests.apptest import error_messages, open_page, upload_state


def run_page(**state) -> AppTest:
    return open_page("views/quantization.py", **state)


def table(at: AppTest):
    return next(df.value for df in at.dataframe if "variant" in df.value.columns)


@pytest.mark.parametrize("key, drift_metric", [("shapes", "Grad-CAM rank correlation"),
                                               ("wine", "SHAP rank correlation")])
def test_page_compares_the_default_variants(key, drift_metric):
    at = run_page(demo_key=key)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    frame = table(at)
    expected = ["fp32", "fp16", "bf16", "w8 per-channel", "w4 per-channel", "int8 dynamic"]
    if key == "shapes":
        expected.append("int8 static")
    assert list(frame["variant"]) == expected
    assert frame.loc[frame["variant"] == "fp16", "agreement with fp32"].item() >= 0.99
    assert frame[drift_metric].iloc[1:].min() > 0.5
    assert len(at.get("plotly_chart")) >= 3  # trade-offs, bits curve, drift
    assert any("Does the quantized model look at the same evidence" in c.value for c in at.caption)


def test_small_model_is_told_int8_does_not_speed_it_up():
    at = run_page(demo_key="wine")
    speed = [w.value for w in at.warning] + [i.value for i in at.info]
    assert any("int8 dynamic" in text and ("slower" in text or "no faster" in text) for text in speed), speed


def test_pruning_and_variant_choice_rerun_the_comparison():
    at = run_page(demo_key="breast_cancer")
    at.multiselect(key="q_variants").set_value(["w4 per-tensor", "int8 dynamic"])
    at.slider(key="q_sparsity").set_value(50).run()
    assert not at.exception, at.exception
    assert list(table(at)["variant"]) == ["fp32", "fp32 + 50% pruned", "w4 per-tensor + 50% pruned",
                                          "int8 dynamic + 50% pruned"]


def test_torchscript_upload_explains_why_int8_is_missing():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    csv = "a,b,c,d\n" + "\n".join(f"{i},{i % 3},{i % 5},{i % 7}" for i in range(40))
    state = upload_state(buffer.getvalue(), "m.pt", data=[("rows.csv", csv.encode())],
                         sidecar=json.dumps({"input_shape": [4], "input_kind": "tabular"}).encode())
    at = run_page(**state)
    assert not at.exception, at.exception
    assert any("int8 dynamic" in w.value and "TorchScript" in w.value for w in at.warning)
    assert "fp16" in list(table(at)["variant"])

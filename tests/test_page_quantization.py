"""The Quantization page in AppTest on an image demo, a tabular demo, and a TorchScript upload."""

import io
import json

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from torch import nn

import xai_core.quantization as quantization
from xai_core import XaiError
from tests.apptest import DASHBOARD, error_messages, open_page, upload_state
from tests.test_loading import TinyCNN


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


def _scripted_cnn_upload() -> dict:
    """A small CNN saved with torch.jit.script, and six PNG images (the issue's TorchScript image upload)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyCNN().eval()), buffer)
    rng = np.random.default_rng(0)
    images = []
    for i in range(6):
        png = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(png, format="PNG")
        images.append((f"{i}.png", png.getvalue()))
    sidecar = json.dumps({"input_shape": [3, 16, 16], "class_names": ["a", "b", "c"]}).encode()
    return upload_state(buffer.getvalue(), "cnn_scripted.pt", data=images, sidecar=sidecar)


def test_torchscript_image_model_gets_half_and_rounded_weights_and_drift_without_grad_cam():
    at = run_page(**_scripted_cnn_upload())
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    frame = table(at)
    assert list(frame["variant"]) == ["fp32", "fp16", "bf16", "w8 per-channel", "w4 per-channel"]
    for label in ("int8 dynamic", "int8 static"):
        assert any(label in w.value and "not for TorchScript" in w.value for w in at.warning), label
    assert any("Grad-CAM drift is not for TorchScript" in i.value and "Saliency" in i.value for i in at.info)
    assert frame["Saliency rank correlation"].iloc[1:].min() > 0.5
    assert not at.get("progress")  # every progress bar emptied


def test_progress_bar_is_emptied_when_the_comparison_fails(monkeypatch):
    def failing(*args, **kwargs):
        raise XaiError("Planted failure while explaining fp32.")

    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setattr(quantization.compare, "drift_reference", failing)
    at = run_page(demo_key="wine")
    assert not at.exception, at.exception
    assert any("Planted failure" in e for e in error_messages(at))
    assert not at.get("progress")


def test_adding_a_variant_computes_only_that_variant(monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    prepared, compared = [], []
    prepare, compare = quantization.prepare_comparison, quantization.compare._untimed
    monkeypatch.setattr(quantization, "prepare_comparison", lambda *a, **k: prepared.append(1) or prepare(*a, **k))
    monkeypatch.setattr(quantization.compare, "_untimed",
                        lambda context, spec, *a, **k: compared.append(spec.label) or compare(context, spec, *a, **k))
    at = AppTest.from_file(DASHBOARD, default_timeout=300)
    at.session_state["demo_key"] = "wine"
    at.session_state["q_variants"] = ["w4 per-tensor"]
    at.run()
    at.switch_page("views/quantization.py").run()
    assert not at.exception, at.exception
    assert sorted(compared) == ["fp32", "w4 per-tensor"] and len(prepared) == 1  # side by side: in any order
    at.multiselect(key="q_variants").set_value(["w4 per-tensor", "w8 per-channel"]).run()
    assert not at.exception, at.exception
    assert sorted(compared[:2]) == ["fp32", "w4 per-tensor"] and compared[2:] == ["w8 per-channel"]  # only the new one
    assert len(prepared) == 1
    assert list(table(at)["variant"]) == ["fp32", "w4 per-tensor", "w8 per-channel"]
    at.multiselect(key="q_variants").set_value(["w8 per-channel"]).run()
    assert len(compared) == 3  # removing one computes nothing
    assert list(table(at)["variant"]) == ["fp32", "w8 per-channel"]


# ---------------------------------------------------------------------------------------- the compression audit


def test_audit_on_a_table_shows_verdict_flip_sets_groups_and_scorecard():
    at = run_page(demo_key="breast_cancer")
    at.multiselect(key="q_variants").set_value(["w2 per-tensor", "int8 dynamic"])
    at.toggle(key="q_audit").set_value(True).run()
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    text = " ".join(m.value for m in at.markdown)
    assert "holds down to" in text or "holds at no tested bit width" in text
    assert "most faithful method for this model" in text
    summary = next(df.value for df in at.dataframe if "flipped share" in df.value.columns and "variant" in df.value.columns)
    assert list(summary["variant"]) == ["w2 per-tensor", "int8 dynamic"]
    assert "real int8" in " ".join(summary["explained with"]) or "twin" in " ".join(summary["explained with"])
    flips = next(df.value for df in at.dataframe if "in_audit_set" in df.value.columns)
    assert flips["rank"].tolist() == list(range(1, len(flips) + 1))
    assert any(d.proto.label.startswith("Flip sets") for d in at.get("download_button"))
    at.radio(key="q_audit_method").set_value("perturbation").run()
    assert not at.exception, at.exception
    summary = next(df.value for df in at.dataframe if "flipped share" in df.value.columns and "variant" in df.value.columns)
    assert "leave-one-feature-out on the real int8 model" in list(summary["explained with"])


def test_audit_error_is_shown_and_the_page_keeps_running(monkeypatch):
    import views.quantization  # noqa: F401  (the page module reads the name at run time)

    def broken(*args, **kwargs):
        raise XaiError("The audit cannot run on this model: planted for the test.")

    monkeypatch.setattr("xai_core.quantization.audit.audit_variants", broken)
    at = run_page(demo_key="wine")
    at.toggle(key="q_audit").set_value(True).run()
    assert not at.exception, at.exception
    assert any("planted for the test" in e for e in error_messages(at)), error_messages(at)
    assert table(at) is not None  # the comparison above is still on the page


def test_audit_on_images_shows_maps_beside_fp32_and_mean_maps():
    at = run_page(demo_key="shapes", q_variants=["w3 per-channel"], q_audit=True, q_audit_n=8)
    assert not at.exception, at.exception
    assert not error_messages(at), error_messages(at)
    captions = " ".join(c.value for c in at.caption)
    assert "fp32's Grad-CAM (left) and w3 per-channel's (right)" in captions
    assert "Mean maps of the class that drifted most" in captions
    summary = next(df.value for df in at.dataframe if "flipped share" in df.value.columns and "variant" in df.value.columns)
    assert summary["flipped"].item() > 0  # 3-bit weights flip some scenes

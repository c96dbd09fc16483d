"""One browser session's uploads are never visible to another; the shared cached model is never changed."""

import json

import torch

from tests.apptest import run_app, upload_state
from xai_core.demo import ASSETS, demo_model_bytes


def test_an_upload_stays_in_its_own_session():
    model_bytes, sidecar = demo_model_bytes("wine")
    sidecar = json.dumps({**json.loads(sidecar), "name": "private-model"}).encode()
    table = (ASSETS / "wine_test.csv").read_bytes()
    first = run_app(**upload_state(model_bytes, "private-model.pt2", sidecar, [("secret.csv", table)]))
    assert not first.exception and any("private-model" in m.value for m in first.markdown)
    second = run_app()  # another browser session on the same server process (caches are process-wide)
    assert not second.exception
    assert "model_upload" not in second.session_state and "data_upload" not in second.session_state
    shown = " ".join(m.value for m in second.markdown)
    assert "private-model" not in shown and "shapes" in shown


def test_explaining_leaves_the_cached_model_unchanged():
    from ui.state import cached_demo_model

    at = run_app(demo_key="shapes")
    at.switch_page("views/image_explanations.py")
    model = cached_demo_model("shapes")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    at.run()
    assert not at.exception
    assert all(torch.equal(before[k], v) for k, v in model.module.state_dict().items())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.module.modules())
    assert not model.module.training

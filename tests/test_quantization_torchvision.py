"""Int8 of torchvision models whose code reads the batch size (reshape / view): exported with a symbolic batch, the
lifted graph and every int8 model built from it run at any batch size, not only the example's."""

import pytest
import torch
import torchvision
from torch import nn

from tests.test_loading import export_bytes, saved
from xai_core import XaiError
from xai_core.loading import load_model
from xai_core.quantization import BuildContext, VariantSpec, build_variant


def _shufflenet():
    net = torchvision.models.shufflenet_v2_x1_0(num_classes=5).eval()  # channel shuffle: x.view(batch, groups, …)
    return load_model(saved(net.state_dict()), "shufflenet.pt",
                      overrides={"architecture": "shufflenet_v2_x1_0", "input_shape": [3, 32, 32]}), net


def _vit():
    # vit_b_16 as torchvision builds it, on 32×32 images (2×2 patches of 16): `x.reshape(n, hidden, n_h * n_w)`.
    net = torchvision.models.vit_b_16(image_size=32, num_classes=5).eval()
    nn.init.normal_(net.heads.head.weight, std=0.5)  # torchvision starts the head at zero: every answer would tie
    return load_model(export_bytes(net, torch.randn(2, 3, 32, 32)), "vit.pt2"), net


@pytest.fixture(scope="module", params=["shufflenet_v2_x1_0", "vit_b_16"])
def model(request):
    """The loaded model, the torchvision module it came from, and one build context (lifted once for all tests)."""
    torch.manual_seed(0)
    loaded, net = (_shufflenet if request.param == "shufflenet_v2_x1_0" else _vit)()
    return loaded, net, BuildContext(loaded, calibration=torch.randn(8, 3, 32, 32))


@pytest.mark.slow
def test_lifted_graph_keeps_the_batch_symbolic(model):
    loaded, net, context = model
    lifted = context.lifted().module  # exported at batch 2
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(lifted(x), net(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["int8-dynamic", "int8-static", "w4"])
@pytest.mark.slow
def test_int8_and_rounded_weights_run_at_batch_1_and_5(model, kind):
    loaded, net, context = model
    spec = VariantSpec("weights", 4) if kind == "w4" else VariantSpec(kind)
    variant = build_variant(loaded, spec, context=context)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        one, five, exact = variant.model.module(x[:1]), variant.model.module(x), net(x)
    assert one.shape == (1, 5) and five.shape == (5, 5) and one.dtype == five.dtype == torch.float32
    if kind == "int8-static":
        torch.testing.assert_close(one, five[:1])  # static int8 answers each input on its own
    # The quantized answers stay near fp32's (random weights: a loose bound that a broken graph would not meet).
    assert nn.functional.cosine_similarity(five.flatten(), exact.flatten(), dim=0) > 0.8
    if variant.twin is not None:
        with torch.no_grad():
            assert variant.twin.module(x[:1]).shape == (1, 5)


def test_a_model_that_fixes_its_batch_says_so():
    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 2)

        def forward(self, x):
            return self.fc(x.reshape(2, 12))  # the batch size is written into the model

    loaded = load_model(export_bytes(FixedBatch(), torch.randn(2, 3, 2, 2), dynamic=False), "fixed.pt2")
    with pytest.raises(XaiError, match="batch"):
        build_variant(loaded, VariantSpec("int8-dynamic"))

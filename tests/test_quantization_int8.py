"""Real int8: its fake-quant twin holds exactly the int8 weights; the graph is lifted once per comparison."""

import numpy as np
import pytest
import torch
from torch import nn

import xai_core.quantization.lifting as lifting
from xai_core.demo import load_demo_data, load_demo_model
from xai_core.evaluation import model_inputs
from xai_core.quantization import (VariantSpec, build_twin, build_variant, compare_variants, dequantized_weights,
                                   prepare_comparison)


@pytest.fixture(scope="module")
def demo():
    cache = {}

    def get(key):
        if key not in cache:
            model = load_demo_model(key)
            data = load_demo_data(key, model)
            cache[key] = (model, data, model_inputs(model, data))
        return cache[key]

    return get


def _int8_layers(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every int8 conv/linear layer's weight, dequantized — read straight from torch.ao's modules."""
    import torch.ao.nn.quantized as nnq
    from torch.ao.nn.quantized.modules.conv import _ConvNd

    return {name: m.weight().dequantize() for name, m in module.named_modules() if isinstance(m, (nnq.Linear, _ConvNd))}


@pytest.mark.parametrize("key, kind", [("shapes", "int8-static"), ("shapes", "int8-dynamic"),
                                       ("breast_cancer", "int8-dynamic"), ("wine", "int8-static"),
                                       ("digits", "int8-static")])
def test_twin_holds_exactly_the_int8_models_dequantized_weights(demo, key, kind):
    model, _, x = demo(key)
    variant = build_variant(model, VariantSpec(kind), calibration=x[:64])
    int8 = _int8_layers(variant.model.module)
    assert int8, "no int8 layer"
    original = dict(model.module.named_parameters())
    matched = set()
    for name, weight in variant.twin.module.named_parameters():
        if weight.ndim < 2:
            continue
        same = [layer for layer, w in int8.items() if w.shape == weight.shape and torch.equal(w, weight)]
        if same:
            matched.update(same)
            assert not torch.equal(weight, original[name])  # it was rounded: not the float weight
        else:  # a layer int8 left in float (dynamic int8 keeps convolutions float): the model's own weight
            assert torch.equal(weight, original[name]), f"{name} is neither int8's nor the model's weight"
    assert matched == set(int8), f"int8 layers with no twin weight: {set(int8) - matched}"
    # Biases too, wherever they went (a batch norm folded into a convolution leaves its bias in the BN's place).
    vectors = [t for _, t in variant.twin.module.named_parameters() if t.ndim == 1]
    vectors += [t for n, t in variant.twin.module.named_buffers() if n.endswith("bias")]
    for name, layer in variant.model.module.named_modules():
        if name in int8 and layer.bias() is not None:
            assert any(t.shape == layer.bias().shape and torch.equal(t, layer.bias()) for t in vectors), name


def test_twin_weights_are_int8_weights_not_a_rounding_of_their_own():
    """The old twin rounded with max|w|/127 while torch's observer does not: 99% of its weights differed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 3)).eval()
    from tests.test_loading import export_bytes
    from xai_core.loading import load_model

    loaded = load_model(export_bytes(net, torch.randn(2, 32)), "mlp.pt2")
    for kind in ("int8-dynamic", "int8-static"):
        variant = build_variant(loaded, VariantSpec(kind), calibration=torch.randn(64, 32))
        twin = dict(variant.twin.module.named_parameters())
        for name, (weight, bias) in dequantized_weights(variant.model.module).items():
            owner = next(n for n in ("0", "2") if twin[f"{n}.weight"].shape == weight.shape)
            assert torch.equal(twin[f"{owner}.weight"], weight), (kind, name)
            assert torch.equal(twin[f"{owner}.bias"], bias), (kind, name)


def test_static_twin_rounds_activations_like_the_int8_model(demo):
    """The static twin also rounds the input and each int8 layer's output: clearly closer to the real int8 model's
    answers than the weights alone (and than fp32). Residual additions and pooling stay float, so not identical."""
    model, _, x = demo("shapes")
    context = prepare_comparison(model, load_demo_data("shapes", model))
    variant = build_variant(model, VariantSpec("int8-static"), context=context.build)
    weights_only = build_twin(model.module, context.build.lifted(), variant.model.module, simulate_activations=False)
    with torch.no_grad():
        real = variant.model.module(x)
        gap = {"fp32": (model.module(x) - real).abs().mean(), "weights only": (weights_only(x) - real).abs().mean(),
               "twin": (variant.twin.module(x) - real).abs().mean()}
    assert gap["twin"] < 0.8 * gap["weights only"] and gap["weights only"] < gap["fp32"], gap
    assert (variant.twin.module(x).argmax(1) == real.argmax(1)).float().mean() >= 0.995


@pytest.mark.slow
def test_the_model_is_lifted_once_per_comparison(demo, monkeypatch):
    model, data, _ = demo("shapes")
    calls = []
    original = lifting.lift

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(lifting, "lift", counting)
    specs = [VariantSpec("int8-dynamic"), VariantSpec("int8-static"), VariantSpec("int8-static", sparsity=0.5),
             VariantSpec("weights", 4)]
    comparison = compare_variants(model, data.subset(np.arange(48)), specs, batch_sizes=(1, 4), n_drift=2)
    assert [r.label for r in comparison.results] == ["fp32", "int8 dynamic", "int8 static", "int8 static + 50% pruned",
                                                     "w4 per-channel"]
    assert len(calls) == 1  # for every int8 variant, the timing and the bits curve

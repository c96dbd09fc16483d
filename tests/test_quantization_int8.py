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


def _histogram_cases():
    """Activations as calibration sees them, batch after batch: bell-shaped, heavy-tailed, post-ReLU, a few distinct
    values, one outlier, a constant, ranges that grow between batches (the histogram is then re-binned into fractional
    counts), and 100,000 values (integer counts summing to 1e5: the search's bounds land on float32 ties)."""
    g = torch.Generator().manual_seed(0)
    normal = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {
        "normal": [normal(4096)],
        "lognormal": [normal(8192).exp()],
        "relu": [normal(2, 4096).clamp_min(0)],
        "few values": [torch.randint(0, 5, (5000,), generator=g).float() * 0.37],
        "outlier": [torch.cat([normal(6000), torch.tensor([250.0])])],
        "constant": [torch.full((300,), 1.5)],
        "growing range": [normal(3000) * s for s in (0.5, 1.0, 3.0, 2.0)],
        "shifting": [normal(2000) + shift for shift in (0.0, 4.0, -3.0)],
        "1e5 values": [normal(100_000)],
        "1e5 skewed": [normal(100_000).abs() ** 3],
    }


@pytest.mark.parametrize("case", list(_histogram_cases()))
def test_fast_histogram_search_finds_torchs_range_bit_for_bit(case):
    from torch.ao.quantization.observer import HistogramObserver

    from xai_core.torch_internals import fast_histogram_observer

    batches = _histogram_cases()[case]
    torchs, ours = HistogramObserver(reduce_range=True), fast_histogram_observer()(reduce_range=True)
    for batch in batches:
        torchs(batch)
        ours(batch)
    assert torch.equal(torchs.histogram, ours.histogram)
    expected, found = torchs._non_linear_param_search(), ours._non_linear_param_search()
    assert torch.equal(found[0], expected[0]) and torch.equal(found[1], expected[1]), (found, expected)
    for a, b in zip(torchs.calculate_qparams(), ours.calculate_qparams()):
        assert torch.equal(a, b)


def test_fast_histogram_search_compares_in_float32_as_torch_does():
    """torch compares each cumulative count, a float32, with `next_alpha * total` rounded to float32. A histogram
    whose first count is that bound rounded (and below it): torch's search stays on the first bin there; comparing in
    double would step past it and end on another range."""
    from torch.ao.quantization.observer import HistogramObserver

    from xai_core.torch_internals import _float32, fast_histogram_observer

    g = torch.Generator().manual_seed(0)
    histogram = torch.zeros(2048)
    histogram[3:2045] = torch.histc(torch.randn(99_990, generator=g).clamp(-3.9, 3.9), 2042, -4, 4)
    histogram[3] += 2
    histogram[2047] = 1
    for _ in range(3):  # the first bin holds 1e-5 of the total, rounded to float32, the total counting it
        histogram[0] = _float32(1e-5 * torch.sum(histogram).item())
    bound = 1e-5 * torch.sum(histogram).item()
    assert histogram[0].item() == _float32(bound) < bound
    ranges = []
    for observer in (HistogramObserver(reduce_range=True), fast_histogram_observer()(reduce_range=True)):
        observer.histogram.copy_(histogram)
        observer.min_val.fill_(-1.0)
        observer.max_val.fill_(1.0)
        ranges.append(tuple(v.item() for v in observer._non_linear_param_search()))
    assert ranges[0] == ranges[1] == (-1.0, pytest.approx(0.9463, abs=1e-4))


def test_the_histogram_cases_make_the_search_move():
    """The cases above are worth comparing: in three of them (post-ReLU, and both of 1e5 values) torch's search
    trims the range by more than one bin (in most others, by one), so the search runs many steps."""
    from torch.ao.quantization.observer import HistogramObserver

    moved = 0
    for batches in _histogram_cases().values():
        observer = HistogramObserver(reduce_range=True)
        for batch in batches:
            observer(batch)
        low, high = observer._non_linear_param_search()
        moved += bool((high - low) < (observer.max_val - observer.min_val) * (1 - 1 / observer.bins))
    assert moved >= 3


@pytest.mark.slow
def test_static_int8_with_the_fast_observer_is_torchs_static_int8(demo):
    """The ViT demo (101 activation observers) and a torchvision MobileNetV3 with random weights (hardsigmoid's fixed
    ranges, hardswish, squeeze-excitation): every scale, zero point and answer equal to torch's default mapping's."""
    import torchvision
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from xai_core.quantization import BuildContext
    from xai_core.torch_internals import static_int8_qconfig_mapping

    torch.manual_seed(0)
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=4).eval()
    vit, _, vit_x = demo("shapes_vit")
    cases = [(BuildContext(vit, vit_x[:64]).lifted(), vit_x[:64]),
             (lifting.lift(mobilenet, torch.randn(2, 3, 64, 64)), torch.randn(32, 3, 64, 64))]
    for lifted, x in cases:
        converted = []
        for mapping in (get_default_qconfig_mapping("x86"), static_int8_qconfig_mapping()):
            prepared = prepare_fx(lifted.copy(), mapping, (x[:2],))
            with torch.no_grad():
                prepared(x)
            converted.append(convert_fx(prepared))
        qparams = [{name: value for name, value in m.state_dict().items() if "scale" in name or "zero_point" in name}
                   for m in converted]
        assert qparams[0] and qparams[0].keys() == qparams[1].keys()
        assert all(torch.equal(qparams[0][k], qparams[1][k]) for k in qparams[0])
        with torch.no_grad():
            assert torch.equal(converted[0](x), converted[1](x))


def test_the_fast_observer_pickles_like_torchs():
    """Found where its name says it lives, so a prepared (calibrating) model can be pickled as torch's can."""
    import pickle

    from xai_core.torch_internals import fast_histogram_observer

    observer = fast_histogram_observer()(reduce_range=True)
    observer(torch.randn(1000, generator=torch.Generator().manual_seed(0)))
    again = pickle.loads(pickle.dumps(observer))
    assert type(again) is type(observer) and torch.equal(again.histogram, observer.histogram)

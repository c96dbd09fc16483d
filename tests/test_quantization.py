"""Quantized variants: exact properties of the rounding, real int8 that agrees with fp32, and a cached model left alone."""

import copy

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from tests.test_loading import TinyCNN, export_bytes, saved
from xai_core import XaiError
from xai_core.attribution.image import explain_batch
from xai_core.datasets import ImageSet
from xai_core.demo import DEMOS, load_demo_data, load_demo_model
from xai_core.evaluation import model_inputs
from xai_core.loading import load_model
from xai_core.metrics import rank_correlation, top_k_overlap
from xai_core.model import cache_friendly_batch
from xai_core.quantization import (
    FP32, BITS, ComparisonSettings, TimingContext, VariantSpec, bits_curve, build_variant, compare_variant,
    compare_variants, emulate_half, fake_quantize, lift_to_modules, magnitude_prune, measure_latency, packed_size,
    prepare_comparison, serialized_size,
)


@pytest.fixture(scope="module")
def demo():
    cache = {}

    def get(key):
        if key not in cache:
            model = load_demo_model(key)
            background = load_demo_data(key, model, split="train") if DEMOS[key].train_file else None
            cache[key] = (model, load_demo_data(key, model), background)
        return cache[key]

    return get


# ---------------------------------------------------------------------------------------- rounding


@pytest.mark.parametrize("per_channel", [True, False])
def test_8_bit_weights_move_at_most_half_a_step(per_channel):
    w = torch.randn(16, 8, 3, 3) * torch.linspace(0.01, 3, 16).view(-1, 1, 1, 1)
    q = fake_quantize(w, 8, per_channel)
    peak = w.abs().amax(dim=(1, 2, 3), keepdim=True) if per_channel else w.abs().amax()
    step = peak / 127
    assert torch.all((q - w).abs() <= step / 2 + 1e-7)
    assert torch.all((q / step - torch.round(q / step)).abs() < 1e-3)  # on the grid
    assert not torch.equal(q, w)


@pytest.mark.parametrize("per_channel", [True, False])
def test_2_bit_weights_take_at_most_4_values(per_channel):
    w = torch.randn(12, 30)
    q = fake_quantize(w, 2, per_channel)
    groups = list(q) if per_channel else [q]
    for group in groups:
        assert len(torch.unique(group)) <= 4
    assert len(torch.unique(q[0])) >= 2


def test_weight_variant_rounds_every_conv_and_linear_weight_and_nothing_else(demo):
    model, _, _ = demo("shapes")
    variant = build_variant(model, VariantSpec("weights", 3, per_channel=True))
    original = dict(model.module.named_parameters())
    changed = dict(variant.model.module.named_parameters())
    assert original.keys() == changed.keys()
    for name, p in changed.items():
        if p.ndim >= 2:
            for row in p:
                assert len(torch.unique(row)) <= 2 ** 3 - 1
        else:  # biases and BatchNorm parameters stay float
            torch.testing.assert_close(p, original[name])
    assert variant.size_basis == "packed"


def test_magnitude_pruning_zeroes_the_smallest_share():
    w = torch.randn(64, 64)
    pruned = magnitude_prune(w, 0.7)
    assert abs(float((pruned == 0).float().mean()) - 0.7) < 0.01
    kept = pruned[pruned != 0].abs()
    assert kept.min() >= w.abs()[pruned == 0].max()


def test_sizes_shrink_as_expected():
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    fp32 = serialized_size(model)
    assert 3.7 < fp32 / packed_size(model, 8, True) < 4.0
    assert 7.0 < fp32 / packed_size(model, 4, True) < 8.0
    assert packed_size(_pruned(model, 0.9), 8, True, 0.9) < packed_size(model, 8, True) / 2


def _pruned(model, sparsity):
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p in clone.parameters():
            if p.ndim >= 2:
                p.copy_(magnitude_prune(p, sparsity))
    return clone


# ---------------------------------------------------------------------------------------- lifting for int8


@pytest.mark.parametrize("key", ["shapes", "digits", "breast_cancer"])
def test_lifted_graph_computes_what_the_model_computes(demo, key):
    model, data, _ = demo(key)
    x = model_inputs(model, data)[:16]
    lifted = lift_to_modules(model.module, torch.zeros((2, *model.info.input_shape)))
    kinds = {type(m) for m in lifted.modules()}
    assert nn.Linear in kinds
    if model.info.input_kind == "image":
        assert nn.Conv2d in kinds and nn.BatchNorm2d in kinds
    with torch.no_grad():
        torch.testing.assert_close(lifted(x), model.module(x), atol=1e-4, rtol=1e-4)


def test_lifted_torchvision_state_dict_model():
    net = torchvision.models.resnet18(num_classes=5).eval()
    loaded = load_model(saved(net.state_dict()), "r18.pt",
                        overrides={"architecture": "resnet18", "input_shape": [3, 64, 64]})
    x = torch.randn(4, 3, 64, 64)
    lifted = lift_to_modules(loaded.module, x[:2])
    with torch.no_grad():
        torch.testing.assert_close(lifted(x), net(x), atol=1e-4, rtol=1e-4)


def test_ops_int8_cannot_take_stay_in_float_and_are_named():
    model = TinyCNN().eval()
    loaded = load_model(export_bytes(model, torch.randn(2, 3, 16, 16)), "tiny.pt2")
    x = torch.randn(32, 3, 16, 16)
    variant = build_variant(loaded, VariantSpec("int8-static"), calibration=x)
    assert any("stay in float" in note and "mean" in note for note in variant.notes)
    with torch.no_grad():
        out = variant.model.module(x)
    assert out.dtype == torch.float32 and out.shape == (32, 3)
    assert (out.argmax(1) == model(x).argmax(1)).float().mean() >= 0.8


class _ComputedBias(nn.Module):
    """A linear layer whose bias is computed in forward (swin_v2's attention does this): it cannot become nn.Linear."""

    def __init__(self):
        super().__init__()
        self.weight, self.half_bias = nn.Parameter(torch.randn(3, 6)), nn.Parameter(torch.randn(3))
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(nn.functional.linear(x, self.weight, torch.cat([self.half_bias[:2], self.half_bias[2:] * 0])))


def test_a_linear_with_a_computed_bias_stays_float_and_the_rest_is_int8():
    model = _ComputedBias().eval()
    loaded = load_model(export_bytes(model, torch.randn(2, 6)), "computed.pt2")
    lifted = lift_to_modules(loaded.module, torch.zeros(2, 6))
    assert [type(m) for m in lifted.modules() if isinstance(m, nn.Linear)] == [nn.Linear]  # the head only
    variant = build_variant(loaded, VariantSpec("int8-dynamic"))
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(lifted(x), model(x))
        torch.testing.assert_close(variant.model.module(x), model(x), atol=0.05, rtol=0.05)


# ---------------------------------------------------------------------------------------- real int8


@pytest.mark.parametrize("key", ["breast_cancer", "wine"])
def test_int8_dynamic_tabular_demo_agrees_with_fp32(demo, key):
    model, data, _ = demo(key)
    x = model_inputs(model, data)
    variant = build_variant(model, VariantSpec("int8-dynamic"))
    assert variant.twin is not None and not variant.model.autograd
    kinds = {type(m).__module__ for m in variant.model.module.modules()}
    assert any("quantized.dynamic" in k for k in kinds)  # real int8 kernels, not a simulation
    agreement = (variant.model.predict(x) == model.predict(x)).mean()
    assert agreement >= 0.99
    assert variant.size_bytes < serialized_size(model.module)


def test_int8_static_shapes_keeps_accuracy_and_is_4x_smaller(demo):
    model, data, _ = demo("shapes")
    x = model_inputs(model, data)
    variant = build_variant(model, VariantSpec("int8-static"), calibration=x[:128])
    assert any("quantized" in type(m).__module__ for m in variant.model.module.modules())
    fp32 = model.predict(x)
    int8 = variant.model.predict(x)
    assert (int8 == fp32).mean() >= 0.98
    assert (int8 == data.labels).mean() >= (fp32 == data.labels).mean() - 0.01
    assert serialized_size(model.module) / variant.size_bytes > 3.0


def test_static_int8_needs_calibration(demo):
    model, _, _ = demo("shapes")
    with pytest.raises(XaiError, match="calibration"):
        build_variant(model, VariantSpec("int8-static"))


def test_real_int8_refuses_gradients_but_runs_occlusion_and_twin_runs_grad_cam(demo):
    model, data, _ = demo("shapes")
    images = data.images[:2]
    variant = build_variant(model, VariantSpec("int8-static"), calibration=model_inputs(model, data)[:64])
    with pytest.raises(XaiError, match="no"):
        explain_batch(variant.model, images, "grad_cam")
    with pytest.raises(XaiError, match="gradients"):
        explain_batch(variant.model, images, "saliency")
    occlusion = explain_batch(variant.model, images, "occlusion", window=16, stride=16)
    assert occlusion.maps.shape == (2, 64, 64) and np.abs(occlusion.maps).max() > 0
    twin = explain_batch(variant.twin, images, "grad_cam")
    base = explain_batch(model, images, "grad_cam")
    assert np.mean([rank_correlation(a, b) for a, b in zip(base.maps, twin.maps)]) > 0.95


def test_torchscript_gets_half_and_fake_quant_but_int8_says_why_not():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    loaded = load_model(saved_script(model), "m.pt", overrides={"input_shape": [4], "input_kind": "tabular"})
    with pytest.raises(XaiError, match="TorchScript"):
        build_variant(loaded, VariantSpec("int8-dynamic"))
    x = torch.randn(10, 4)
    for spec in (VariantSpec("fp16"), VariantSpec("weights", 8)):
        out = build_variant(loaded, spec).model.module(x)
        torch.testing.assert_close(out, model(x), atol=0.05, rtol=0.05)


def saved_script(model):
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- half precision


@pytest.mark.parametrize("kind", ["fp16", "bf16"])
def test_half_precision_keeps_layer_names_and_returns_float32(demo, kind):
    model, data, _ = demo("shapes")
    variant = build_variant(model, VariantSpec(kind))
    assert [n for n, _ in variant.model.module.named_modules()] == [n for n, _ in model.module.named_modules()]
    assert next(variant.model.module.parameters()).dtype == (torch.float16 if kind == "fp16" else torch.bfloat16)
    x = model_inputs(model, data)[:8]
    with torch.no_grad():
        out = variant.model.module(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model.module(x), atol=0.1, rtol=0.05)
    maps = explain_batch(variant.model, data.images[:2], "grad_cam").maps
    assert maps.shape == (2, 64, 64)


def _rounding_step(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The gap between adjacent `dtype` numbers at each value's magnitude."""
    mantissa = 10 if dtype == torch.float16 else 7
    return torch.exp2(torch.floor(torch.log2(values.abs().clamp_min(1e-3))) - mantissa)


@pytest.mark.parametrize("key", ["shapes", "diabetes"])
@pytest.mark.parametrize("kind", ["fp16", "bf16"])
def test_emulated_half_precision_matches_the_real_half_model(demo, key, kind):
    """The comparison reads half variants' answers from a float32 emulation: it must be the real thing's answers."""
    model, data, _ = demo(key)
    dtype = torch.float16 if kind == "fp16" else torch.bfloat16
    variant = build_variant(model, VariantSpec(kind))
    assert variant.answer_model is variant.emulated and variant.gradient_model is variant.emulated
    x = model_inputs(model, data)[:64]
    with torch.no_grad():
        real, emulated, exact = variant.model.module(x), variant.emulated.module(x), model.module(x)
    assert next(variant.emulated.module.parameters()).dtype == torch.float32
    assert torch.equal(real.argmax(1), emulated.argmax(1))
    # Within one rounding step of the output (two where the real kernels round differently inside a layer) ...
    assert ((real - emulated).abs() <= 2 * _rounding_step(real, dtype)).float().mean() >= 0.95
    assert (real - emulated).abs().max() <= 4 * _rounding_step(real, dtype).max()
    # ... and it does round: its outputs are half-precision numbers, not fp32's.
    assert torch.equal(emulated, emulated.to(dtype).float()) and not torch.equal(emulated, exact)


def test_half_emulation_keeps_layers_and_gradients(demo):
    model, data, _ = demo("shapes")
    emulated = emulate_half(model.module, torch.bfloat16)
    assert [n for n, _ in emulated.named_modules()] == [n for n, _ in model.module.named_modules()]
    variant = build_variant(model, VariantSpec("bf16"))
    maps = explain_batch(variant.gradient_model, data.images[:4], "grad_cam").maps
    base = explain_batch(model, data.images[:4], "grad_cam").maps
    assert np.mean([rank_correlation(a, b) for a, b in zip(base, maps)]) > 0.95


# ---------------------------------------------------------------------------------------- timing


class FakeClock:
    """Seconds that pass only when a fake module runs: timings are exact and do not depend on the machine.
    `load`: how much slower the machine runs everything now (another session started, say)."""

    def __init__(self):
        self.now, self.load = 0.0, 1.0

    def __call__(self) -> float:
        return self.now


class Costly(nn.Module):
    """Takes `per_call` + `per_row` × batch seconds of the fake clock, and logs its calls."""

    def __init__(self, clock: FakeClock, per_call: float = 0.0, per_row: float = 0.0, name: str = "", log=None):
        super().__init__()
        self.clock, self.per_call, self.per_row, self.name, self.log = clock, per_call, per_row, name, log
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.clock.now += (self.per_call + self.per_row * len(x)) * self.clock.load
        if self.log is not None:
            self.log.append(self.name)
        return x


def test_latency_is_the_median_time_of_one_batch_for_every_module_and_batch_size():
    clock = FakeClock()
    a, b = Costly(clock, per_row=0.001), Costly(clock, per_call=0.002, per_row=0.0005)
    result = measure_latency({"a": a, "b": b}, torch.zeros(5, 8), batch_sizes=(1, 64), budget_s=0.01, clock=clock)
    assert result["a"] == {1: pytest.approx(1.0), 64: pytest.approx(64.0)}
    assert result["b"] == {1: pytest.approx(2.5), 64: pytest.approx(34.0)}


def test_modules_are_timed_interleaved_round_by_round():
    clock, log = FakeClock(), []
    modules = {name: Costly(clock, per_call=0.0001, name=name, log=log) for name in ("fp32", "int8")}
    measure_latency(modules, torch.zeros(4, 3), batch_sizes=(2,), budget_s=0.01, max_rounds=40, clock=clock)
    assert log[:2] == ["fp32", "int8"]  # one warm-up call each
    assert log[2:] == ["fp32", "int8"] * 40  # then round by round, up to max_rounds


def test_a_module_slower_than_the_budget_is_timed_once_per_batch_size_and_the_rest_at_least_five_times():
    clock = FakeClock()
    slow, fast = Costly(clock, per_call=0.25), Costly(clock, per_call=0.001)
    latency = measure_latency({"slow": slow, "fast": fast}, torch.zeros(4, 3), batch_sizes=(1, 8), budget_s=0.1,
                              clock=clock)
    assert slow.calls == 1 + 2  # one warm-up, one timed call per batch size
    assert fast.calls == 1 + 2 * 5  # over budget after the first round, so the minimum of five rounds
    assert latency == {"slow": {1: pytest.approx(250.0), 8: pytest.approx(250.0)},
                       "fast": {1: pytest.approx(1.0), 8: pytest.approx(1.0)}}


def test_each_timing_group_runs_once_interleaved_with_fp32_and_its_speedup_is_from_that_run():
    clock, log = FakeClock(), []
    fp32 = Costly(clock, per_row=0.002, name="fp32", log=log)
    timing = TimingContext(fp32, torch.zeros(4, 3), (1, 8), budget_s=0.01, clock=clock)
    built = []

    def int8():
        built.append(1)
        return Costly(clock, per_row=0.0005, name="int8", log=log)

    alone = timing.fp32()  # the fp32 row, measured while the machine is quiet
    assert alone.ms == alone.fp32_ms == {1: pytest.approx(2.0), 8: pytest.approx(16.0)}
    log.clear()
    clock.load = 3.0  # then the machine gets busy: everything runs 3× slower
    latency = timing.latency("int8 static", int8)
    assert set(log) == {"fp32", "int8"}  # a run of its own: fp32 and this variant only
    assert latency.ms == {1: pytest.approx(1.5), 8: pytest.approx(12.0)}
    assert latency.fp32_ms == {1: pytest.approx(6.0), 8: pytest.approx(48.0)}  # fp32 in that same run
    assert latency.speedup == {1: pytest.approx(4.0), 8: pytest.approx(4.0)}  # so the load cancels out
    assert timing.latency("int8 static", int8) is latency and len(built) == 1  # measured once, read back after


def test_float_variants_share_the_timing_of_the_kernels_they_run(demo, monkeypatch):
    from xai_core.quantization import timing

    runs = []
    original = timing.measure_latency

    def recording(modules, *args, **kwargs):
        runs.append(sorted(modules))
        return original(modules, *args, **kwargs)

    monkeypatch.setattr(timing, "measure_latency", recording)
    model, data, background = demo("wine")
    specs = [VariantSpec("weights", 4), VariantSpec("fp32", sparsity=0.5), VariantSpec("fp16"),
             VariantSpec("fp16", sparsity=0.5)]
    comparison = compare_variants(model, data, specs, background=background, batch_sizes=(1, 16), n_drift=0,
                                  bits_curve=False)
    # One run: fp32 (for fp32, w4 and pruned fp32, which run its kernels) interleaved with the half model.
    assert runs == [["fp16", "fp32"]]
    fp32, w4, pruned, fp16, fp16_pruned = comparison.results
    assert [r.timing_group for r in comparison.results] == ["fp32", "fp32", "fp32", "fp16", "fp16"]
    assert w4.latency_ms == fp32.latency_ms == pruned.latency_ms and w4.speedup == pruned.speedup == fp32.speedup
    assert fp16.latency_ms == fp16_pruned.latency_ms and fp16.fp32_latency_ms == fp16_pruned.fp32_latency_ms
    assert fp16.speedup == {b: fp16.fp32_latency_ms[b] / fp16.latency_ms[b] for b in (1, 16)}


def test_a_comparisons_groups_are_timed_in_one_run_with_fp32_once_per_round():
    clock, log = FakeClock(), []
    fp32 = Costly(clock, per_row=0.002, name="fp32", log=log)
    timing = TimingContext(fp32, torch.zeros(4, 3), (1, 8), budget_s=0.01, clock=clock)

    def broken():
        raise XaiError("The real fp16 model does not run on this CPU.")

    timing.measure({"int8": lambda: Costly(clock, per_row=0.0005, name="int8", log=log),
                    "bf16": lambda: Costly(clock, per_row=0.001, name="bf16", log=log), "fp16": broken,
                    "fp32": lambda: fp32})
    # one run: fp32 called once per round for both (a run per group would call it in each)
    assert set(log) == {"fp32", "int8", "bf16"} and log.count("fp32") <= max(log.count("int8"), log.count("bf16"))
    int8, bf16 = timing.latency("int8", None), timing.latency("bf16", None)
    assert int8.fp32_ms == bf16.fp32_ms == {1: pytest.approx(2.0), 8: pytest.approx(16.0)}
    assert int8.speedup == {1: pytest.approx(4.0), 8: pytest.approx(4.0)}
    assert bf16.speedup == {1: pytest.approx(2.0), 8: pytest.approx(2.0)}
    assert timing.fp32().ms == int8.fp32_ms  # fp32's own row from the same run: not timed again
    with pytest.raises(XaiError, match="does not run"):
        timing.latency("fp16", None)
    calls = len(log)
    timing.measure({"int8": None, "bf16": None})  # measured once
    assert len(log) == calls
    # its part of the run: its own calls and half of fp32's, claimed by the first variant of the group only
    assert timing.claim_seconds("int8") == pytest.approx(int8.seconds) and timing.claim_seconds("int8") is None
    assert int8.seconds + bf16.seconds == pytest.approx(clock.now)  # every call of the run, shared out
    assert bf16.seconds > int8.seconds  # bf16's own calls are the slower ones


# ---------------------------------------------------------------------------------------- verdict numbers


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("key", ["shapes", "wine", "diabetes"])
@pytest.mark.slow
def test_verdict_numbers_match_a_direct_computation_from_labels_and_predictions(demo, key):
    """Score, agreement and KL / MSE against numpy on the variant's own outputs, not through xai_core.scoring."""
    model, data, background = demo(key)
    specs = [VariantSpec("weights", 3, per_channel=False), VariantSpec("bf16"), VariantSpec("int8-dynamic")]
    if model.info.input_kind == "image":
        specs.append(VariantSpec("int8-static"))
    context = prepare_comparison(model, data, ComparisonSettings(batch_sizes=(1,), n_drift=0), background)
    x = model_inputs(model, data)  # fewer rows than max_rows: every row, in order
    labels = data.labels if model.info.input_kind == "image" else data.y.to_numpy()

    batch = cache_friendly_batch(x)

    def run(module):  # in the comparison's batches: dynamic int8 quantizes activations per batch
        with torch.no_grad():
            return np.concatenate([module(x[i : i + batch]).numpy() for i in range(0, len(x), batch)]).astype(np.float64)

    fp32 = run(model.module)
    for spec in specs:
        result = compare_variant(context, spec)
        variant = build_variant(model, spec, context=context.build)
        out = run(variant.answer_model.module)
        if model.info.task == "classification":
            predicted = out.argmax(axis=1)
            assert result.score == pytest.approx(np.sum(predicted == labels) / len(labels), abs=1e-12), spec.label
            assert result.agreement == pytest.approx(np.sum(predicted == fp32.argmax(axis=1)) / len(x), abs=1e-12)
            p, q = _softmax(fp32), _softmax(out)
            kl = np.mean(np.sum(p * np.log(p / q), axis=1))
            assert result.divergence == pytest.approx(kl, rel=1e-3, abs=1e-9), spec.label
        else:
            y = labels.astype(np.float64)
            r2 = 1 - np.sum((y - out[:, 0]) ** 2) / np.sum((y - y.mean()) ** 2)
            assert result.score == pytest.approx(r2, rel=1e-5), spec.label
            assert result.divergence == pytest.approx(np.mean((fp32[:, 0] - out[:, 0]) ** 2), rel=1e-4), spec.label
    base = compare_variant(context, FP32)
    assert base.score == pytest.approx(np.sum(fp32.argmax(axis=1) == labels) / len(labels) if model.info.task ==
                                       "classification" else 1 - np.sum((labels - fp32[:, 0]) ** 2)
                                       / np.sum((labels - labels.mean()) ** 2), rel=1e-5)


# ---------------------------------------------------------------------------------------- the comparison


def test_every_variant_leaves_the_cached_model_untouched(demo):
    model, data, background = demo("wine")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    specs = [VariantSpec("fp16"), VariantSpec("bf16"), VariantSpec("int8-dynamic"), VariantSpec("int8-static"),
             VariantSpec("fp32", sparsity=0.5), VariantSpec("weights", 4, sparsity=0.5)]
    specs += [VariantSpec("weights", b, per_channel=pc) for b in BITS for pc in (True, False)]
    compare_variants(model, data, specs, background=background, batch_sizes=(1, 8), n_drift=4)
    after = model.module.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
        assert after[key].dtype == value.dtype
    assert all(not getattr(m, "_forward_hooks", None) for m in model.module.modules())
    assert not model.module.training


@pytest.mark.slow
def test_image_comparison_reports_every_number(demo):
    model, data, _ = demo("shapes")
    small = data.subset(np.arange(96))
    specs = [VariantSpec("fp16"), VariantSpec("weights", 2, per_channel=False), VariantSpec("int8-static")]
    comparison = compare_variants(model, small, specs, batch_sizes=(1, 16), n_drift=4, workers=1)
    frame = comparison.to_frame()
    assert list(frame["variant"]) == ["fp32", "fp16", "w2 per-tensor", "int8 static"]
    fp32, fp16, w2, int8 = comparison.results
    assert fp32.agreement == 1.0 and fp32.divergence == 0.0
    assert fp16.agreement >= 0.99 and fp16.drift["Grad-CAM rank correlation"] > 0.98
    assert fp16.drift_method == "Grad-CAM on its float32 emulation" and w2.drift_method == "Grad-CAM"
    assert w2.agreement < fp16.agreement  # 2 bits per tensor breaks this model
    assert w2.drift["Grad-CAM rank correlation"] < fp16.drift["Grad-CAM rank correlation"]
    assert "twin" in int8.drift_method and "occlusion" in int8.drift_method
    assert "occlusion rank correlation" in int8.drift
    # The benchmark's breakdown (one at a time): fp32's occlusion, computed for the first real int8 variant, apart.
    assert set(int8.step_seconds) == {"building", "answering", "timing", "explaining", "fp32 occlusion"}
    assert comparison.seconds >= sum(r.seconds for r in comparison.results)
    assert set(comparison.drift_variants) == {"fp16", "w2 per-tensor", "int8 static"}
    assert comparison.drift_variants["fp16"].shape == (4, 64, 64)
    curve = comparison.bits_curve
    assert curve.equals(bits_curve(model, small))  # the page computes it on its own: the same rows, the same curve
    assert set(curve["bits"]) == {32, 8, 6, 4, 3, 2}
    per_channel = curve[curve["granularity"] == "per-channel"].set_index("bits")
    assert per_channel.loc[8, "agreement"] >= 0.99 and per_channel.loc[2, "agreement"] < per_channel.loc[8, "agreement"]


def test_tabular_drift_is_measured_with_shapley_values(demo):
    model, data, background = demo("wine")
    comparison = compare_variants(model, data, [VariantSpec("weights", 16), VariantSpec("weights", 2, per_channel=False),
                                                VariantSpec("int8-dynamic")], background=background,
                                  batch_sizes=(1, 32), n_drift=8, bits_curve=False)
    near, coarse, int8 = comparison.results[1:]
    assert near.drift["SHAP rank correlation"] > 0.999  # 16 bits: the same explanation
    assert coarse.drift["SHAP rank correlation"] <= near.drift["SHAP rank correlation"]
    assert "real int8" in int8.drift_method
    assert comparison.drift_reference.values.shape == (8, 13)


def test_regression_reports_mse_against_fp32(demo):
    model, data, background = demo("diabetes")
    comparison = compare_variants(model, data, [VariantSpec("weights", 8), VariantSpec("weights", 2)],
                                  background=background, batch_sizes=(1, 32), n_drift=4)
    frame = comparison.to_frame()
    assert "MSE vs fp32" in frame and "R²" in frame and "agreement with fp32" not in frame
    w8, w2 = comparison.results[1:]
    assert w8.divergence < w2.divergence


def test_a_variant_that_cannot_be_built_is_reported_not_raised():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    cnn = load_model(export_bytes(net, torch.randn(2, 3, 8, 8)), "c.pt2")
    images = ImageSet(np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8), [f"{i}.png" for i in range(6)])
    with pytest.raises(XaiError, match="no"):
        build_variant(cnn, VariantSpec("int8-dynamic"))
    comparison = compare_variants(cnn, images, [VariantSpec("int8-dynamic"), VariantSpec("weights", 8)],
                                  batch_sizes=(1, 4), n_drift=0)
    assert "Linear" in comparison.errors["int8 dynamic"]
    assert [r.label for r in comparison.results] == ["fp32", "w8 per-channel"]


def test_spec_validation():
    with pytest.raises(XaiError):
        VariantSpec("weights", 1)
    with pytest.raises(XaiError):
        VariantSpec("fp32", sparsity=1.0)
    assert VariantSpec("weights", 4, per_channel=False, sparsity=0.5).label == "w4 per-tensor + 50% pruned"
    assert FP32.label == "fp32"


# ---------------------------------------------------------------------------------------- drift metrics


def test_drift_metrics_known_answers():
    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert top_k_overlap(a, a, 2) == 1.0
    assert top_k_overlap(a, np.array([0.9, 0.1, 0.8, 0.2]), 2) == 0.0  # top-2 {3, 1} vs {0, 2}
    assert top_k_overlap(np.arange(100.0), np.arange(100.0)[::-1], 0.1) == 0.0


def test_building_int8_never_breaks_other_sessions_forward_passes(demo):
    """FX tracing patches nn.Module.__call__ process-wide; other threads (sessions) must not notice."""
    import threading

    model, data, _ = demo("shapes")
    x = model_inputs(model, data)
    reference = model.module(x[:4]).detach()
    stop, errors, runs = threading.Event(), [], [0]

    def other_session():
        while not stop.is_set():
            try:
                with torch.no_grad():
                    out = model.module(x[:4])
                if not torch.allclose(out, reference, atol=1e-5):
                    errors.append("different output")
            except Exception as exc:  # the failure this test exists to catch
                errors.append(repr(exc)[:120])
            runs[0] += 1

    readers = [threading.Thread(target=other_session) for _ in range(2)]
    for t in readers:
        t.start()
    results = []
    builders = [threading.Thread(target=lambda: results.append(
        build_variant(model, VariantSpec("int8-static"), calibration=x[:32]))) for _ in range(2)]
    try:
        for t in builders:
            t.start()
        for t in builders:
            t.join()
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert runs[0] > 0 and not errors, errors[:3]
    assert len(results) == 2
    for variant in results:
        assert (variant.model.predict(x[:64]) == model.predict(x[:64])).mean() >= 0.95


# ---------------------------------------------------------------------------------------- nothing computed twice


def test_fp32_answers_are_computed_once_and_the_bits_curve_reuses_the_rounded_variants(demo, monkeypatch):
    from xai_core.model import LoadedModel

    model, data, background = demo("wine")
    calls = []
    original = LoadedModel.predict_proba

    def counting(self, x, *args, **kwargs):
        calls.append(self.module is model.module)
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(LoadedModel, "predict_proba", counting)
    specs = [VariantSpec("weights", 8), VariantSpec("weights", 4, per_channel=False)]
    comparison = compare_variants(model, data, specs, background=background, batch_sizes=(1, 4), n_drift=0)
    assert calls.count(True) == 1  # fp32's answers: once, for fp32's row and every variant's agreement
    # 2 rounded variants answered once each; the bits curve runs the other 8 of its 10 roundings only
    assert len(calls) == 1 + 2 + 8
    monkeypatch.setattr(LoadedModel, "predict_proba", original)
    fresh = bits_curve(model, data)  # everything computed anew
    assert comparison.bits_curve.equals(fresh)

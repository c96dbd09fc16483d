"""Work the quantization comparison must not repeat (issue 19): counted, never timed."""

from __future__ import annotations

import copy
import dataclasses
import io
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from xai_core.demo import load_demo_data, load_demo_model
from xai_core.evaluation import model_inputs
from xai_core.loading import exported_program, load_model
from xai_core.quantization import (ComparisonSettings, VariantFailure, VariantResult, VariantSpec, compare_many, lift, prepare_comparison,
                                   try_compare_variant)
from xai_core.quantization import compare
from xai_core.quantization.compare import FP32, Gate
from xai_core.quantization import lifting


@pytest.fixture
def exports(monkeypatch):
    """Counts every export lifting makes (the function it calls for one)."""
    calls = []
    original = lifting.export_with_dynamic_batch

    def counted(module, example):
        calls.append(module)
        return original(module, example)

    monkeypatch.setattr(lifting, "export_with_dynamic_batch", counted)
    return calls


def _upload(net: nn.Module, example: torch.Tensor, dynamic: bool):
    shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic else None
    program = torch.export.export(net.eval(), (example,), dynamic_shapes=shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return load_model(buffer.getvalue(), "mlp.pt2", sidecar={"input_kind": "tabular", "input_shape": [4]})


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_a_comparison_of_a_loaded_pt2_exports_nothing_and_lifts_once(exports):
    model = load_demo_model("breast_cancer")
    data = load_demo_data("breast_cancer", model)
    context = prepare_comparison(model, data, ComparisonSettings(n_drift=2, max_rows=64))
    for spec in (VariantSpec("int8-dynamic"), VariantSpec("fp16"), VariantSpec("weights", 8)):
        assert isinstance(try_compare_variant(context, spec), VariantResult)
    assert exports == []  # the program the model was loaded from is lifted, not a new export
    assert context.build.lifts == 1


def test_the_program_is_kept_for_the_loaded_module_only():
    model = load_demo_model("breast_cancer")
    assert exported_program(model.module) is not None
    assert exported_program(copy.deepcopy(model.module)) is None  # a copy (or a variant) is another module
    assert exported_program(nn.Linear(2, 2)) is None


def test_lifting_the_loaded_program_computes_what_the_module_computes_and_leaves_the_program_as_it_was(exports):
    net = _mlp()
    model = _upload(net, torch.zeros(2, 4), dynamic=True)
    program = exported_program(model.module)
    nodes = [n.format_node() for n in program.graph.nodes]
    x = torch.randn(37, 4)  # a batch size the program was not exported with
    lifted = lift(model.module, x[:2])
    assert exports == []
    assert [n.format_node() for n in program.graph.nodes] == nodes
    with torch.no_grad():
        torch.testing.assert_close(lifted.module(x), net(x), rtol=0, atol=0)  # the original nn.Module's answer
    assert {type(m) for m in lifted.module.modules()} >= {nn.Linear, nn.ReLU}
    assert set(lifted.origins) and all(o.weight.endswith(".weight") for o in lifted.origins.values())


def test_a_program_with_a_fixed_batch_is_exported_again_with_a_symbolic_one(exports):
    net = _mlp()
    model = _upload(net, torch.zeros(2, 4), dynamic=False)
    assert lifting.reusable_program(model.module) is None
    x = torch.randn(5, 4)
    lifted = lift(model.module, x[:2])
    assert len(exports) == 1
    with torch.no_grad():
        torch.testing.assert_close(lifted.module(x), net(x), rtol=0, atol=0)


def test_a_model_not_loaded_from_a_program_is_exported_once_per_comparison(exports):
    model = load_demo_model("breast_cancer")
    copied = dataclasses.replace(model, module=copy.deepcopy(model.module))
    data = load_demo_data("breast_cancer", copied)
    context = prepare_comparison(copied, data, ComparisonSettings(n_drift=0, max_rows=32))
    try_compare_variant(context, VariantSpec("int8-dynamic"))
    assert len(exports) == 1 and context.build.lifts == 1
    x = model_inputs(copied, data)[:16]
    with torch.no_grad():
        np.testing.assert_array_equal(context.build.lifted().module(x).numpy(), model.module(x).numpy())


def _storages(module: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}


def test_the_kept_program_holds_no_second_copy_of_the_weights():
    model = load_demo_model("text_transformer")
    program = exported_program(model.module)
    assert {t.untyped_storage().data_ptr() for t in program.state_dict.values()} <= _storages(model.module)


def test_editing_the_lifted_graph_leaves_the_loaded_model_as_it_was():
    model = load_demo_model("text_transformer")
    x = model_inputs(model, load_demo_data("text_transformer", model))[:8]
    with torch.no_grad():
        before = model.module(x).clone()
        lifted = lift(model.module, x[:2])
        assert not _storages(lifted.module) & _storages(model.module)
        for tensor in [*lifted.module.parameters(), *lifted.module.buffers()]:
            if tensor.is_floating_point():
                tensor.mul_(0.5)
        torch.testing.assert_close(model.module(x), before, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- variants side by side


def _same_numbers(a: VariantResult, b: VariantResult) -> None:
    assert a.label == b.label
    assert (a.score, a.agreement, a.divergence, a.size_bytes, a.drift_method, a.notes, a.timing_group) == \
        (b.score, b.agreement, b.divergence, b.size_bytes, b.drift_method, b.notes, b.timing_group), a.label
    assert a.drift == b.drift, a.label
    if a.drift_values is None:
        assert b.drift_values is None
    else:  # maps (n, H, W), φ (n, d), or one array of word values per document
        assert len(a.drift_values) == len(b.drift_values)
        for x, y in zip(a.drift_values, b.drift_values):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("key, specs", [
    ("shapes", ["fp16", ("weights", 4), "int8-dynamic", "int8-static"]),
    ("text_bilstm", [("weights", 4), "int8-dynamic"]),
    ("wine", ["bf16", ("weights", 2), "int8-dynamic"]),
    ("text_transformer", ["fp16", "int8-dynamic"]),  # real fp16 does not run here: fails when timed, in both runs
])
def test_variants_side_by_side_give_a_serial_runs_numbers(key, specs):
    """Two workers building, answering and explaining at once change no number: every score, agreement, divergence,
    size and drift (maps included) equals the one-at-a-time run's, bit for bit."""
    model = load_demo_model(key)
    data = load_demo_data(key, model)
    data = data.subset(np.arange(48)) if hasattr(data, "subset") else data
    background = load_demo_data(key, model, split="train") if key == "wine" else None
    specs = [VariantSpec(*s) if isinstance(s, tuple) else VariantSpec(s) for s in specs]
    settings = ComparisonSettings(batch_sizes=(1, 4), n_drift=3, max_rows=48)
    one_by_one_context = prepare_comparison(model, data, settings, background, workers=1)
    one_by_one = [try_compare_variant(one_by_one_context, spec) for spec in [FP32, *specs]]  # each timed on its own
    serial_context = prepare_comparison(model, data, settings, background)
    serial = compare_many(serial_context, specs, workers=1)
    parallel_context = prepare_comparison(model, data, settings, background)
    steps, running, overlapped = [], [], []
    untimed = compare._untimed

    def counted(context, spec, tick):  # how many variants are being worked on at once
        running.append(spec)
        overlapped.append(len(running))
        try:
            time.sleep(0.05)  # long enough for the second worker to start its own
            return untimed(context, spec, tick)
        finally:
            running.remove(spec)

    compare._untimed = counted
    try:
        parallel = compare_many(parallel_context, specs, lambda done, total, message: steps.append((done, total)),
                                workers=2)
    finally:
        compare._untimed = untimed
    assert parallel_context.workers == 2 and serial_context.workers == 1 and max(overlapped) == 2
    assert [r.label for r in parallel] == ["fp32"] + [s.label for s in specs]
    for a, b, c in zip(serial, parallel, one_by_one):
        assert type(c) is type(a)
        if isinstance(c, VariantFailure):
            assert c.error == a.error
        else:
            _same_numbers(c, a)
    for a, b in zip(serial, parallel):
        assert type(a) is type(b)
        if isinstance(a, VariantFailure):
            assert a == b
        else:
            _same_numbers(a, b)
    assert key != "text_transformer" or isinstance(parallel[1], VariantFailure)
    assert steps[-1] == (4 * (len(specs) + 1),) * 2  # the bar ends full
    # asked again, with one more: only that one is computed
    more = compare_many(parallel_context, specs + [VariantSpec("weights", 8)], workers=2)
    assert parallel_context.computed[len(specs) + 1:] == ["w8 per-channel"]
    assert all(a is b for a, b in zip(parallel, more))


def test_a_timing_waits_for_the_steps_in_flight_and_runs_alone():
    gate = Gate()
    events: list[str] = []
    entered, release = threading.Event(), threading.Event()

    asking = threading.Event()

    def step(name: str, hold: threading.Event | None = None) -> None:
        if hold is None:
            asking.set()
        with gate.shared():
            events.append(f"{name} starts")
            if hold is not None:
                entered.set()
                hold.wait(10)
            events.append(f"{name} ends")

    def timing() -> None:
        with gate.alone():
            events.append("timing")

    threads = [threading.Thread(target=step, args=("answering", release))]
    threads[0].start()
    assert entered.wait(10)
    threads.append(threading.Thread(target=timing))
    threads[1].start()
    for _ in range(1000):  # until the timing is waiting
        if gate._waiting:
            break
        time.sleep(0.01)
    assert gate._waiting == 1
    threads.append(threading.Thread(target=step, args=("explaining",)))
    threads[2].start()
    assert asking.wait(10)  # the new step has asked for the gate
    for _ in range(50):  # a new step must not start while the timing waits
        assert "explaining starts" not in events
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert events == ["answering starts", "answering ends", "timing", "explaining starts", "explaining ends"]


def test_a_variant_is_explained_as_it_is_not_copied_and_keeps_no_hooks(monkeypatch):
    from xai_core.attribution import common
    from xai_core.attribution.image import explain_batch
    from xai_core.quantization import BuildContext, build_variant
    from xai_core.torch_internals import hook_count

    model = load_demo_model("shapes")
    images = load_demo_data("shapes", model).images[:3]
    variant = build_variant(model, VariantSpec("weights", 4), context=BuildContext(model))
    assert variant.model.private and not model.private  # the cached model is shared: always copied
    shared = dataclasses.replace(variant.model, private=False)
    expected = explain_batch(shared, images, "grad_cam").maps  # through a copy, as for a shared model
    copies = []
    original = common._private_copy
    monkeypatch.setattr(common, "_private_copy", lambda module: copies.append(module) or original(module))
    before = hook_count(variant.model.module)
    maps = explain_batch(variant.model, images, "grad_cam").maps
    assert copies == []
    assert hook_count(variant.model.module) == before
    assert all(p.grad is None for p in variant.model.module.parameters())
    np.testing.assert_array_equal(maps, expected)
    with common.CopyPool().borrow(variant.model) as lent:
        assert lent is variant.model.module
    with common.CopyPool().borrow(model) as lent:  # the shared model: a copy, never the module itself
        assert lent is not model.module and len(copies) == 1


def test_models_run_in_cache_friendly_batches():
    from xai_core.model import cache_friendly_batch

    assert cache_friendly_batch(torch.zeros(2, 3, 64, 64)) == 64  # images: at most 64
    assert cache_friendly_batch(torch.zeros(2, 3, 224, 224)) == 8  # 2^21 numbers / 150,528 per image → 13 → 8
    assert cache_friendly_batch(torch.zeros(2, 30)) == 256 and cache_friendly_batch(torch.zeros(0, 30)) == 256
    model = load_demo_model("digits")
    x = model_inputs(model, load_demo_data("digits", model))[:150]
    sizes = []
    handle = model.module.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    try:
        out = model.forward_batched(x)
    finally:
        handle.remove()
    assert sizes == [64, 64, 22] and out.shape == (150, 10)
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), model.module(x).numpy(), rtol=1e-5, atol=1e-5)


def test_a_timing_run_off_the_cpu_is_measured_and_the_page_says_its_speedups_are_unsure(monkeypatch):
    from xai_core.quantization import compare_variants, speed_verdicts, timing

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, asleep = timing.timed_run(lambda: time.sleep(0.2) or {}, time.perf_counter)  # off the CPU all along
        total = 0.0

        def busy():
            nonlocal total
            end = time.thread_time() + 0.1
            while time.thread_time() < end:
                total += 1.0
            return {}

        _, working = timing.timed_run(busy, time.perf_counter)
        _, fake = timing.timed_run(lambda: {}, lambda: 0.0)
    finally:
        torch.set_num_threads(threads)
    assert asleep < 0.2 and working > asleep and fake is None
    model = load_demo_model("wine")
    data = load_demo_data("wine", model)
    for share, warned in ((0.3, True), (0.95, False)):
        monkeypatch.setattr(timing, "timed_run", lambda run, clock: (run(), share))
        comparison = compare_variants(model, data, [VariantSpec("bf16"), VariantSpec("int8-dynamic")],
                                      batch_sizes=(1, 8), n_drift=0, bits_curve=False)
        assert [r.timing_cpu_share for r in comparison.results] == [share] * 3
        assert list(comparison.to_frame()["CPU share while timed"]) == [share] * 3
        texts = [v.text for v in speed_verdicts(comparison)]
        assert any("Other work disturbed the timings" in t and "30%" in t for t in texts) == warned, texts


def test_a_comparison_stopped_by_its_page_does_not_work_on_the_variants_left(monkeypatch):
    """Streamlit stops a run (raising from the progress bar) when the user changes a control: the variants not started
    yet are dropped instead of computed for nobody, and the context is free for the next run."""
    model = load_demo_model("wine")
    data = load_demo_data("wine", model)
    context = prepare_comparison(model, data, ComparisonSettings(batch_sizes=(1, 4), n_drift=0), workers=2)
    specs = [VariantSpec("weights", b) for b in (2, 3, 4, 6, 8)] + [VariantSpec("bf16"), VariantSpec("fp16")]
    started = []
    untimed = compare._untimed

    def slow(context, spec, tick):
        started.append(spec.label)
        time.sleep(0.3)
        return untimed(context, spec, tick)

    monkeypatch.setattr(compare, "_untimed", slow)

    def stop(done, total, message):
        raise RuntimeError("the user changed a control")

    with pytest.raises(RuntimeError, match="changed a control"):
        compare_many(context, specs, stop, workers=2)
    assert len(started) <= 4 < len(specs) + 1  # the two in flight (and at most the next two), not all eight
    assert context.missing(specs) == [FP32, *specs]  # nothing half-done kept
    monkeypatch.setattr(compare, "_untimed", untimed)
    results = compare_many(context, specs[:1], workers=2)  # the context is free again
    assert [r.label for r in results] == ["fp32", "w2 per-channel"]


def test_side_by_side_the_longest_steps_start_first(monkeypatch):
    """Static int8's build (calibration, conversion) is a comparison's longest step: it starts at once, beside fp32's
    occlusion; then the other real int8 variants, then the rest. Started last, it alone would hold the page up. A
    second slow variant does not take fp32's occlusion's place."""
    from xai_core import XaiError

    model = load_demo_model("shapes")
    data = load_demo_data("shapes", model)
    pruned = VariantSpec("int8-static", sparsity=0.5)
    for specs, expected in [
        ([VariantSpec("weights", 8), VariantSpec("fp16"), VariantSpec("int8-dynamic"), VariantSpec("int8-static")],
         ["int8 dynamic", "fp32", "w8 per-channel", "fp16"]),
        ([VariantSpec("fp16"), VariantSpec("int8-static"), pruned], [pruned.label, "fp32", "fp16"]),
    ]:
        context = prepare_comparison(model, data, ComparisonSettings(batch_sizes=(1, 4), n_drift=2), workers=2)
        started = []
        lock = threading.Lock()

        def step(label: str, seconds: float):
            with lock:
                started.append(label)
            time.sleep(seconds)  # no two workers come free at once (0.25 against 0.1 + 0.07 + 0.07 + …)
            raise XaiError("not computed in this test")

        monkeypatch.setattr(compare, "_untimed", lambda context, spec, tick: step(
            spec.label, 0.25 if spec.builder.builds_slowly else 0.07))
        monkeypatch.setattr(type(context), "fp32_occlusion", lambda self: step("fp32 occlusion", 0.1))
        with pytest.raises(XaiError):  # fp32's own failure is raised
            compare_many(context, specs, workers=2)
        assert set(started[:2]) == {"int8 static", "fp32 occlusion"}
        assert started[2:] == expected

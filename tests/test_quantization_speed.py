"""Work the quantization comparison must not repeat (issue 19): counted, never timed."""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pytest
import torch
from torch import nn

from xai_core.demo import load_demo_data, load_demo_model
from xai_core.evaluation import model_inputs
from xai_core.loading import exported_program, load_model
from xai_core.quantization import ComparisonSettings, VariantResult, VariantSpec, lift, prepare_comparison, try_compare_variant
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

"""The private torch machinery we patch: checked version, imports that cannot race, hooks put back as they were."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from xai_core import XaiError, torch_internals

ROOT = Path(__file__).resolve().parents[1]


def test_torch_is_a_release_the_patches_were_checked_on():
    """Fails on a torch upgrade on purpose: review the private APIs below, then widen CHECKED_TORCH."""
    torch_internals.check_torch_version()
    from torch.export.pt2_archive import _package
    from torch.fx import _symbolic_trace

    assert callable(_symbolic_trace._Patcher.patch) and callable(_symbolic_trace._Patcher.patch_method)
    assert hasattr(_package, "pickle") and callable(torch._C._pickle_load_obj)
    for name in torch_internals.HOOK_DICTS:
        assert isinstance(getattr(nn.Linear(1, 1), name), dict), name


def test_an_unchecked_torch_is_named(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "3.0.0")
    with pytest.raises(RuntimeError, match="checked on torch .* this is 3.0.0"):
        torch_internals.check_torch_version()


RACE = textwrap.dedent("""
    import sys, threading
    import torch
    from torch import nn
    from xai_core.demo import demo_model_bytes
    from xai_core.loading import load_model
    from xai_core.quantization import VariantSpec, build_variant, lift_to_modules

    model_bytes, sidecar = demo_model_bytes("breast_cancer")
    barrier = threading.Barrier(8)
    errors = []

    def work(i):
        try:
            barrier.wait()
            if i % 3 == 0:
                load_model(model_bytes, "m.pt2", sidecar=sidecar)
            elif i % 3 == 1:
                net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
                lift_to_modules(net, torch.zeros(2, 4))
            else:
                loaded = load_model(model_bytes, "m.pt2", sidecar=sidecar)
                build_variant(loaded, VariantSpec("int8-dynamic"))
        except Exception as exc:
            errors.append(f"{i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    # The process is still healthy afterwards: dynamo's modules are whole.
    import torch._dynamo.utils  # noqa: F401
    print("ERRORS", errors)
    sys.exit(1 if errors else 0)
""")


def test_eight_threads_load_export_and_quantize_at_once_in_a_fresh_process():
    """Before the import lock, this failed with "partially initialized module 'torch._dynamo.source'"."""
    done = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERRORS []" in done.stdout


def test_a_failed_import_is_rolled_back_and_retried(monkeypatch):
    monkeypatch.setattr(torch_internals, "_imported", False)
    monkeypatch.setattr(torch_internals, "SUBSYSTEMS", ("torch.ao.quantization", "xai_core_no_such_module"))
    with pytest.raises(XaiError, match="failed to import.*Try again"):
        torch_internals.ensure_subsystems()
    assert torch_internals._imported is False
    monkeypatch.setattr(torch_internals, "SUBSYSTEMS", ("torch.ao.quantization",))
    torch_internals.ensure_subsystems()
    assert torch_internals._imported is True


def test_restore_hooks_keeps_the_original_and_drops_the_added():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    own = net[0].register_forward_hook(lambda *a: None)
    snapshot = torch_internals.hook_snapshot(net)
    net[0].register_forward_hook(lambda *a: None)
    net[1].register_forward_pre_hook(lambda *a: None)
    net.register_full_backward_hook(lambda *a: None)
    assert torch_internals.hook_count(net) == 4
    torch_internals.restore_hooks(net, snapshot)
    assert torch_internals.hook_count(net) == 1
    assert list(net[0]._forward_hooks) == [own.id]


def _recompiles(monkeypatch) -> list[int]:
    """Counts the GraphModules that generate and compile their code from now on."""
    calls = []
    original = torch.fx.GraphModule.recompile

    def counted(self):
        calls.append(id(self))
        return original(self)

    monkeypatch.setattr(torch.fx.GraphModule, "recompile", counted)
    return calls


def test_copy_module_shares_generated_code_and_nothing_else(monkeypatch):
    import copy

    import torchvision

    from tests.test_loading import export_bytes
    from xai_core.loading import load_model

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).eval()  # random weights, not ours: 60-odd unflattened submodules
    module = load_model(export_bytes(net, torch.randn(2, 3, 32, 32)), "resnet18.pt2").module
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
        assert torch.equal(module(x), expected)

    recompiled = _recompiles(monkeypatch)
    copy.deepcopy(module)
    assert len(recompiled) > 50  # what copy_module saves: deepcopy regenerates the code of every submodule
    recompiled.clear()
    clone = torch_internals.copy_module(module)
    assert recompiled == []
    with torch.no_grad():
        assert torch.equal(clone(x), expected)

    # its own state: parameters, buffers, submodules, hooks and graphs
    ids = {id(t) for t in [*module.parameters(), *module.buffers(), *module.modules()]}
    assert not ids & {id(t) for t in [*clone.parameters(), *clone.buffers(), *clone.modules()]}
    originals = dict(module.named_modules())
    for name, sub in clone.named_modules():
        if hasattr(sub, "graph"):
            assert sub.graph is not originals[name].graph
    calls = []
    clone.get_submodule("layer2.0.conv1").register_forward_hook(lambda *a: calls.append("clone"))
    module.get_submodule("layer2.0.conv1").register_forward_hook(lambda *a: calls.append("original"))
    with torch.no_grad():
        clone(x)
        assert calls == ["clone"]
        clone.get_submodule("layer2.0.conv1").weight.mul_(-1)  # an inner layer: the copy computes with its own
        changed = clone(x)
        assert torch.equal(module(x), expected) and not torch.allclose(changed, expected)
        for sub in clone.modules():  # FX's interpreter instead of the generated code: the same answers
            if hasattr(sub, "_run_with_interpreter"):
                sub._run_with_interpreter = True
        assert torch.equal(clone(x), changed)

        # an edited graph, finalized, runs its own new code on the copy; the original's code is untouched
        fc = clone.get_submodule("fc")
        output = next(n for n in fc.graph.nodes if n.op == "output")
        logits = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
        with fc.graph.inserting_before(output):
            doubled = fc.graph.call_function(torch.ops.aten.mul.Tensor, (logits, 2.0))
        output.args = ((doubled,),) if isinstance(output.args[0], (tuple, list)) else (doubled,)
        fc.finalize()
        fc._run_with_interpreter = False
        assert torch.equal(clone(x), changed * 2)
        assert torch.equal(module(x), expected)

    # the copy holds the original's generated code (its class), not the original's GraphModule and what it holds
    shared = 0
    for name, sub in clone.named_modules():
        code = sub.__dict__.get("graph_module")
        if code is not None and name != "fc":  # fc's is its own, finalized above
            theirs = originals[name].__dict__["graph_module"]
            assert type(code) is type(theirs) and code is not theirs
            assert not code._modules and not code._parameters and not code._buffers and not hasattr(code, "_graph")
            shared += 1
    assert shared > 50

"""Which torchvision architectures the dashboard's real int8 builds and runs: one model per family, random weights,
small images, exported and loaded like an upload. Each variant is built from one lifted graph (batch symbolic), then
run at batch 1 and 3; a variant that cannot be built or run says which layer blocks it.

Run: `python benchmarks/bench_quantization_torchvision.py` (about ten minutes on 2 cores).
"""

from __future__ import annotations

import io
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_section  # noqa: E402
from xai_core.errors import XaiError  # noqa: E402
from xai_core.loading import load_model  # noqa: E402
from xai_core.quantization import BuildContext, VariantSpec, build_variant  # noqa: E402

# (builder name, image size, extra kwargs): the smallest size each architecture accepts, to keep this quick.
MODELS = [
    ("alexnet", 64, {}), ("convnext_tiny", 64, {}), ("densenet121", 64, {}), ("efficientnet_b0", 64, {}),
    ("efficientnet_v2_s", 64, {}), ("googlenet", 64, {"aux_logits": False, "init_weights": True}),
    ("inception_v3", 96, {"aux_logits": False, "init_weights": True}), ("maxvit_t", 224, {}), ("mnasnet0_5", 64, {}),
    ("mobilenet_v2", 64, {}), ("mobilenet_v3_small", 64, {}), ("regnet_y_400mf", 64, {}), ("resnet18", 64, {}),
    ("resnext50_32x4d", 64, {}), ("shufflenet_v2_x1_0", 64, {}), ("squeezenet1_1", 64, {}), ("swin_t", 64, {}),
    ("swin_v2_t", 64, {}), ("vgg11_bn", 64, {}), ("vit_b_16", 32, {"image_size": 32}), ("wide_resnet50_2", 64, {}),
]
KINDS = ("int8-dynamic", "int8-static")


def uploaded(name: str, size: int, kwargs: dict):
    net = getattr(torchvision.models, name)(num_classes=10, **kwargs)
    # Random weights with fresh batch-norm statistics vanish or explode through a deep network (efficientnet's answers
    # are ~1e-13): a few training-mode passes set the statistics, as training would, so the answers mean something.
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the passes
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(torch.randn(8, 3, size, size))
    net.eval()
    for module in net.modules():  # vit starts its head at zero: every answer would be 0
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.5)
    example = torch.randn(2, 3, size, size)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return load_model(buffer.getvalue(), f"{name}.pt2"), net


def main() -> None:
    torch.manual_seed(0)
    warnings.simplefilter("ignore")
    rows = []
    for name, size, kwargs in MODELS:
        started = time.perf_counter()
        try:
            model, net = uploaded(name, size, kwargs)
        except Exception as exc:  # torchvision's own export failing is reported, not hidden
            rows.append((name, size, "export failed", "", f"{type(exc).__name__}: {str(exc)[:120]}", 0.0))
            continue
        context = BuildContext(model, calibration=torch.randn(8, 3, size, size))
        cells, notes = [], []
        x = torch.randn(3, 3, size, size)
        with torch.no_grad():
            exact = net(x)
        for kind in KINDS:
            try:
                variant = build_variant(model, VariantSpec(kind), context=context)
                with torch.no_grad():
                    one, three = variant.model.module(x[:1]), variant.model.module(x)
                if one.shape[0] != 1 or three.shape[0] != 3:
                    raise XaiError(f"wrong batch in the answers: {tuple(one.shape)}, {tuple(three.shape)}")
                cosine = float(torch.nn.functional.cosine_similarity(three.flatten(), exact.flatten(), dim=0))
                twin = "twin" if variant.twin is not None else "no twin"
                cells.append(f"yes (cos {cosine:.3f}, {twin})")
            except XaiError as exc:
                cells.append("no")
                notes.append(f"{kind}: {str(exc)[:220]}")
            except Exception as exc:  # a failure without a message naming the layer is a bug of ours: show it
                cells.append("**crash**")
                notes.append(f"{kind}: {type(exc).__name__}: {str(exc)[:160]}")
        rows.append((name, size, *cells, "; ".join(notes), time.perf_counter() - started))
        print(rows[-1], flush=True)

    lines = ["## Real int8 on torchvision architectures (`benchmarks/bench_quantization_torchvision.py`)", "",
             f"Machine: {machine()}", "",
             "One model per family, random weights (10 classes), exported with a symbolic batch and loaded like an "
             "upload (batch-norm statistics from four training-mode passes on noise); both int8 variants built from one "
             "lifted graph and run at batch 1 and 3. cos: cosine similarity of the int8 logits with fp32's (random "
             "weights and noise images, so only a sanity check); twin: the fake-quant twin for "
             "gradient methods was built. A variant that cannot be built says which layer blocks it.", "",
             "| architecture | image | int8 dynamic | int8 static | why not | seconds |", "|---|---|---|---|---|---|"]
    for name, size, dynamic, static, why, seconds in rows:
        lines.append(f"| {name} | {size}×{size} | {dynamic} | {static} | {why.replace('|', '/')} | {seconds:.0f} |")
    write_section("quantization_torchvision", "\n".join(lines))


if __name__ == "__main__":
    main()

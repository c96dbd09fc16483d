"""Which explanations to believe: a faithfulness scorecard per explanation method and per variant.

Cheap metrics (computed on the page for the shown samples): deletion and insertion AUC (probability of the explained
class as the top-attributed pixels or features are removed / added back; `xai_core.metrics`), sparseness (the Gini
index of |attribution|, Chalasani et al. 2020) and, for integrated gradients, completeness (|Σ attribution −
(f(x) − f(baseline))| relative to |f(x) − f(baseline)|). Heavy metrics (on request): infidelity (Yeh et al. 2019,
`captum.metrics.infidelity`, Gaussian input noise) and ROAD (Rong et al. 2022, images: the top p% pixels removed and
filled in from their neighbours — noisy linear imputation — at a few percentiles; the explained class's mean
probability afterwards, lower is more faithful).

Gradient methods explain a real int8 variant through its fake-quant twin; the metrics run the model whose answers are
compared (the real int8 model). Each row says which model was explained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from xai_core.datasets import ImageSet, images_to_tensor
from xai_core.errors import XaiError
from xai_core.model import LoadedModel
from xai_core.quantization.audit import leave_one_feature_out
from xai_core.quantization.compare import FP32, ComparisonContext
from xai_core.quantization.specs import Variant, VariantSpec
from xai_core.quantization.variants import build_variant

ProgressFn = Callable[[int, int, str], None]
CHEAP_METRICS = ("deletion AUC", "insertion AUC", "sparseness", "completeness error")
HEAVY_METRICS = ("infidelity", "ROAD")
ROAD_PERCENTILES = (10, 30, 50)
IMAGE_METHODS = {"grad_cam": "gradient", "saliency": "gradient", "integrated_gradients": "gradient",
                 "occlusion": "perturbation"}
TABLE_METHODS = {"integrated_gradients": "gradient", "gradient_x_input": "gradient",
                 "leave_one_feature_out": "perturbation"}
HIGHER_IS_BETTER = {"deletion AUC": False, "insertion AUC": True, "sparseness": True, "completeness error": False,
                    "infidelity": False, "ROAD": False}


def sparseness(attribution: np.ndarray) -> float:
    """Gini index of |attribution| (0: spread evenly, → 1: all on one entry)."""
    v = np.sort(np.abs(np.ravel(attribution)).astype(np.float64))
    n, total = len(v), v.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * v) / (n * total))


def road_impute(x: torch.Tensor, removed: torch.Tensor, iterations: int = 60, noise: float = 0.0,
                seed: int = 0) -> torch.Tensor:
    """Removed pixels (`removed`: bool (n, H, W)) filled with the mean of their 4 neighbours, iterated to the fixed point
    of that linear system (the linear imputation of ROAD), plus optional Gaussian noise of std `noise`."""
    mask = removed[:, None].to(x.dtype)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype)
    kernel = kernel.view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    ones = torch.ones_like(x[:, :1])
    count = torch.nn.functional.conv2d(torch.nn.functional.pad(ones, (1, 1, 1, 1)), kernel[:1])
    filled = x * (1 - mask)
    for _ in range(iterations):
        neighbours = torch.nn.functional.conv2d(torch.nn.functional.pad(filled, (1, 1, 1, 1)), kernel,
                                                groups=x.shape[1]) / count
        filled = x * (1 - mask) + neighbours * mask
    if noise > 0:
        generator = torch.Generator().manual_seed(seed)
        filled = filled + mask * noise * torch.randn(filled.shape, generator=generator)
    return filled


@dataclass
class Scorecard:
    """One row per (variant, method): each metric's mean over the samples, how it was computed, and the verdict."""

    frame: pd.DataFrame  # variant, method, explained with, one column per metric, seconds per sample per metric
    metric_seconds: dict[str, float]  # metric → seconds per sample (the explanation itself counted as "explaining")
    n_samples: int
    heavy: bool

    def best_methods(self) -> dict[str, str]:
        """Per variant: the method with the largest insertion − deletion AUC (the most faithful here)."""
        frame = self.frame.assign(_gap=self.frame["insertion AUC"] - self.frame["deletion AUC"])
        return {v: g.sort_values("_gap", ascending=False)["method"].iloc[0] for v, g in frame.groupby("variant",
                                                                                                       sort=False)}

    def verdict(self) -> str:
        best = self.best_methods()
        if not best:
            return ""
        fp32 = best.get(FP32.label, next(iter(best.values())))
        changed = {v: m for v, m in best.items() if m != fp32}
        text = (f"**{fp32}** is the most faithful method for this model (largest insertion − deletion AUC on "
                f"{self.n_samples} samples).")
        if changed:
            text += " Under quantization that changes: " + "; ".join(f"for {v}, {m}" for v, m in changed.items()) + "."
        else:
            text += " It stays the most faithful for every variant scored."
        return text


def _image_explain(model: LoadedModel, images: np.ndarray, method: str, targets: np.ndarray, layer) -> np.ndarray:
    from xai_core.attribution.image import explain_batch

    options = {}
    if method == "occlusion":
        window = max(4, images.shape[2] // 8)
        options = {"window": window, "stride": window}
    return explain_batch(model, images, method, targets=targets, layer=layer if method == "grad_cam" else None,
                         **options).maps


def _table_explain(model: LoadedModel, rows: pd.DataFrame, method: str, targets: np.ndarray, baseline: np.ndarray,
                   background: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Values (n, d) and, for integrated gradients, the start f(baseline) per row (else None)."""
    from xai_core.attribution.tabular import explain_table
    from xai_core.datasets import TableSet

    if method == "leave_one_feature_out":
        return leave_one_feature_out(model, rows.to_numpy(dtype=np.float32), baseline, targets), None
    result = explain_table(model, TableSet(rows), method, background=background)
    values = result.values[np.arange(len(rows)), :, targets]
    base = None if result.base_values is None else np.asarray(result.base_values)[targets]
    return values, base


def _probability(model: LoadedModel) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x):
        with torch.no_grad():
            out = model.module(x.float())
        return torch.softmax(out, dim=1) if model.info.task == "classification" else out
    return forward


def _image_metrics(model: LoadedModel, explained: LoadedModel, images: np.ndarray, maps: np.ndarray,
                   targets: np.ndarray, method: str, heavy: bool, seconds: dict[str, float], seed: int) -> dict:
    from xai_core.metrics import faithfulness_curves

    out = {}
    lap = time.perf_counter()
    curves = faithfulness_curves(model, images, maps, targets, method, steps=10)
    out["deletion AUC"], out["insertion AUC"] = curves.deletion_auc, curves.insertion_auc
    seconds["deletion + insertion AUC"] = seconds.get("deletion + insertion AUC", 0) + time.perf_counter() - lap
    lap = time.perf_counter()
    out["sparseness"] = float(np.mean([sparseness(m) for m in maps]))
    seconds["sparseness"] = seconds.get("sparseness", 0) + time.perf_counter() - lap
    x = images_to_tensor(images, model.info)
    if method == "integrated_gradients":
        from xai_core.attribution.image import integrated_gradients_baseline

        lap = time.perf_counter()
        base = integrated_gradients_baseline(x, "black", model.info.mean, model.info.std)
        with torch.no_grad():
            fx = explained.module(x)[np.arange(len(x)), targets].numpy()
            f0 = explained.module(base)[np.arange(len(x)), targets].numpy()
        total = maps.reshape(len(maps), -1).sum(axis=1)
        out["completeness error"] = float(np.mean(np.abs(total - (fx - f0)) / np.maximum(np.abs(fx - f0), 1e-12)))
        seconds["completeness error"] = seconds.get("completeness error", 0) + time.perf_counter() - lap
    if heavy:
        lap = time.perf_counter()
        out["infidelity"] = _infidelity(model, x, torch.from_numpy(maps).float()[:, None].expand_as(x) / x.shape[1],
                                        targets, seed)
        seconds["infidelity"] = seconds.get("infidelity", 0) + time.perf_counter() - lap
        lap = time.perf_counter()
        road = _road(model, x, maps, targets, seed)
        out.update({f"ROAD {p}%": v for p, v in road.items()})
        out["ROAD"] = float(np.mean(list(road.values())))
        seconds["ROAD"] = seconds.get("ROAD", 0) + time.perf_counter() - lap
    return out


def _infidelity(model: LoadedModel, x: torch.Tensor, attributions: torch.Tensor, targets: np.ndarray, seed: int,
                std: float = 0.1, n_perturb: int = 16) -> float:
    from captum.metrics import infidelity

    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=generator) * std
        return noise, inputs - noise

    forward = _probability(model)
    value = infidelity(forward, perturb, x, attributions.to(x.dtype), target=torch.as_tensor(targets),
                       n_perturb_samples=n_perturb, normalize=True)
    return float(value.mean())


def _road(model: LoadedModel, x: torch.Tensor, maps: np.ndarray, targets: np.ndarray, seed: int) -> dict[int, float]:
    n, h, w = maps.shape
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(h * w)[None].repeat(n, 0), axis=1)
    ranks = torch.from_numpy(ranks.reshape(n, h, w))
    result = {}
    for p in ROAD_PERCENTILES:
        removed = ranks < int(round(p / 100 * h * w))
        filled = road_impute(x, removed, noise=0.1, seed=seed)
        proba = model.predict_proba(filled)
        result[p] = float(proba[np.arange(n), targets].mean())
    return result


def _table_metrics(model: LoadedModel, rows: pd.DataFrame, values: np.ndarray, base: np.ndarray | None,
                   targets: np.ndarray, baseline: np.ndarray, heavy: bool, seconds: dict[str, float], seed: int) -> dict:
    out = {}
    x = rows.to_numpy(dtype=np.float32)
    n, d = x.shape
    lap = time.perf_counter()
    order = np.argsort(-values, axis=1, kind="stable")
    deletion, insertion = [], []
    for step in range(d + 1):
        top = np.zeros((n, d), dtype=bool)
        np.put_along_axis(top, order[:, :step], True, axis=1)
        deletion.append(np.where(top, baseline[None].astype(np.float32), x))
        insertion.append(np.where(top, x, baseline[None].astype(np.float32)))
    batch = torch.from_numpy(np.concatenate(deletion + insertion).astype(np.float32))
    proba = model.predict_proba(batch)[:, :]
    picked = proba[np.arange(len(batch)), np.tile(targets, 2 * (d + 1))].reshape(2, d + 1, n).mean(axis=2)
    fractions = np.linspace(0, 1, d + 1)
    out["deletion AUC"] = float(np.trapezoid(picked[0], fractions))
    out["insertion AUC"] = float(np.trapezoid(picked[1], fractions))
    seconds["deletion + insertion AUC"] = seconds.get("deletion + insertion AUC", 0) + time.perf_counter() - lap
    lap = time.perf_counter()
    out["sparseness"] = float(np.mean([sparseness(v) for v in values]))
    seconds["sparseness"] = seconds.get("sparseness", 0) + time.perf_counter() - lap
    if base is not None:
        fx = model.predict_proba(torch.from_numpy(x.copy()))[np.arange(n), targets]
        gap = np.abs(base + values.sum(axis=1) - fx) / np.maximum(np.abs(fx - base), 1e-12)
        out["completeness error"] = float(np.mean(gap))
    if heavy:
        lap = time.perf_counter()
        out["infidelity"] = _infidelity(model, torch.from_numpy(x), torch.from_numpy(values).float(), targets, seed,
                                        std=float(np.std(x)) * 0.05 + 1e-6)
        seconds["infidelity"] = seconds.get("infidelity", 0) + time.perf_counter() - lap
    return out


def faithfulness_scorecard(context: ComparisonContext, specs: list[VariantSpec], methods: list[str] | None = None,
                           n_samples: int = 8, heavy: bool = False, background=None, seed: int = 0,
                           progress: ProgressFn | None = None) -> Scorecard:
    """Each method's faithfulness on fp32 and on each variant in `specs`, over the first `n_samples` compared samples
    (explaining fp32's class). `heavy` adds infidelity and ROAD (images)."""
    model, data = context.model, context.data
    image = isinstance(data, ImageSet)
    if model.info.input_kind not in ("image", "tabular"):
        raise XaiError("The faithfulness scorecard is for image and tabular models.")
    if model.info.task != "classification":
        raise XaiError("The faithfulness scorecard scores classifiers (the probability of the explained class).")
    registry = IMAGE_METHODS if image else TABLE_METHODS
    methods = list(methods or registry)
    unknown = [m for m in methods if m not in registry]
    if unknown:
        raise XaiError(f"The scorecard does not know {unknown}; choose from {sorted(registry)}.")
    if image and not model.supports_layer_methods:
        methods = [m for m in methods if m != "grad_cam"]
    n = min(n_samples, len(context.x))
    targets = context.reference[:n].argmax(axis=1)
    layer = getattr(context.drift, "layer", None)
    rows_frame = None if image else data.X.iloc[:n]
    baseline = None
    bg = None
    if not image:
        bg = background.X if background is not None else data.X
        baseline = bg.to_numpy(dtype=np.float64).mean(axis=0)
    variants: list[tuple[str, Variant | XaiError]] = []
    for spec in [FP32] + [s for s in specs if s != FP32]:
        try:
            variants.append((spec.label, build_variant(model, spec, context=context.build)))
        except XaiError as exc:
            variants.append((spec.label, exc))
    seconds: dict[str, float] = {}
    rows = []
    total, done = len(variants) * len(methods), 0
    for label, variant in variants:
        for method in methods:
            if progress is not None:
                progress(done, total, f"{label}: {method}")
            done += 1
            if isinstance(variant, XaiError):
                continue
            kind = registry[method]
            answer = variant.answer_model
            explained = variant.gradient_model if kind == "gradient" else answer
            if kind == "gradient" and not explained.autograd:
                rows.append({"variant": label, "method": method, "explained with": "not scored: no gradients"})
                continue
            how = ("fake-quant twin" if explained is variant.twin else "real int8 model" if not explained.autograd
                   else "float32 emulation" if explained is variant.emulated else "the variant itself")
            lap = time.perf_counter()
            try:
                if image:
                    images = data.images[:n]
                    maps = _image_explain(explained, images, method, targets, layer)
                    seconds["explaining"] = seconds.get("explaining", 0) + time.perf_counter() - lap
                    metrics = _image_metrics(answer, explained, images, maps, targets, method, heavy, seconds, seed)
                else:
                    values, base = _table_explain(explained, rows_frame, method, targets, baseline, bg)
                    seconds["explaining"] = seconds.get("explaining", 0) + time.perf_counter() - lap
                    metrics = _table_metrics(answer, rows_frame, values, base, targets, baseline, heavy, seconds, seed)
            except XaiError as exc:
                rows.append({"variant": label, "method": method, "explained with": f"not scored: {exc}"})
                continue
            rows.append({"variant": label, "method": method, "explained with": how, **metrics})
    if progress is not None:
        progress(total, total, "done")
    frame = pd.DataFrame(rows)
    for column in ("deletion AUC", "insertion AUC"):
        if column not in frame:
            frame[column] = np.nan
    per_sample = {k: v / max(1, n) / max(1, sum(1 for r in rows if "deletion AUC" in r)) for k, v in seconds.items()}
    return Scorecard(frame, per_sample, n, heavy)

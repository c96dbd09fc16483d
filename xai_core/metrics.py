"""How far to trust an image explanation: faithfulness curves, the randomisation sanity check, and localisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from xai_core.attribution.image import explain_batch
from xai_core.datasets import images_to_tensor
from xai_core.model import LoadedModel
from xai_core.torch_internals import copy_module


@dataclass
class FaithfulnessCurves:
    """Deletion and insertion curves: probability of the target class as the top-attributed pixels are removed / added."""

    fractions: np.ndarray  # (steps,)
    deletion: np.ndarray  # (n_images, steps)
    insertion: np.ndarray  # (n_images, steps)
    method: str
    baseline: str

    @property
    def deletion_auc(self) -> float:
        """Lower is better: the class probability collapses once the most important pixels are gone."""
        return float(np.trapezoid(self.deletion.mean(axis=0), self.fractions))

    @property
    def insertion_auc(self) -> float:
        """Higher is better: the class probability recovers quickly as the most important pixels come back."""
        return float(np.trapezoid(self.insertion.mean(axis=0), self.fractions))


def faithfulness_curves(model: LoadedModel, images: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                        method: str = "", steps: int = 20, baseline: str = "blur") -> FaithfulnessCurves:
    """Remove (deletion) or add (insertion) pixels in order of attribution; record p(target) at each step, batched."""
    x = images_to_tensor(images, model.info)
    if baseline == "blur":
        from torchvision.transforms.functional import gaussian_blur

        size = max(3, (min(x.shape[-2:]) // 4) | 1)
        reference = gaussian_blur(x, kernel_size=[size, size], sigma=[size / 3.0, size / 3.0])
    else:
        reference = images_to_tensor(np.zeros_like(images), model.info)
    n, _, h, w = x.shape
    fractions = np.linspace(0.0, 1.0, steps + 1)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(h * w)[None, :].repeat(n, 0), axis=1)
    ranks = torch.from_numpy(ranks.reshape(n, 1, h, w))
    deletion, insertion = [], []
    for fraction in fractions:
        top = ranks < int(round(fraction * h * w))
        deletion.append(torch.where(top, reference, x))
        insertion.append(torch.where(top, x, reference))
    batch = torch.cat(deletion + insertion)  # (2 * (steps+1) * n, C, H, W)
    proba = model.predict_proba(batch, batch_size=256)
    picked = proba[np.arange(len(batch)), np.tile(targets, 2 * len(fractions))].reshape(2, len(fractions), n)
    return FaithfulnessCurves(fractions, picked[0].T, picked[1].T, method, baseline)


@dataclass
class SanityCheck:
    """Cascading randomisation (Adebayo et al. 2018): rank correlation of the map with the original as layers are randomised from the top."""

    layers: list[str]  # after step i, every parametrised layer from the output down to layers[i] is random
    correlations: np.ndarray  # (len(layers),) mean Spearman correlation over images
    method: str

    @property
    def passed(self) -> bool:
        """A faithful method's map must change once the weights are random: correlation well below 1."""
        return bool(self.correlations[-1] < 0.5) if len(self.correlations) else False


def sanity_check(model: LoadedModel, images: np.ndarray, method: str, targets: np.ndarray | None = None,
                 max_layers: int = 6, seed: int = 0, layer: str | None = None, **options) -> SanityCheck:
    """Randomise parametrised layers from the output down on a private copy; compare the maps with the original's."""
    original = explain_batch(model, images, method, targets=targets, layer=layer, **options)
    targets = original.targets
    randomised = copy_module(model.module)
    modules = dict(randomised.named_modules())  # not get_submodule: TorchScript modules do not support it
    names = [name for name, m in modules.items() if name and any(True for _ in m.parameters(recurse=False))][::-1]
    step = max(1, int(np.ceil(len(names) / max_layers)))
    generator = torch.Generator().manual_seed(seed)
    done, labels, correlations = [], [], []
    for start in range(0, len(names), step):
        labels.append(names[min(start + step, len(names)) - 1])
        for name in names[start : start + step]:
            with torch.no_grad():
                for parameter in modules[name].parameters(recurse=False):
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * parameter.std().clamp_min(1e-3))
            done.append(name)
        twin = LoadedModel(randomised, model.info, model.format, f"{model.sha256}-random-{len(done)}", model.size_bytes)
        maps = explain_batch(twin, images, method, targets=targets, layer=original.layer, **options).maps
        correlations.append(np.mean([rank_correlation(a, b) for a, b in zip(original.maps, maps)]))
    return SanityCheck(labels, np.array(correlations), method)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps or attribution vectors (1.0 when both are constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0 if np.ptp(a) != np.ptp(b) else 1.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int | float) -> float:
    """Share of the top-k entries of `a` that are also in the top-k of `b`; a float k in (0, 1) is a share of entries."""
    a, b = np.ravel(a), np.ravel(b)
    if isinstance(k, float) and 0 < k < 1:
        k = max(1, int(round(k * a.size)))
    k = int(min(k, a.size))
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


@dataclass
class Localisation:
    """Does the map point at the object? Pointing game hits and the share of positive attribution inside the mask."""

    hits: np.ndarray  # (n,) bool: the map's maximum lies in the (slightly dilated) mask
    energy_inside: np.ndarray  # (n,) share of positive attribution inside the mask

    @property
    def pointing_accuracy(self) -> float:
        return float(self.hits.mean())

    @property
    def mean_energy_inside(self) -> float:
        return float(self.energy_inside.mean())


def localisation(maps: np.ndarray, masks: np.ndarray, tolerance: int = 2) -> Localisation:
    """Pointing game (max within `tolerance` pixels of the mask) and energy inside the mask, per image."""
    masks = masks.astype(bool)
    if tolerance > 0:
        pooled = nn.functional.max_pool2d(torch.from_numpy(masks.astype(np.float32))[:, None], 2 * tolerance + 1,
                                          stride=1, padding=tolerance)
        dilated = pooled[:, 0].numpy() > 0
    else:
        dilated = masks
    n = len(maps)
    flat = maps.reshape(n, -1)
    hits = dilated.reshape(n, -1)[np.arange(n), flat.argmax(axis=1)]
    positive = np.clip(flat, 0, None)
    total = positive.sum(axis=1)
    inside = (positive * masks.reshape(n, -1)).sum(axis=1)
    energy = np.divide(inside, total, out=np.zeros_like(inside), where=total > 0)
    return Localisation(hits, energy)

"""Compression audit: the samples a quantized variant changes, and whether explanations drift before accuracy does.

Hooker et al. (2020, "Characterising Bias in Compressed Models") show that a compressed model's errors concentrate on
a small set of examples, the ones a person should review. The audit finds them per variant:

- the flip set: the samples whose prediction flips (fp32's class ≠ the variant's), then the explained samples whose
  explanation moved most (top-k overlap with fp32's below `AuditSettings.moved_overlap`), ranked, with counts and
  shares per class; `FlipSet.frame` is the CSV of sample ids and scores;
- drift before accuracy: weights rounded to 8…2 bits, with the score and the explanation agreement (top-k overlap and
  rank correlation with fp32's), each with a 95% bootstrap interval over samples, and in words the lowest bit width
  whose accuracy holds and the lowest whose explanations hold (`BitsAudit.verdict`; "holds" defined there);
- group drift: per class, the mean map (images) or mean |attribution| (tables) of fp32 and of the variant, and the
  classes whose explanations moved most.

Explanations: "gradient" (Grad-CAM for images — Saliency where Grad-CAM cannot run —, integrated gradients for tables)
runs on a real int8 variant's fake-quant twin; "perturbation" (occlusion for images, leave-one-feature-out for tables)
runs on the real int8 model. Each result says which model was explained.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from xai_core import scoring
from xai_core.datasets import ImageSet, TableSet
from xai_core.errors import XaiError
from xai_core.metrics import rank_correlation, top_k_overlap
from xai_core.model import LoadedModel
from xai_core.quantization.compare import ComparisonContext
from xai_core.quantization.specs import BITS, Variant, VariantSpec
from xai_core.quantization.variants import build_variant
from xai_core.quantization.weights import copy_with_weights

ProgressFn = Callable[[int, int, str], None]
AUDIT_METHODS = ("gradient", "perturbation")


@dataclass(frozen=True)
class AuditSettings:
    """Everything besides the comparison and the variants that changes an audit."""

    method: str = "gradient"  # "gradient" (fake-quant twin for real int8) or "perturbation" (the real int8 model)
    n_explain: int = 32  # explanations compared on the first n_explain compared samples
    top_k: float | int | None = None  # None: 10% of the pixels (images), 5 features (tables)
    moved_overlap: float = 0.5  # an explanation "moved" when its top-k overlap with fp32's is below this
    accuracy_tolerance: float = 0.01  # accuracy holds while the drop's 95% upper bound stays within this
    overlap_floor: float = 0.8  # explanations hold while the 95% lower bound of the mean top-k overlap is ≥ this …
    correlation_floor: float = 0.8  # … and that of the mean rank correlation is ≥ this
    bits: tuple[int, ...] = BITS
    per_channel: bool = True
    n_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.method not in AUDIT_METHODS:
            raise XaiError(f"The audit explains with 'gradient' or 'perturbation' methods, not {self.method!r}.")
        if self.n_explain < 2:
            raise XaiError(f"The audit needs at least 2 explained samples, not {self.n_explain}.")


# ---------------------------------------------------------------------------------------- explaining


@dataclass
class AuditExplainer:
    """How the audit explains one model's samples: the method, and the fixed things every model shares (the class
    explained, the Grad-CAM layer, the baseline row)."""

    kind: str  # "image" or "tabular"
    method: str  # "gradient" or "perturbation"
    name: str  # in words: "Grad-CAM", "occlusion", "integrated gradients", "leave-one-feature-out"
    top_k: float | int
    layer: str | None = None
    image_method: str | None = None  # key in xai_core.attribution.image.METHODS
    baseline: np.ndarray | None = None  # tables: the row standing in for an absent feature
    background: pd.DataFrame | None = None
    note: str = ""

    def model_for(self, variant: Variant) -> tuple[LoadedModel, str]:
        """The model this method explains for `variant`, and that choice in words."""
        real_int8 = not variant.model.autograd
        if self.method == "gradient":
            if variant.twin is not None:
                return variant.twin, f"{self.name} on the fake-quant twin (exactly the int8 weights, with gradients)"
            if real_int8:
                raise XaiError(f"{variant.spec.label} has no fake-quant twin, so gradient methods cannot explain it; "
                               "audit it with perturbation methods instead.")
            if variant.emulated is not None:
                return variant.emulated, f"{self.name} on its float32 emulation"
            return variant.model, self.name
        if real_int8:
            return variant.model, f"{self.name} on the real int8 model"
        if variant.emulated is not None:
            return variant.emulated, f"{self.name} on its float32 emulation"
        return variant.model, self.name

    def explain(self, model: LoadedModel, samples, targets: np.ndarray) -> np.ndarray:
        """Attributions of `targets` in `samples`: maps (n, H, W) for images, values (n, d) for tables."""
        if self.kind == "image":
            from xai_core.attribution.image import explain_batch

            from xai_core.quantization.drift import occlusion_options

            options = occlusion_options(samples) if self.image_method == "occlusion" else {}
            return explain_batch(model, samples, self.image_method, targets=targets, layer=self.layer, **options).maps
        if self.method == "gradient":
            from xai_core.attribution.tabular import IntegratedGradientsSettings, explain_table

            result = explain_table(model, TableSet(samples), "integrated_gradients", IntegratedGradientsSettings(),
                                   background=self.background)
            return result.values[np.arange(len(samples)), :, targets]
        return leave_one_feature_out(model, samples.to_numpy(dtype=np.float32), self.baseline, targets)

    def agreement(self, reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sample: Spearman's ρ and the top-k overlap (tables: of |values|) of fp32's and a variant's."""
        rho = np.array([rank_correlation(a, b) for a, b in zip(reference, other)])
        if self.kind == "tabular":
            reference, other = np.abs(reference), np.abs(other)
        overlap = np.array([top_k_overlap(a, b, self.top_k) for a, b in zip(reference, other)])
        return rho, overlap

    @property
    def top_k_name(self) -> str:
        return f"top-{self.top_k:.0%} pixel overlap" if isinstance(self.top_k, float) else f"top-{self.top_k} overlap"


def leave_one_feature_out(model: LoadedModel, rows: np.ndarray, baseline: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """f_t(x) − f_t(x with feature j set to the baseline), per row and feature: a perturbation method (forward passes
    only), so it runs on real int8 models. One batch of n·(d+1) rows."""
    import torch

    n, d = rows.shape
    perturbed = np.repeat(rows[:, None, :], d + 1, axis=1)  # (n, d+1, d): the row itself, then one feature removed
    perturbed[:, np.arange(1, d + 1), np.arange(d)] = np.asarray(baseline, dtype=np.float32)[None, :]
    out = model.predict_proba(torch.from_numpy(perturbed.reshape(-1, d)))
    out = out.reshape(n, d + 1, -1)[np.arange(n), :, targets]  # (n, d+1)
    return out[:, :1] - out[:, 1:]


def audit_explainer(context: ComparisonContext, settings: AuditSettings,
                    background: TableSet | None = None) -> AuditExplainer:
    """The explainer the audit uses for `context`'s model (the same Grad-CAM layer as the drift, if any)."""
    model = context.model
    if model.info.input_kind == "image":
        from xai_core.attribution.image import METHODS
        from xai_core.quantization.drift import gradient_image_method

        top_k = 0.1 if settings.top_k is None else settings.top_k
        if settings.method == "perturbation":
            return AuditExplainer("image", "perturbation", "occlusion", top_k, image_method="occlusion")
        key, note = gradient_image_method(model)
        layer = getattr(context.drift, "layer", None) if key == "grad_cam" else None
        return AuditExplainer("image", "gradient", METHODS[key].name, top_k, layer=layer, image_method=key, note=note)
    if model.info.input_kind == "tabular":
        data = context.data
        rows = background.X if background is not None else data.X
        top_k = min(5, rows.shape[1]) if settings.top_k is None else settings.top_k
        baseline = rows.to_numpy(dtype=np.float64).mean(axis=0)
        if settings.method == "gradient":
            if not model.autograd:
                raise XaiError("This model has no gradients (TorchScript without autograd); audit it with "
                               "perturbation methods instead.")
            return AuditExplainer("tabular", "gradient", "integrated gradients", top_k, baseline=baseline,
                                  background=rows)
        return AuditExplainer("tabular", "perturbation", "leave-one-feature-out", top_k, baseline=baseline)
    raise XaiError("The compression audit is for image and tabular models; text models are compared on their own "
                   "page section.")


# ---------------------------------------------------------------------------------------- the flip set


@dataclass
class FlipSet:
    """One variant's audit set: samples whose prediction flips, then those whose explanation moved most, ranked.

    `frame`: one row per flipped or explained sample (sample id, class, predictions, p(fp32's class) before and
    after, rank correlation and top-k overlap when explained, `in_audit_set`, `reason`, `rank`), ranked.
    """

    label: str
    frame: pd.DataFrame
    n_samples: int  # samples whose predictions were compared
    n_explained: int
    method: str  # what explained the variant, in words
    class_column: str  # "label" or "fp32 prediction": what the per-class counts group by
    per_class: pd.DataFrame  # per class: flipped count and share of its samples, moved count and share of its explained

    @property
    def n_flipped(self) -> int:
        return int(self.frame["flipped"].sum())

    @property
    def n_moved(self) -> int:
        return int(((self.frame["reason"] == "explanation moved")).sum())

    @property
    def audit_set(self) -> pd.DataFrame:
        return self.frame[self.frame["in_audit_set"]]

    @property
    def share(self) -> float:
        """Share of the compared samples in the audit set (moved ones counted out of the explained)."""
        return self.n_flipped / self.n_samples if self.n_samples else 0.0



def flip_set(label: str, ids: list[str], fp32_outputs: np.ndarray, variant_outputs: np.ndarray,
             classes: np.ndarray, class_names: list[str], explained: np.ndarray | None = None,
             rho: np.ndarray | None = None, overlap: np.ndarray | None = None, moved_overlap: float = 0.5,
             task: str = "classification", method: str = "", class_column: str = "label") -> FlipSet:
    """The flip set from fp32's and a variant's outputs (n, k) on the same samples, and the explanation agreement
    (`rho`, `overlap`) of the samples at positions `explained`.

    Ranked: flipped samples first, by how much the variant's probability of fp32's class fell; then explained samples,
    by top-k overlap then rank correlation, lowest first. In the audit set: every flip, and every explained sample
    whose overlap is below `moved_overlap`. Regression has no flips: rows are ranked by explanation only.
    """
    fp32_outputs, variant_outputs = np.asarray(fp32_outputs), np.asarray(variant_outputs)
    n = len(fp32_outputs)
    if len(variant_outputs) != n or len(ids) != n or len(classes) != n:
        raise XaiError("fp32's outputs, the variant's, the sample ids and the classes must have one row per sample.")
    explained = np.zeros(0, dtype=int) if explained is None else np.asarray(explained, dtype=int)
    if task == "classification":
        base, new = fp32_outputs.argmax(axis=1), variant_outputs.argmax(axis=1)
        flipped = base != new
        p_before = fp32_outputs[np.arange(n), base]
        p_after = variant_outputs[np.arange(n), base]
    else:
        base, new = fp32_outputs[:, 0], variant_outputs[:, 0]
        flipped = np.zeros(n, dtype=bool)
        p_before, p_after = base, new
    frame = pd.DataFrame({
        "sample": [str(i) for i in ids], "position": np.arange(n),
        "class": [class_names[c] if 0 <= c < len(class_names) else str(c) for c in np.asarray(classes, dtype=int)],
        "fp32 prediction": [class_names[c] for c in base] if task == "classification" else base,
        "variant prediction": [class_names[c] for c in new] if task == "classification" else new,
        "flipped": flipped,
        "fp32 score of fp32's answer": p_before, "variant score of fp32's answer": p_after,
        "score drop": p_before - p_after,
        "rank correlation": np.nan, "top-k overlap": np.nan, "explained": False,
    })
    if len(explained):
        frame.loc[explained, "rank correlation"] = np.asarray(rho, dtype=np.float64)
        frame.loc[explained, "top-k overlap"] = np.asarray(overlap, dtype=np.float64)
        frame.loc[explained, "explained"] = True
    moved = frame["explained"] & (frame["top-k overlap"] < moved_overlap) & ~frame["flipped"]
    frame["reason"] = np.where(frame["flipped"], "prediction flips", np.where(moved, "explanation moved", ""))
    frame["in_audit_set"] = frame["flipped"] | moved
    frame = frame[frame["flipped"] | frame["explained"]]
    flipped_part = frame[frame["flipped"]].sort_values(["score drop", "position"], ascending=[False, True],
                                                       kind="stable")
    rest = frame[~frame["flipped"]].sort_values(["top-k overlap", "rank correlation", "position"], kind="stable")
    frame = pd.concat([flipped_part, rest]).reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return FlipSet(label, frame, n, len(explained), method, class_column,
                   _per_class(frame, classes, class_names, explained))


def _per_class(frame: pd.DataFrame, classes: np.ndarray, class_names: list[str], explained: np.ndarray) -> pd.DataFrame:
    names = np.array([class_names[c] if 0 <= c < len(class_names) else str(c) for c in np.asarray(classes, dtype=int)])
    rows = []
    for name in dict.fromkeys(names):
        n = int((names == name).sum())
        n_explained = int((names[explained] == name).sum()) if len(explained) else 0
        mine = frame[frame["class"] == name]
        flips = int(mine["flipped"].sum())
        moved = int((mine["reason"] == "explanation moved").sum())
        rows.append({"class": name, "samples": n, "flipped": flips, "flipped share": flips / n if n else 0.0,
                     "explained": n_explained, "explanation moved": moved,
                     "moved share": moved / n_explained if n_explained else np.nan})
    return pd.DataFrame(rows).sort_values(["flipped share", "moved share"], ascending=False,
                                          na_position="last").reset_index(drop=True)


# ---------------------------------------------------------------------------------------- group drift


@dataclass
class GroupDrift:
    """Per class (fp32's predicted class of the explained samples): fp32's and a variant's mean explanation, and how
    far apart they are. `frame` is ranked, the class that drifted most first."""

    label: str
    frame: pd.DataFrame  # class, samples, mean-map rank correlation, mean per-sample top-k overlap, drift
    means: dict[str, tuple[np.ndarray, np.ndarray]]  # class → (fp32's mean, the variant's mean)


def group_drift(label: str, reference: np.ndarray, values: np.ndarray, classes: np.ndarray, class_names: list[str],
                overlap: np.ndarray, kind: str) -> GroupDrift:
    """Mean explanation per class for fp32 and the variant (images: each map scaled to a peak |value| of 1; tables:
    mean |value|), ranked by 1 − Spearman's ρ of the two means (ties: lower mean per-sample overlap first)."""
    def normalised(a: np.ndarray) -> np.ndarray:
        if kind == "tabular":
            return np.abs(a)
        peak = np.abs(a).reshape(len(a), -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
        return np.divide(a, peak, out=np.zeros_like(a, dtype=np.float64), where=peak > 0)

    ref, val = normalised(np.asarray(reference, dtype=np.float64)), normalised(np.asarray(values, dtype=np.float64))
    rows, means = [], {}
    for c in dict.fromkeys(np.asarray(classes, dtype=int).tolist()):
        mask = np.asarray(classes) == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        a, b = ref[mask].mean(axis=0), val[mask].mean(axis=0)
        means[name] = (a, b)
        rho = rank_correlation(a, b)
        rows.append({"class": name, "samples": int(mask.sum()), "mean-explanation rank correlation": rho,
                     "mean top-k overlap": float(np.mean(overlap[mask])), "drift": 1.0 - rho})
    frame = pd.DataFrame(rows).sort_values(["drift", "mean top-k overlap"], ascending=[False, True],
                                           kind="stable").reset_index(drop=True)
    return GroupDrift(label, frame, means)


# ---------------------------------------------------------------------------------------- the bits curve


def mean_with_interval(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-sample values and its 95% percentile bootstrap interval over samples."""
    values = np.asarray(values, dtype=np.float64)
    low, high = scoring.bootstrap_interval(lambda i: float(values[i].mean()), len(values), n_bootstrap, seed)
    return float(values.mean()) if len(values) else float("nan"), low, high


@dataclass
class BitsAudit:
    """The bits curve with both the score and the explanation agreement, and where each stops holding.

    Accuracy (or R²) holds at b bits when the upper end of the 95% bootstrap interval of the paired score drop from
    fp32 (per-sample terms, `scoring.per_row_score_drop`) is at most `accuracy_tolerance`; without labels, agreement
    with fp32 is used instead (its drop from 1). Explanations hold at b bits when the lower ends of the 95% intervals
    of the mean top-k overlap and of the mean rank correlation with fp32's are at least `overlap_floor` and
    `correlation_floor`. "The lowest bit width that holds" is the lowest b such that every width from 8 bits down to b
    holds.
    """

    frame: pd.DataFrame  # bits, score (+ interval), score drop (+ interval), agreement, overlap/ρ (+ intervals), holds
    score_name: str
    explanation: str  # the method, in words
    top_k_name: str
    settings: AuditSettings
    lowest_accuracy_holds: int | None
    lowest_explanation_holds: int | None

    @property
    def differs(self) -> bool:
        return self.lowest_accuracy_holds != self.lowest_explanation_holds

    def verdict(self) -> str:
        """The finding in words."""
        s = self.settings
        granularity = "per channel" if s.per_channel else "per tensor"
        def where(b):
            return f"down to {b} bits" if b is not None else "at no tested bit width (not even 8 bits)"
        text = (f"With weights rounded {granularity}, {self.score_name} holds {where(self.lowest_accuracy_holds)} "
                f"(its drop from fp32 stays within {s.accuracy_tolerance:.0%}, 95% upper bound) and "
                f"{self.explanation} explanations hold {where(self.lowest_explanation_holds)} (95% lower bounds of "
                f"the {self.top_k_name} ≥ {s.overlap_floor:g} and of the rank correlation ≥ {s.correlation_floor:g}).")
        return text

    def warning(self) -> str | None:
        """A warning when explanations stop holding at a higher bit width than accuracy (or the other way round)."""
        a, e = self.lowest_accuracy_holds, self.lowest_explanation_holds
        if not self.differs:
            return None
        a_rank = a if a is not None else 99
        e_rank = e if e is not None else 99
        if e_rank > a_rank:
            return (f"Explanations drift before accuracy does: at {a} bits the {self.score_name} still holds, but the "
                    f"explanations hold only down to {e if e is not None else 'no tested width'}"
                    f"{' bits' if e is not None else ''}. Between them the model answers the same for other reasons: "
                    "review the flip set before shipping that width.")
        return (f"Accuracy breaks before the explanations move: explanations hold down to {e} bits but the "
                f"{self.score_name} only down to {a if a is not None else 'no tested width'}"
                f"{' bits' if a is not None else ''}.")


def lowest_holding(bits: list[int], holds: list[bool]) -> int | None:
    """The lowest of `bits` (in decreasing order) such that it and every wider one hold (None when the widest fails)."""
    lowest = None
    for b, ok in sorted(zip(bits, holds), key=lambda t: -t[0]):
        if not ok:
            break
        lowest = b
    return lowest


def bits_audit(context: ComparisonContext, explainer: AuditExplainer, samples, targets: np.ndarray,
               reference_maps: np.ndarray, settings: AuditSettings, progress: ProgressFn | None = None) -> BitsAudit:
    """Score and explanation agreement with bootstrap intervals at each of `settings.bits`."""
    model, task = context.model, context.task
    labels = context.labels
    rows = []
    for i, bits in enumerate(settings.bits):
        if progress is not None:
            progress(i, len(settings.bits), f"bits curve: {bits} bits")
        rounded = dataclasses.replace(model, module=copy_with_weights(model.module, bits, settings.per_channel, 0.0),
                                      sha256=f"{model.sha256}:audit-w{bits}")
        out = rounded.predict_proba(context.x)
        maps = explainer.explain(rounded, samples, targets)
        rho, overlap = explainer.agreement(reference_maps, maps)
        rows.append(_bits_row(bits, task, context.reference, out, labels, rho, overlap, settings))
    frame = pd.DataFrame(rows)
    score_name = context.score_name or "agreement with fp32"
    return BitsAudit(frame, score_name, explainer.name, explainer.top_k_name, settings,
                     lowest_holding(list(frame["bits"]), list(frame["accuracy holds"])),
                     lowest_holding(list(frame["bits"]), list(frame["explanations hold"])))


def _bits_row(bits: int, task: str, reference: np.ndarray, out: np.ndarray, labels: np.ndarray | None,
              rho: np.ndarray, overlap: np.ndarray, settings: AuditSettings) -> dict:
    n_boot, seed = settings.n_bootstrap, settings.seed
    row = {"bits": bits}
    if labels is not None:
        predicted = scoring.predictions(task, out)
        score, (low, high) = scoring.score_with_interval(task, predicted, labels, n_boot, seed)
        drop = scoring.per_row_score_drop(task, reference, out, labels)
        row.update({"score": score, "score low": low, "score high": high})
    else:
        drop = 1.0 - (reference.argmax(axis=1) == out.argmax(axis=1)) if task == "classification" else \
            scoring.per_row_score_drop(task, reference, out, None)
    mean_drop, drop_low, drop_high = mean_with_interval(drop, n_boot, seed)
    row.update({"score drop": mean_drop, "drop low": drop_low, "drop high": drop_high})
    if task == "classification":
        row["agreement"] = scoring.agreement(reference, out)
    for name, values in (("overlap", overlap), ("rank correlation", rho)):
        mean, low, high = mean_with_interval(values, n_boot, seed)
        row.update({name: mean, f"{name} low": low, f"{name} high": high})
    row["accuracy holds"] = bool(drop_high <= settings.accuracy_tolerance + 1e-12)
    row["explanations hold"] = bool(row["overlap low"] >= settings.overlap_floor
                                    and row["rank correlation low"] >= settings.correlation_floor)
    return row


# ---------------------------------------------------------------------------------------- the audit


@dataclass
class CompressionAudit:
    """The audit of every audited variant against fp32 (the page, the report and notebooks read this)."""

    flip_sets: dict[str, FlipSet]  # variant label → its flip set
    group_drift: dict[str, GroupDrift]
    bits: BitsAudit | None
    explainer: AuditExplainer
    explained_ids: list[str]
    reference: np.ndarray  # fp32's explanations of the explained samples
    values: dict[str, np.ndarray]  # variant label → its explanations of them
    targets: np.ndarray  # the class explained per sample (fp32's prediction)
    errors: dict[str, str]  # variants that could not be audited → why
    settings: AuditSettings
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Every variant's ranked flip set in one table (the CSV of sample ids and scores)."""
        frames = [fs.frame.assign(variant=label, method=fs.method) for label, fs in self.flip_sets.items()]
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        return frame[["variant"] + [c for c in frame.columns if c != "variant"]]

    def summary(self) -> pd.DataFrame:
        """One row per variant: samples, flips, moved explanations, shares."""
        return pd.DataFrame([{"variant": label, "samples": fs.n_samples, "flipped": fs.n_flipped,
                              "flipped share": fs.share, "explained": fs.n_explained,
                              "explanation moved": fs.n_moved,
                              "moved share": fs.n_moved / fs.n_explained if fs.n_explained else np.nan,
                              "explained with": fs.method}
                             for label, fs in self.flip_sets.items()])


def _sample_ids(data) -> list[str]:
    if isinstance(data, ImageSet):
        return [str(n) for n in data.names]
    if isinstance(data, TableSet):
        return [str(i) for i in data.X.index]
    return [str(i) for i in range(len(data))]


def _explained_samples(data, n: int):
    if isinstance(data, ImageSet):
        return data.images[:n]
    return data.X.iloc[:n]


def audit_variants(context: ComparisonContext, specs: list[VariantSpec], settings: AuditSettings | None = None,
                   background: TableSet | None = None, bits_curve: bool = True,
                   progress: ProgressFn | None = None) -> CompressionAudit:
    """Audit each variant in `specs` against fp32 on the comparison's samples: flip sets, group drift, and (with
    `bits_curve`) the bits curve with explanation agreement. Each variant is built on the comparison's lifted graph; one
    that cannot be built or explained is listed in `errors`, the others are still audited."""
    def variants():
        for spec in specs:
            try:
                yield spec.label, build_variant(context.model, spec, context=context.build)
            except XaiError as exc:
                yield spec.label, exc

    return audit_built_variants(context, variants(), len(specs), settings, background, bits_curve, progress)


def audit_built_variants(context: ComparisonContext, variants, n_variants: int, settings: AuditSettings | None = None,
                         background: TableSet | None = None, bits_curve: bool = True,
                         progress: ProgressFn | None = None) -> CompressionAudit:
    """`audit_variants` on variants already built: `variants` yields (label, Variant or the XaiError that building
    it raised)."""
    settings = settings or AuditSettings()
    started = time.perf_counter()
    steps: dict[str, float] = {}
    explainer = audit_explainer(context, settings, background)
    model, data = context.model, context.data
    ids = _sample_ids(data)
    n_explain = min(settings.n_explain, len(ids))
    samples = _explained_samples(data, n_explain)
    explained = np.arange(n_explain)
    task = context.task
    targets = (context.reference[:n_explain].argmax(axis=1) if task == "classification"
               else np.zeros(n_explain, dtype=int))
    class_names = list(model.info.class_names or []) if task == "classification" else []
    if context.labels is not None and task == "classification":
        classes, class_column = np.asarray(context.labels, dtype=int), "label"
    elif task == "classification":
        classes, class_column = context.reference.argmax(axis=1), "fp32 prediction"
    else:
        classes, class_column = np.zeros(len(ids), dtype=int), "all rows"
        class_names = ["all rows"]
    group_names = class_names if task == "classification" else ["all rows"]
    total = n_variants + (len(settings.bits) if bits_curve else 0) + 1

    def tick(step: int, message: str) -> None:
        if progress is not None:
            progress(min(step, total), total, message)

    tick(0, f"fp32: {explainer.name} of {n_explain} samples")
    lap = time.perf_counter()
    reference = explainer.explain(model, samples, targets)
    steps["fp32 explanations"] = time.perf_counter() - lap
    flip_sets, groups, values, errors = {}, {}, {}, {}
    for i, (label, variant) in enumerate(variants):
        tick(1 + i, f"auditing {label}")
        lap = time.perf_counter()
        try:
            if isinstance(variant, XaiError):
                raise variant
            explained_model, how = explainer.model_for(variant)
            out = variant.answer_model.predict_proba(context.x)
            maps = explainer.explain(explained_model, samples, targets)
        except XaiError as exc:
            errors[label] = str(exc)
            continue
        rho, overlap = explainer.agreement(reference, maps)
        flip_sets[label] = flip_set(label, ids, context.reference, out, classes, class_names, explained, rho, overlap,
                                    settings.moved_overlap, task, how, class_column)
        groups[label] = group_drift(label, reference, maps, targets if task == "classification" else
                                    np.zeros(n_explain, dtype=int), group_names, overlap, explainer.kind)
        values[label] = maps
        steps[label] = time.perf_counter() - lap
    bits = None
    if bits_curve:
        lap = time.perf_counter()
        offset = 1 + n_variants
        bits = bits_audit(context, explainer, samples, targets, reference, settings,
                          lambda done, _, message: tick(offset + done, message))
        steps["bits curve"] = time.perf_counter() - lap
    tick(total, "done")
    return CompressionAudit(flip_sets, groups, bits, explainer, ids[:n_explain], reference, values, targets, errors,
                            settings, time.perf_counter() - started, steps)

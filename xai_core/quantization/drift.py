"""Explanation drift: explanations of the same inputs by fp32 and by a variant, and how far the variant's moved.

Images: Grad-CAM on the layer fp32's Grad-CAM uses, for the class fp32 predicts. Models whose layers cannot be hooked
(TorchScript) or that have no spatial layer get Saliency instead (a gradient of the input, which works on any model
with autograd). Real int8 variants have no gradients: the gradient method runs on their fake-quant twin, and occlusion
runs on the real int8 model. Tables: Shapley values of the output fp32 predicts, against the same background row.
Text: Layer Integrated Gradients on the embedding layer (from the all-UNK document, as on the Text explanations page)
for the class fp32 predicts — on the fake-quant twin for real int8, which also gets leave-one-word-out on the real int8
model; TorchScript text models (no hookable embedding) get leave-one-word-out only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Union

import numpy as np
import pandas as pd

from xai_core.datasets import ImageSet, TableSet, TextSet
from xai_core.errors import XaiError
from xai_core.metrics import rank_correlation, top_k_overlap
from xai_core.model import LoadedModel
from xai_core.quantization.specs import Variant

NOT_FOR_TORCHSCRIPT = ("Grad-CAM needs to hook a layer, and TorchScript hides its layers (Grad-CAM drift is not for "
                       "TorchScript): drift is measured with Saliency, the gradient of the class score with respect to "
                       "each pixel, instead.")
NO_SPATIAL_LAYER = ("This model has no layer with a spatial output for Grad-CAM: drift is measured with Saliency, the "
                    "gradient of the class score with respect to each pixel, instead.")


TEXT_TOP_K = 3  # word drift: overlap of the 3 words pushing fp32's class most (the demos plant 1–3 evidence words)
TEXT_IG_STEPS = 32  # as on the Text explanations page
TEXT_TORCHSCRIPT = ("TorchScript hides the embedding layer, so Integrated Gradients cannot run: word drift is measured "
                    "with leave-one-word-out (each word alone replaced by UNK) on every variant instead.")


@dataclass
class ImageDriftReference:
    """fp32's explanations of the first images, which every variant's are compared with."""

    kind: ClassVar[str] = "image"
    method: str  # key in xai_core.attribution.image.METHODS: "grad_cam", or "saliency" where Grad-CAM cannot run
    method_name: str
    maps: np.ndarray  # (n, H, W)
    targets: np.ndarray  # the class explained in each image: fp32's prediction
    images: np.ndarray  # uint8 (n, H, W, C), as loaded
    names: list[str]
    layer: str | None  # Grad-CAM's layer
    note: str = ""  # why the method is not Grad-CAM
    occlusion: dict = field(default_factory=dict)  # occlusion settings used on real int8 variants


@dataclass
class TabularDriftReference:
    """fp32's Shapley values of the first rows, which every variant's are compared with."""

    kind: ClassVar[str] = "tabular"
    method: str  # "exact" or "sampled"
    values: np.ndarray  # (n, d): φ of the output fp32 predicts in each row
    feature_names: list[str]
    explained: list[str]  # the output explained in each row
    explained_index: np.ndarray
    rows: pd.DataFrame
    background: pd.DataFrame  # the baseline row(s)
    seed: int
    note: str = ""


@dataclass
class TextDriftReference:
    """fp32's word attributions of the first documents, which every variant's are compared with."""

    kind: ClassVar[str] = "text"
    method: str  # key in xai_core.attribution.text.METHODS: "integrated_gradients", or "occlusion" (TorchScript)
    method_name: str
    attribution: object  # fp32's xai_core.attribution.text.TextAttribution (documents, values, targets)
    settings: object  # the method's settings, the same for every variant
    top_k: int = TEXT_TOP_K
    note: str = ""

    @property
    def values(self) -> list[np.ndarray]:
        return self.attribution.values

    @property
    def targets(self) -> np.ndarray:
        return self.attribution.targets

    @property
    def documents(self) -> list:
        return self.attribution.documents

    @property
    def names(self) -> list[str]:
        return self.attribution.names


DriftReference = Union[ImageDriftReference, TabularDriftReference, TextDriftReference]


@dataclass
class VariantDrift:
    """How far one variant's explanations moved from fp32's."""

    metrics: dict[str, float]  # metric → mean over the explained inputs (1 = the same as fp32's)
    method: str  # what explained the variant, in words
    values: np.ndarray | None  # the variant's maps (n, H, W) or φ (n, d); None when only occlusion could run


def gradient_image_method(model: LoadedModel) -> tuple[str, str]:
    """The gradient method drift and the audit explain images with: Grad-CAM, or saliency (and why) when the model has
    no layer Grad-CAM can hook."""
    from xai_core.attribution.image import spatial_layers

    if not model.supports_layer_methods:
        return "saliency", NOT_FOR_TORCHSCRIPT
    if not spatial_layers(model):
        return "saliency", NO_SPATIAL_LAYER
    return "grad_cam", ""


def occlusion_options(images) -> dict[str, int]:
    """Occlusion's window and stride for drift and the audit: 64 patches per image, at least 4 pixels wide."""
    window = max(4, images.shape[2] // 8)
    return {"window": window, "stride": window}


def drift_reference(model: LoadedModel, data: ImageSet | TableSet, n: int, background: TableSet | None = None,
                    seed: int = 0) -> DriftReference | None:
    """fp32's explanations of the first `n` inputs of `data` (None when `n` is 0, or for data other than images and
    tables)."""
    n = min(n, len(data))
    if n <= 0:
        return None
    if isinstance(data, ImageSet):
        from xai_core.attribution.image import METHODS, explain_batch

        method, note = gradient_image_method(model)
        images = data.images[:n]
        base = explain_batch(model, images, method)
        return ImageDriftReference(method, METHODS[method].name, base.maps, base.targets, images, list(data.names[:n]),
                                   base.layer, note, occlusion_options(images))

    if isinstance(data, TextSet):
        return _text_reference(model, data.subset(np.arange(n)))
    if not isinstance(data, TableSet):
        return None  # explanation drift is measured for image, tabular and text models
    from xai_core.attribution.shapley import make_background, model_output_fn, shapley_values

    X = data.X.iloc[:n]
    bg = make_background(background.X if background is not None else data.X, kind="mean")
    base = shapley_values(model_output_fn(model), X, background=bg, seed=seed)
    explained = base.outputs.argmax(axis=1) if model.info.task == "classification" else np.zeros(n, dtype=int)
    values = base.values[np.arange(n), :, explained]
    return TabularDriftReference(base.method, values, list(base.feature_names),
                                 [base.output_names[i] for i in explained], explained, X, bg, seed)


def _text_reference(model: LoadedModel, data: TextSet) -> TextDriftReference:
    from xai_core.attribution.text import METHODS, IntegratedGradientsTextSettings, OcclusionTextSettings, explain_text

    if model.supports_layer_methods:
        method, settings, note = "integrated_gradients", IntegratedGradientsTextSettings(n_steps=TEXT_IG_STEPS), ""
    else:
        method, settings, note = "occlusion", OcclusionTextSettings(), TEXT_TORCHSCRIPT
    base = explain_text(model, data, method, settings)
    return TextDriftReference(method, METHODS[method].name, base, settings, note=note)


def fp32_occlusion(model: LoadedModel, reference: ImageDriftReference | TextDriftReference):
    """fp32's occlusion maps of the reference images, or its leave-one-word-out values of the reference documents (what
    a real int8 model's are compared with)."""
    if isinstance(reference, TextDriftReference):
        return _leave_one_word_out(model, reference)
    from xai_core.attribution.image import explain_batch

    return explain_batch(model, reference.images, "occlusion", targets=reference.targets, **reference.occlusion).maps


def _leave_one_word_out(model: LoadedModel, reference: TextDriftReference) -> list[np.ndarray]:
    from xai_core.attribution.text import explain_text

    return explain_text(model, reference.documents, "occlusion", targets=reference.targets).values


def variant_drift(variant: Variant, reference: DriftReference,
                  occlusion_reference: Callable[[], np.ndarray] | None = None) -> VariantDrift:
    """`variant`'s explanations of the reference inputs, and their similarity to fp32's.
    `occlusion_reference()`: fp32's occlusion maps, asked for only when the variant is a real int8 model."""
    if isinstance(reference, ImageDriftReference):
        return _image_drift(variant, reference, occlusion_reference)
    if isinstance(reference, TextDriftReference):
        return _text_drift(variant, reference, occlusion_reference)
    return _tabular_drift(variant, reference)


def word_drift_metrics(name: str, reference: list[np.ndarray], values: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean over documents of Spearman's ρ between fp32's and a variant's word values, and the share of fp32's top-k
    words (pushing its class most) that are also the variant's top-k."""
    return {f"{name} rank correlation": _mean_pairs(rank_correlation, reference, values),
            f"{name} top-{k} word overlap": _mean_pairs(lambda a, b: top_k_overlap(a, b, k), reference, values)}


def _text_drift(variant: Variant, ref: TextDriftReference, occlusion_reference) -> VariantDrift:
    from xai_core.attribution.text import explain_text

    name = "IG" if ref.method == "integrated_gradients" else "Leave-one-word-out"
    metrics: dict[str, float] = {}
    values = None
    real_int8 = not variant.model.autograd
    if ref.method == "integrated_gradients":
        gradient_model = variant.gradient_model
        if gradient_model.autograd:
            values = explain_text(gradient_model, ref.documents, ref.method, ref.settings, targets=ref.targets).values
            metrics.update(word_drift_metrics(name, ref.values, values, ref.top_k))
            method = ("Layer IG on the embeddings of the fake-quant twin" if variant.twin is not None else
                      "Layer IG on the embeddings of its float32 emulation" if variant.emulated is not None else
                      "Layer IG on the embeddings")
        else:
            method = "no Layer IG (it needs gradients and this variant has no fake-quant twin)"
        if real_int8:
            if occlusion_reference is None:
                raise XaiError("Leave-one-word-out drift of a real int8 variant needs fp32's values.")
            occlusion = explain_text(variant.model, ref.documents, "occlusion", targets=ref.targets).values
            metrics.update(word_drift_metrics("Leave-one-word-out", occlusion_reference(), occlusion, ref.top_k))
            method += "; leave-one-word-out on the real int8 model"
            if values is None:
                values = occlusion
    else:
        values = explain_text(variant.answer_model, ref.documents, ref.method, ref.settings, targets=ref.targets).values
        metrics.update(word_drift_metrics(name, ref.values, values, ref.top_k))
        method = "leave-one-word-out" + (" on the real int8 model" if real_int8 else
                                         " on its float32 emulation" if variant.emulated is not None else "")
    return VariantDrift(metrics, method, values)


def _image_drift(variant: Variant, ref: ImageDriftReference, occlusion_reference) -> VariantDrift:
    from xai_core.attribution.image import explain_batch

    name = ref.method_name
    metrics: dict[str, float] = {}
    values = None
    gradient_model = variant.gradient_model
    if gradient_model.autograd:
        values = explain_batch(gradient_model, ref.images, ref.method, targets=ref.targets, layer=ref.layer).maps
        metrics[f"{name} rank correlation"] = _mean_pairs(rank_correlation, ref.maps, values)
        metrics[f"{name} top-10% pixel overlap"] = _mean_pairs(lambda a, b: top_k_overlap(a, b, 0.1), ref.maps, values)
        method = (f"{name} on the fake-quant twin" if variant.twin is not None else
                  f"{name} on its float32 emulation" if variant.emulated is not None else name)
    else:
        method = f"no {name} ({name} needs gradients and this variant has no fake-quant twin)"
    if not variant.model.autograd:
        if occlusion_reference is None:
            raise XaiError("Occlusion drift of a real int8 variant needs fp32's occlusion maps.")
        occlusion = explain_batch(variant.model, ref.images, "occlusion", targets=ref.targets, **ref.occlusion).maps
        metrics["occlusion rank correlation"] = _mean_pairs(rank_correlation, occlusion_reference(), occlusion)
        method += "; occlusion on the real int8 model"
    return VariantDrift(metrics, method, values)


def _tabular_drift(variant: Variant, ref: TabularDriftReference) -> VariantDrift:
    from xai_core.attribution.shapley import model_output_fn, shapley_values

    model = variant.answer_model
    n = len(ref.rows)
    phi = shapley_values(model_output_fn(model), ref.rows, background=ref.background, seed=ref.seed).values
    phi = phi[np.arange(n), :, ref.explained_index]
    k = min(5, phi.shape[1])
    metrics = {"SHAP rank correlation": _mean_pairs(rank_correlation, ref.values, phi),
               f"SHAP top-{k} feature overlap": _mean_pairs(lambda a, b: top_k_overlap(np.abs(a), np.abs(b), k),
                                                            ref.values, phi)}
    method = ref.method + (" on the real int8 model" if not variant.model.autograd else
                           " on its float32 emulation" if variant.emulated is not None else "")
    return VariantDrift(metrics, method, phi)


def variant_word_attribution(reference: TextDriftReference, values: list[np.ndarray]):
    """fp32's TextAttribution of the drift documents with a variant's word values in place of fp32's (same documents,
    same explained class), for drawing a variant's words as fp32's are drawn."""
    import dataclasses

    return dataclasses.replace(reference.attribution, values=[np.asarray(v, dtype=np.float64) for v in values],
                               convergence_deltas=None, base_values=None, standard_errors=None, notes=[])


def word_drift_frame(reference: TextDriftReference, variants: dict[str, list[np.ndarray]], index: int) -> pd.DataFrame:
    """One document's words with fp32's value and each variant's (columns by label), ranked by fp32's value."""
    doc = reference.documents[index]
    frame = pd.DataFrame({"position": np.arange(1, doc.n_words + 1), "word": doc.words,
                          "fp32": reference.values[index]})
    for label, values in variants.items():
        frame[label] = values[index]
    return frame.sort_values("fp32", ascending=False, kind="stable").reset_index(drop=True)


def _mean_pairs(fn, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([fn(x, y) for x, y in zip(a, b)]))

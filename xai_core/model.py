"""The one model object every analysis takes: a module in eval mode plus what it expects and returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.text.tokenizer import TokenizerSpec

Task = Literal["classification", "regression"]
InputKind = Literal["image", "tabular", "text"]
OutputSpace = Literal["probability", "logit"]
ModelFormat = Literal["export", "state_dict", "torchscript", "pickle"]
ResizeMode = Literal["crop", "stretch", "pad"]

# ImageNet statistics: the normalisation torchvision's architectures are trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects and returns. Read from a JSON sidecar, inferred, or typed on the page.

    `input_shape` excludes the batch dimension: (C, H, W) for images, (n_features,) for tables.
    Images are fed to the model as float tensors: pixels scaled to [0, 1], then (x - mean) / std
    per channel, after being brought to H×W by `resize`: "crop" (scale the shorter side, centre-crop),
    "stretch" (scale both sides, ignoring the aspect ratio) or "pad" (scale the longer side, pad with black).
    Tabular models take the raw feature values in `feature_names` order. Text models take int64 token ids
    (n, max_length) made by `tokenizer` (PAD after the last token); their input_shape is (max_length,).
    """

    name: str = "model"
    task: Task = "classification"
    input_kind: InputKind = "image"
    input_shape: tuple[int, ...] = (3, 224, 224)
    class_names: tuple[str, ...] = ()
    target_name: str | None = None
    feature_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    architecture: str | None = None
    description: str = ""
    resize: ResizeMode = "crop"
    tokenizer: TokenizerSpec | None = None  # text models only

    @property
    def n_outputs(self) -> int:
        return len(self.class_names) if self.task == "classification" else 1

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model takes; images only."""
        return int(self.input_shape[-2]), int(self.input_shape[-1])

    @property
    def channels(self) -> int:
        return int(self.input_shape[0]) if self.input_kind == "image" else 0

    def example_input(self, n: int = 1) -> torch.Tensor:
        """A batch of n inputs of the right shape and type: zeros, or PAD token ids (int64) for a text model."""
        if self.input_kind == "text" and self.tokenizer is not None:
            return torch.full((n, *self.input_shape), self.tokenizer.pad_id, dtype=torch.int64)
        return torch.zeros((n, *self.input_shape))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelInfo":
        """Build from a sidecar dict, checking each field and naming the wrong one."""
        if not isinstance(data, dict):
            raise XaiError("The metadata sidecar must be a JSON object, e.g. {\"task\": \"classification\"}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            hints = " ".join(_field_hint(name, known) for name in unknown)
            raise XaiError(f"Unknown metadata field(s) {unknown}.{(' ' + hints) if hints.strip() else ''} "
                           f"Allowed fields: {sorted(known)}.")
        values = dict(data)
        if "task" in values and values["task"] not in ("classification", "regression"):
            raise XaiError(f"Metadata 'task' must be 'classification' or 'regression', not {values['task']!r}.")
        if "resize" in values and values["resize"] not in ("crop", "stretch", "pad"):
            raise XaiError(f"Metadata 'resize' must be 'crop', 'stretch' or 'pad', not {values['resize']!r}.")
        if "input_kind" in values and values["input_kind"] not in ("image", "tabular", "text"):
            raise XaiError(f"Metadata 'input_kind' must be 'image', 'tabular' or 'text', not {values['input_kind']!r}.")
        if values.get("tokenizer") is not None:
            values["tokenizer"] = TokenizerSpec.from_dict(values["tokenizer"])
        for key in ("input_shape",):
            if key in values:
                try:
                    values[key] = tuple(int(v) for v in values[key])
                except (TypeError, ValueError):
                    raise XaiError(f"Metadata '{key}' must be a list of integers, e.g. [3, 224, 224].") from None
        for key in ("class_names", "feature_names"):
            if key in values:
                if not isinstance(values[key], (list, tuple)):
                    raise XaiError(f"Metadata '{key}' must be a list of names.")
                values[key] = tuple(str(v) for v in values[key])
        for key in ("mean", "std"):
            if key in values:
                try:
                    values[key] = tuple(float(v) for v in values[key])
                except (TypeError, ValueError):
                    raise XaiError(f"Metadata '{key}' must be a list of numbers, one per channel.") from None
        return cls(**values)

    def updated(self, **changes) -> "ModelInfo":
        return replace(self, **changes)


# Names people write in sidecars for fields that have another name here.
FIELD_ALIASES = {
    "input": "input_shape", "shape": "input_shape", "input_size": "input_shape", "image_size": "input_shape",
    "size": "input_shape", "target": "target_name", "label": "target_name", "target_column": "target_name",
    "classes": "class_names", "labels": "class_names", "class_labels": "class_names", "features": "feature_names",
    "columns": "feature_names", "feature_columns": "feature_names", "arch": "architecture", "model": "architecture",
    "normalize": "mean", "normalization": "mean", "norm_mean": "mean", "norm_std": "std", "type": "task",
    "kind": "input_kind", "modality": "input_kind", "resize_mode": "resize", "crop": "resize",
}
_FIELD_EXAMPLES = {
    "input_shape": "a list without the batch dimension, e.g. [3, 224, 224] for images or [8] for 8 features",
    "mean": "'mean' and 'std', one number per channel, e.g. \"mean\": [0.5, 0.5, 0.5], \"std\": [0.5, 0.5, 0.5]",
    "target_name": "the name of the label column in your data, e.g. \"target_name\": \"quality\"",
}


def _field_hint(name: str, known: set[str]) -> str:
    """'For 'image_size' use 'input_shape' (…)' — the field a wrongly named sidecar entry most likely means."""
    import difflib

    target = FIELD_ALIASES.get(name.lower()) or next(iter(difflib.get_close_matches(name, sorted(known), 1, 0.6)), None)
    if target is None:
        return ""
    example = _FIELD_EXAMPLES.get(target)
    return f"Did you mean '{target}' instead of '{name}'?" + (f" ({example})" if example else "")


@dataclass
class LoadedModel:
    """A model ready to explain. `module` is shared (cached): never mutate it, never leave hooks on it."""

    module: nn.Module
    info: ModelInfo
    format: ModelFormat
    sha256: str
    size_bytes: int
    notes: list[str] = field(default_factory=list)
    layer_types: dict[str, str] = field(default_factory=dict)  # submodule name → original class name
    autograd: bool = True  # False for real int8 variants: gradient methods use their fake-quant twin
    assumed: dict[str, str] = field(default_factory=dict)  # ModelInfo field → why its value is a guess, not a fact
    # True for a model its caller built for itself and explains from one thread at a time (a quantized variant inside a
    # comparison): explanations hook its module directly, removing their hooks after, instead of a copy of it
    private: bool = False


    @property
    def supports_layer_methods(self) -> bool:
        """Grad-CAM and other layer methods need real submodules to hook (not TorchScript)."""
        return self.format != "torchscript" and self.autograd

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def forward_batched(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Run the model on `x` in batches under no_grad and return the raw outputs (logits), shape (n, k).
        `batch_size`: by default `cache_friendly_batch(x)`."""
        batch_size = batch_size or cache_friendly_batch(x)
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                out = self.module(x[start : start + batch_size]).detach()
                outs.append(out.reshape(len(out), -1).float())
        if not outs:
            return torch.empty((0, self.info.n_outputs))
        return torch.cat(outs)

    def predict_proba(self, x: torch.Tensor, batch_size: int | None = None,
                      space: OutputSpace = "probability") -> np.ndarray:
        """Class probabilities (or logits, `space="logit"`) for classifiers; predictions (n, 1) for regression."""
        return output_scores(self.forward_batched(x, batch_size), self.info.task, space).numpy()

    def predict(self, x: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        """Predicted class index (classification) or predicted value (regression), shape (n,)."""
        proba = self.predict_proba(x, batch_size)
        if self.info.task == "classification":
            return proba.argmax(axis=1)
        return proba[:, 0]


BATCH_ELEMENTS = 2 ** 21  # input numbers per forward batch (8 MB of float32): see cache_friendly_batch
IMAGE_BATCH, OTHER_BATCH = 64, 256  # the largest batches for images (N, C, H, W) and for everything else


def cache_friendly_batch(x: torch.Tensor) -> int:
    """The batch size for running the model on `x`: a power of two whose inputs hold at most `BATCH_ELEMENTS`
    numbers, and at most 64 images (their activations, many channels wide, are what spills out of the CPU's caches)
    or 256 other inputs. Measured with one thread on 2-core EPYC, 400 images, s at batch 16/32/64/128/256: shapes
    CNN 0.25/0.24/0.24/0.33/0.40, digits CNN (32×32) 0.18/0.17/0.16/0.24/0.28, shapes ViT 0.27/0.26/0.28/0.25/0.26;
    torchvision resnet18 on 224×224, 64 images: 2.8 s at 8, 3.7 s at 64."""
    per_input = max(1, x[0].numel()) if len(x) else 1
    fits = max(1, BATCH_ELEMENTS // per_input)
    largest = IMAGE_BATCH if x.ndim == 4 else OTHER_BATCH
    return int(min(largest, 1 << (fits.bit_length() - 1)))


def output_scores(raw: torch.Tensor, task: str, space: OutputSpace = "probability") -> torch.Tensor:
    """The one place raw model outputs become what is explained and scored: (n, ...) → (n, k).

    Classification, space "probability": softmax over the classes (a single logit is a binary sigmoid classifier:
    [1 − p, p]); space "logit": the raw scores. Regression: the raw prediction whatever the space. Differentiable.
    """
    if space not in ("probability", "logit"):
        raise XaiError(f"The output space must be 'probability' or 'logit', not {space!r}.")
    out = raw.reshape(raw.shape[0], -1)
    if task != "classification" or space == "logit":
        return out
    if out.shape[1] == 1:
        p = torch.sigmoid(out)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(out, dim=1)


def class_names_or_default(names: Sequence[str], n: int) -> tuple[str, ...]:
    """The given class names if there are `n` of them, else 'class 0' … 'class n-1'."""
    if len(names) == n:
        return tuple(names)
    return tuple(f"class {i}" for i in range(n))

"""The data objects every analysis takes: a set of images or a table, already checked against a model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from xai_core.model import ModelInfo


@dataclass
class ImageSet:
    """Images resized to the model's input size, as uint8 arrays (n, H, W, C), C = 1 or 3.

    `labels` are class indices into the model's class names (or None when unlabelled);
    `masks` are optional boolean ground-truth object masks (n, H, W) (the shapes demo has them).
    """

    images: np.ndarray
    names: list[str]
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index)
        return ImageSet(
            images=self.images[index],
            names=[self.names[i] for i in np.atleast_1d(index)],
            labels=None if self.labels is None else self.labels[index],
            masks=None if self.masks is None else self.masks[index],
            notes=list(self.notes),
        )


def images_to_tensor(images: np.ndarray, info: ModelInfo) -> torch.Tensor:
    """uint8 (n, H, W, C) → the float tensor (n, C, H, W) the model takes: [0, 1], then (x - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    x = x.permute(0, 3, 1, 2).contiguous()
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


@dataclass
class TableSet:
    """Feature rows in the model's feature order, numeric, finite; `y` is the target when known."""

    X: pd.DataFrame
    y: pd.Series | None = None
    target_name: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.X.columns]

    def to_tensor(self) -> torch.Tensor:
        return torch.from_numpy(np.array(self.X.to_numpy(dtype=np.float32), copy=True))


@dataclass
class TextSet:
    """Documents for a text model, tokenized with its tokenizer; `labels` are class indices (or None).

    `evidence` optionally names, per document, the words known to carry the class (the planted-evidence demo has
    them), to score explanations against.
    """

    texts: list[str]
    names: list[str]
    labels: np.ndarray | None = None
    documents: list = field(default_factory=list)  # xai_core.text.tokenizer.TokenizedText, one per text
    evidence: list[tuple[str, ...]] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def y(self) -> pd.Series | None:
        """The labels as a Series (the same attribute a TableSet has), or None."""
        return None if self.labels is None else pd.Series(self.labels, name="label")

    def to_tensor(self) -> torch.Tensor:
        """Token ids (n, max_length), int64."""
        return torch.from_numpy(np.stack([d.ids for d in self.documents]).astype(np.int64))

    def subset(self, index) -> "TextSet":
        index = np.atleast_1d(np.asarray(index))
        return TextSet(
            texts=[self.texts[i] for i in index], names=[self.names[i] for i in index],
            labels=None if self.labels is None else self.labels[index],
            documents=[self.documents[i] for i in index],
            evidence=None if self.evidence is None else [self.evidence[i] for i in index], notes=list(self.notes),
        )

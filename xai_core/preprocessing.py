"""How images become the model's input, made visible and checkable: the usual conventions tried on labelled data.

A wrong normalisation or input size gives no error, only a silently wrong accuracy and explanations of wrongly scaled
inputs. When nothing declares them (`LoadedModel.assumed`), `check_preprocessing` scores the model on the user's
labelled images under each usual convention — pixels in [0, 1], ImageNet statistics, [−1, 1] — and, when the input size
was assumed too, at the images' own size; `PreprocessingCheck.better` names a convention that scores far better.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from xai_core import scoring
from xai_core.data_loading import MAX_IMAGE_PIXELS, load_data
from xai_core.datasets import ImageSet, images_to_tensor
from xai_core.errors import XaiError
from xai_core.model import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, ModelInfo

# A convention scores "far better" when it beats the current one by this much accuracy, and its 95% interval's lower
# end is above the current accuracy.
MIN_GAIN = 0.05
MAX_CHECKED_IMAGES = 160  # enough to tell a fitting convention from a wrong one (intervals ±0.08 at worst)


@dataclass(frozen=True)
class Normalisation:
    name: str  # short, for labels: "[0, 1]", "ImageNet", "[−1, 1]"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    how: str = ""  # what it does to a pixel value


def conventions(channels: int) -> list[Normalisation]:
    """The normalisations image models are usually trained with, for this many channels."""
    found = [Normalisation("[0, 1]", (0.0,) * channels, (1.0,) * channels, "pixels / 255, no normalisation"),
             Normalisation("[−1, 1]", (0.5,) * channels, (0.5,) * channels, "(pixels / 255 − 0.5) / 0.5")]
    if channels == 3:
        found.insert(1, Normalisation("ImageNet", IMAGENET_MEAN, IMAGENET_STD, "(pixels / 255 − ImageNet mean) / std"))
    return found


def normalisation_name(info: ModelInfo) -> str:
    """The convention `info` uses, by name, or its numbers."""
    for convention in conventions(info.channels):
        if np.allclose(convention.mean, info.mean, atol=1e-4) and np.allclose(convention.std, info.std, atol=1e-4):
            return f"{convention.name} ({convention.how})"
    return "mean " + ", ".join(f"{m:.4g}" for m in info.mean) + " · std " + ", ".join(f"{s:.4g}" for s in info.std)


@dataclass(frozen=True)
class ConventionScore:
    """The model's accuracy on the labelled images under one preprocessing convention."""

    normalisation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]  # (height, width)
    accuracy: float
    interval: tuple[float, float]
    n_images: int
    current: bool = False

    @property
    def label(self) -> str:
        return f"{self.normalisation}, {self.input_size[0]}×{self.input_size[1]}"


@dataclass
class PreprocessingCheck:
    """Every convention tried, best first; `better` is set when one scores far better than the current one."""

    scores: list[ConventionScore]
    current: ConventionScore
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> ConventionScore:
        return self.scores[0]

    @property
    def better(self) -> ConventionScore | None:
        best = self.best
        if best.current or best.accuracy - self.current.accuracy < MIN_GAIN or best.interval[0] <= self.current.accuracy:
            return None
        return best


def native_sizes(files: list[tuple[str, bytes]]) -> Counter:
    """How many uploaded images have each (height, width), read from their headers (nothing is decoded)."""
    import io
    import zipfile

    from PIL import Image

    from xai_core.data_loading import _zip_images

    sizes: Counter = Counter()

    def add(data: bytes) -> None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height <= MAX_IMAGE_PIXELS:
                    sizes[(img.height, img.width)] += 1
        except Exception:  # an unreadable file is reported by the loader itself
            return

    for name, data in files:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            try:
                for _member, member_bytes, _folder in _zip_images(name, data):
                    add(member_bytes)
            except (XaiError, zipfile.BadZipFile):
                continue
        elif not name.lower().endswith((".csv", ".parquet", ".tsv", ".txt", ".pq")):
            add(data)
    return sizes


def check_preprocessing(model: LoadedModel, files: list[tuple[str, bytes]], label_pattern: str | None = None,
                        data: ImageSet | None = None, seed: int = 0) -> PreprocessingCheck:
    """Score the model on the labelled images under each usual normalisation (and, when the input size was assumed,
    at the images' own common size too). Needs labels; at most `MAX_CHECKED_IMAGES` images (a seeded sample)."""
    info = model.info
    if info.input_kind != "image" or info.task != "classification":
        raise XaiError("The preprocessing check is for image classifiers.")
    sizes = [info.image_size]
    notes: list[str] = []
    if "input_shape" in model.assumed:
        common = native_sizes(files).most_common(1)
        if common and common[0][0] != info.image_size:
            sizes.append(common[0][0])
    current_name = normalisation_name(info).split(" (")[0]
    candidates = [(Normalisation(current_name, info.mean, info.std), True)]
    candidates += [(c, False) for c in conventions(info.channels) if c.name != current_name]
    scores: list[ConventionScore] = []
    for size in sizes:
        sized = info.updated(input_shape=(info.channels, *size))
        images = data if data is not None and size == info.image_size else load_data(files, sized, label_pattern=label_pattern)
        if images.labels is None:
            raise XaiError("The preprocessing check needs labelled images (class folders, a label pattern or a CSV of "
                           "file → label).")
        index = np.arange(len(images))
        if len(index) > MAX_CHECKED_IMAGES:
            index = np.sort(np.random.default_rng(seed).choice(len(index), MAX_CHECKED_IMAGES, replace=False))
        for convention, is_current in candidates:
            variant = dataclasses.replace(model, info=sized.updated(mean=convention.mean, std=convention.std))
            try:
                predicted = variant.predict(images_to_tensor(images.images[index], variant.info))
            except Exception as exc:  # the user's model may refuse another input size: that size is not a candidate
                notes.append(f"At {size[0]}×{size[1]} the model fails ({str(exc).splitlines()[0][:120]}).")
                break
            labels = images.labels[index]
            accuracy, interval = scoring.score_with_interval("classification", predicted, labels, seed=seed)
            scores.append(ConventionScore(convention.name, tuple(convention.mean), tuple(convention.std), size, accuracy,
                                          interval, len(index), current=is_current and size == info.image_size))
    current = next(s for s in scores if s.current)
    scores.sort(key=lambda s: (-s.accuracy, not s.current))
    return PreprocessingCheck(scores, current, notes)

"""The embedded demos: small models trained by `python -m xai_core.demo.train`, with held-out data in `assets/`.

Demos load through the same code as uploads (`load_model`, `load_images`, `prepare_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xai_core.data_loading import load_images, load_texts, prepare_table, read_table
from xai_core.datasets import ImageSet, TableSet, TextSet
from xai_core.loading import load_model
from xai_core.model import LoadedModel

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class Demo:
    key: str
    title: str
    model_file: str
    data_file: str
    train_file: str | None = None  # tabular: training rows, the background for SHAP and surrogates
    masks_file: str | None = None  # shapes: ground-truth object masks
    min_score: float = 0.95  # the held-out score (accuracy, or R²) its shipped model must reach: the tests hold it to it


DEMOS: dict[str, Demo] = {
    d.key: d
    for d in (
        Demo("shapes", "Shapes (image, 64×64 scenes, CNN)", "shapes.pt2", "shapes_test.zip",
             masks_file="shapes_masks.npz"),
        Demo("shapes_vit", "Shapes (image, 64×64 scenes, Vision Transformer)", "shapes_vit.pt2", "shapes_test.zip",
             masks_file="shapes_masks.npz"),
        Demo("digits", "Handwritten digits (image, 32×32, CNN)", "digits.pt2", "digits_test.zip"),
        Demo("breast_cancer", "Breast cancer (table, binary classifier)", "breast_cancer.pt2",
             "breast_cancer_test.csv", train_file="breast_cancer_train.csv"),
        Demo("wine", "Wine (table, 3 classes)", "wine.pt2", "wine_test.csv", train_file="wine_train.csv"),
        Demo("diabetes", "Diabetes progression (table, regression)", "diabetes.pt2", "diabetes_test.csv",
             train_file="diabetes_train.csv", min_score=0.30),
    )
}

# Text demos: documents with planted sentiment words (xai_core/demo/text.py), shared by both models.
DEMOS.update({d.key: d for d in (
    Demo("text_bilstm", "Planted sentiment words (text, BiLSTM)", "text_bilstm.pt2", "text_planted_test.csv"),
    Demo("text_transformer", "Planted sentiment words (text, Transformer)", "text_transformer.pt2",
         "text_planted_test.csv"),
)})

# Text demos on a real corpus: the topic of quotations from Debian's fortune cookies (xai_core/demo/text.py). Three
# topics, the largest 44% of the held-out quotations: the thresholds are well above that, not near-perfect. The
# training quotations (text_fortunes_train.csv) ship for the tests only.
DEMOS.update({d.key: d for d in (
    Demo("text_fortunes_bilstm", "Fortune cookies by topic (text, real corpus, BiLSTM)", "text_fortunes_bilstm.pt2",
         "text_fortunes_test.csv", min_score=0.55),
    Demo("text_fortunes_transformer", "Fortune cookies by topic (text, real corpus, Transformer)",
         "text_fortunes_transformer.pt2", "text_fortunes_test.csv", min_score=0.55),
)})


def demo_model_bytes(key: str, assets: Path = ASSETS) -> tuple[bytes, bytes]:
    """The demo's model file and its JSON sidecar, as an upload would bring them."""
    demo = DEMOS[key]
    path = assets / demo.model_file
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def load_demo_model(key: str, assets: Path = ASSETS) -> LoadedModel:
    model_bytes, sidecar = demo_model_bytes(key, assets)
    return load_model(model_bytes, DEMOS[key].model_file, sidecar=sidecar)


def load_demo_data(key: str, model: LoadedModel, assets: Path = ASSETS, split: str = "test") -> ImageSet | TableSet | TextSet:
    """The demo's held-out data (or, for tables, `split="train"`), checked against the model like an upload."""
    demo = DEMOS[key]
    if model.info.input_kind == "text":
        return load_texts([(demo.data_file, (assets / demo.data_file).read_bytes())], model.info)
    if model.info.input_kind == "image":
        data = load_images([(demo.data_file, (assets / demo.data_file).read_bytes())], model.info)
        if demo.masks_file:
            stored = np.load(assets / demo.masks_file)
            by_name = dict(zip(stored["names"].tolist(), stored["masks"]))
            data.masks = np.stack([by_name[name] for name in data.names])
        return data
    name = demo.train_file if split == "train" else demo.data_file
    return prepare_table(read_table((assets / name).read_bytes(), name), model.info)


def load_demo(key: str, assets: Path = ASSETS) -> tuple[LoadedModel, ImageSet | TableSet]:
    """Model and held-out data of one demo."""
    model = load_demo_model(key, assets)
    return model, load_demo_data(key, model, assets)

"""Train the embedded demo models and write them, with their held-out data, to `assets/`.

    python -m xai_core.demo.train                    # every demo, into <project>/assets/
    python -m xai_core.demo.train --only digits      # retrain one demo
    python -m xai_core.demo.train --out /tmp/assets  # somewhere else

Each demo NAME writes NAME.pt2 (a torch.export program, dynamic batch dimension), NAME.json (a
`ModelInfo` sidecar) and its held-out data. Everything is seeded: the data files are byte-identical
from run to run; the weights may differ in the last bits (multi-threaded float sums).
A demo whose held-out score misses its threshold raises instead of writing weaker assets.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from xai_core.demo.architectures import DigitsCNN, ShapesResNet, TabularMLP, shapes_vit
from xai_core.demo.shapes import SHAPE_CLASSES, generate_scenes
from xai_core.model import ModelInfo

log = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "assets"
SEED = 0
TEST_FRACTION = 0.25
MAX_BATCH = 4096
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps keep the archives byte-identical


@dataclass
class DemoResult:
    """What one demo's training produced: its held-out score and the files written."""

    name: str
    metric_name: str
    metric: float
    threshold: float
    seconds: float
    files: list[Path] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- writing assets


def _write_bytes(path: Path, data: bytes) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _zip_bytes(members: Sequence[tuple[str, bytes]], compress: bool) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """Like np.savez_compressed, but with fixed timestamps (np.load reads it the same way)."""
    members = []
    for key, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        members.append((f"{key}.npy", buffer.getvalue()))
    return _zip_bytes(members, compress=True)


def write_image_zip(path: Path, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """PNGs in class folders (`circle/0001.png`, numbered across the whole set); returns the member names."""
    names = [f"{class_names[label]}/{i + 1:04d}.png" for i, label in enumerate(labels)]
    _write_bytes(path, _zip_bytes([(n, _png_bytes(img)) for n, img in zip(names, images)], compress=False))
    return names


def write_sidecar(path: Path, info: ModelInfo) -> Path:
    return _write_bytes(path, (info.to_json() + "\n").encode())


def export_model(
    model: nn.Module, check_inputs: torch.Tensor, path: Path, submodules: Sequence[str]
) -> Path:
    """Save `model` as a torch.export program with a dynamic batch dimension, then check the saved file.

    The check loads and unflattens the program, runs it on batches of 1 and 7 rows of `check_inputs`,
    compares with the eager model (atol 1e-5) and looks up every name in `submodules`.
    """
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = check_inputs[:8].clone()  # a view would make torch.export.save store the whole tensor
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    _write_bytes(path, buffer.getvalue())

    loaded = torch.export.unflatten(torch.export.load(str(path)))
    for n in (1, 7):
        x = check_inputs[:n]
        with torch.no_grad():
            expected, got = model(x), loaded(x)
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=0.0, atol=1e-5):
            raise RuntimeError(
                f"{path.name}: the exported program disagrees with the eager model on a batch of {n} "
                f"(max |diff| {float((got - expected).abs().max()):.3g})."
            )
    for name in submodules:
        try:
            loaded.get_submodule(name)
        except AttributeError:
            raise RuntimeError(f"{path.name}: submodule {name!r} is missing after torch.export.unflatten.") from None
    log.info("%s: exported and checked (batch 1 and 7 match eager; submodules %s present)", path.name, list(submodules))
    return path


def _check_threshold(name: str, metric_name: str, value: float, threshold: float) -> None:
    if value < threshold:
        raise RuntimeError(f"{name}: held-out {metric_name} {value:.4f} is below the required {threshold}.")


# --------------------------------------------------------------------------- training loops


def _to_float_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (n, C, H, W) → the normalised float input the image models take."""
    return (images.float() / 255.0 - mean) / std


def _random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 rotations/flips of the square, for the whole batch (every shape class is closed under them)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x


def _random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Translate the whole batch by up to `max_shift` pixels, filling with the image's edge value."""
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., max_shift + dy : max_shift + dy + h, max_shift + dx : max_shift + dx + w]


def _fit_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    prepare: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    *,
    name: str,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> None:
    """Mini-batch AdamW with a one-cycle schedule; `prepare` turns a stored batch into model input."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(labels) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        model.train()
        start, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(labels), generator=generator)
        for first in range(0, len(order), batch_size):
            index = order[first : first + batch_size]
            x, y = prepare(images[index], generator), labels[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss) * len(index)
            correct += int((logits.argmax(1) == y).sum())
        log.info(
            "%s: epoch %d/%d  loss %.4f  train accuracy %.4f  (%.1fs)",
            name, epoch + 1, epochs, total_loss / len(labels), correct / len(labels), time.perf_counter() - start,
        )


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------------------- image demos


def _shapes_tensors(train, test) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training scenes' per-channel mean and std (1, 3, 1, 1), the training images as uint8 (N, 3, H, W) for the
    augmenting loader, and the test images normalised."""
    pixels = train.images.reshape(-1, 3).astype(np.float64) / 255.0
    mean = torch.tensor(pixels.mean(axis=0), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pixels.std(axis=0), dtype=torch.float32).view(1, 3, 1, 1)
    x_train = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous()
    x_test = _to_float_images(torch.from_numpy(test.images).permute(0, 3, 1, 2), mean, std)
    return mean, std, x_train, x_test


def train_shapes(out: Path, n_train: int = 6000, n_test: int = 400, epochs: int = 8) -> DemoResult:
    """ResNet-style CNN on procedurally generated shape scenes; writes weights, test PNGs and masks."""
    name, started = "shapes", time.perf_counter()
    seed_everything(SEED)
    log.info("shapes: generating %d training and %d test scenes", n_train, n_test)
    train = generate_scenes(n_train, seed=1)
    test = generate_scenes(n_test, seed=2)

    mean, std, x_train, x_test = _shapes_tensors(train, test)

    model = ShapesResNet(len(SHAPE_CLASSES))
    _fit_classifier(
        model, x_train, torch.from_numpy(train.labels),
        lambda batch, g: _random_dihedral(_to_float_images(batch, mean, std), g),
        name=name, epochs=epochs, batch_size=64, lr=3e-3, weight_decay=1e-4, seed=SEED,
    )
    accuracy = float((_predict(model, x_test).argmax(1).numpy() == test.labels).mean())
    log.info("shapes: held-out accuracy %.4f on %d fresh scenes", accuracy, n_test)
    _check_threshold(name, "accuracy", accuracy, 0.95)

    info = ModelInfo(
        name=name,
        task="classification",
        input_kind="image",
        input_shape=(3, 64, 64),
        class_names=SHAPE_CLASSES,
        mean=tuple(float(v) for v in mean.flatten()),
        std=tuple(float(v) for v in std.flatten()),
        architecture="ResNet-style CNN (stem + 3 residual stages 16/32/64, BatchNorm); Grad-CAM layer: layer3 (16×16)",
        description=(
            f"Names the shape (circle, square, triangle, star or cross) in a cluttered 64×64 scene; "
            f"{accuracy:.1%} accuracy on {n_test} held-out scenes."
        ),
    )
    files = [
        export_model(model, x_test, out / f"{name}.pt2", ["stem", "layer1", "layer2", "layer3", "fc"]),
        write_sidecar(out / f"{name}.json", info),
    ]
    names = write_image_zip(out / "shapes_test.zip", test.images, test.labels, SHAPE_CLASSES)
    files.append(out / "shapes_test.zip")
    files.append(_write_bytes(out / "shapes_masks.npz", _npz_bytes(names=np.array(names), masks=test.masks)))
    return DemoResult(name, "accuracy", accuracy, 0.95, time.perf_counter() - started, files)


def train_shapes_vit(out: Path, n_train: int = 8000, epochs: int = 30, threshold: float = 0.95) -> DemoResult:
    """A small Vision Transformer on the shapes scenes; writes its weights, sharing the shapes demo's test data.

    The held-out scenes are the shapes demo's own (`shapes_test.zip` and `shapes_masks.npz`, seed 2), written only when
    `out` lacks them, so the two demos are compared on the same images and masks.
    """
    from xai_core.attribution.image import explain_batch
    from xai_core.metrics import localisation
    from xai_core.model import LoadedModel

    name, started = "shapes_vit", time.perf_counter()
    seed_everything(SEED)
    log.info("%s: generating %d training and 400 test scenes", name, n_train)
    train = generate_scenes(n_train, seed=1)
    test = generate_scenes(400, seed=2)

    mean, std, x_train, x_test = _shapes_tensors(train, test)

    model = shapes_vit(len(SHAPE_CLASSES))
    _fit_classifier(
        model, x_train, torch.from_numpy(train.labels),
        lambda batch, g: _random_dihedral(_to_float_images(batch, mean, std), g),
        name=name, epochs=epochs, batch_size=64, lr=1e-3, weight_decay=0.05, seed=SEED,
    )
    accuracy = float((_predict(model, x_test).argmax(1).numpy() == test.labels).mean())
    log.info("%s: held-out accuracy %.4f on %d fresh scenes", name, accuracy, len(test))
    _check_threshold(name, "accuracy", accuracy, threshold)

    depth = len(model.encoder.layers)
    layer = f"encoder.layers.encoder_layer_{depth - 1}.ln_1"
    info = ModelInfo(
        name=name,
        task="classification",
        input_kind="image",
        input_shape=(3, 64, 64),
        class_names=SHAPE_CLASSES,
        mean=tuple(float(v) for v in mean.flatten()),
        std=tuple(float(v) for v in std.flatten()),
        architecture=(f"Vision Transformer (convolutional stem to 8×8 tokens of 8×8 px + a class token, {depth} blocks "
                      f"of width {model.hidden_dim}, 4 heads); Grad-CAM layer: {layer} (8×8 tokens)"),
        description=(
            f"Names the shape in the same cluttered 64×64 scenes as the shapes CNN, with attention instead of "
            f"convolutions past the stem; {accuracy:.1%} accuracy on {len(test)} held-out scenes."
        ),
    )
    files = [
        export_model(model, x_test, out / f"{name}.pt2", ["conv_proj", layer, "encoder.ln", "heads"]),
        write_sidecar(out / f"{name}.json", info),
    ]
    if not (out / "shapes_test.zip").exists():  # the shapes demo's test data (byte-identical to what it writes)
        names = write_image_zip(out / "shapes_test.zip", test.images, test.labels, SHAPE_CLASSES)
        _write_bytes(out / "shapes_masks.npz", _npz_bytes(names=np.array(names), masks=test.masks))

    # How well each transformer map points at the object (the gallery's pointing game), for the log.
    loaded = LoadedModel(model.eval(), info, "export", f"{name}-training", 0)
    for method in ("grad_cam", "attention_rollout", "gradient_rollout"):
        maps = explain_batch(loaded, test.images, method, batch_size=100).maps
        log.info("%s: pointing game of %s on %d held-out scenes: %.3f", name, method, len(test),
                 localisation(maps, test.masks).pointing_accuracy)
    return DemoResult(name, "accuracy", accuracy, threshold, time.perf_counter() - started, files)


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (0..16) upsampled bilinearly to 32×32 uint8 (0..255), and their labels."""
    digits = sk_datasets.load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    large = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    images = torch.clamp(torch.round(large[:, 0] * 255.0), 0, 255).to(torch.uint8).numpy()
    return images, digits.target.astype(np.int64)


def train_digits(out: Path, epochs: int = 30) -> DemoResult:
    """Small CNN on scikit-learn's digits at 32×32; writes weights and the held-out PNGs."""
    name, started = "digits", time.perf_counter()
    seed_everything(SEED)
    images, labels = digits_images()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SEED
    )
    mean_value = float(images[train_idx].astype(np.float64).mean() / 255.0)
    std_value = float(images[train_idx].astype(np.float64).std() / 255.0)
    mean = torch.tensor(mean_value, dtype=torch.float32).view(1, 1, 1, 1)
    std = torch.tensor(std_value, dtype=torch.float32).view(1, 1, 1, 1)
    x_all = torch.from_numpy(images).unsqueeze(1)
    x_test = _to_float_images(x_all[test_idx], mean, std)

    model = DigitsCNN(10)
    _fit_classifier(
        model, x_all[train_idx], torch.from_numpy(labels[train_idx]),
        lambda batch, g: _random_shift(_to_float_images(batch, mean, std), g, max_shift=2),
        name=name, epochs=epochs, batch_size=64, lr=3e-3, weight_decay=1e-4, seed=SEED,
    )
    accuracy = float((_predict(model, x_test).argmax(1).numpy() == labels[test_idx]).mean())
    log.info("digits: held-out accuracy %.4f on %d images", accuracy, len(test_idx))
    _check_threshold(name, "accuracy", accuracy, 0.95)

    class_names = tuple(str(d) for d in range(10))
    info = ModelInfo(
        name=name,
        task="classification",
        input_kind="image",
        input_shape=(1, 32, 32),
        class_names=class_names,
        mean=(mean_value,),
        std=(std_value,),
        architecture="CNN (2 conv stages 32/64, BatchNorm); Grad-CAM layer: layer2 (8×8)",
        description=(
            f"Reads a handwritten digit (scikit-learn digits, upsampled to 32×32); "
            f"{accuracy:.1%} accuracy on {len(test_idx)} held-out images."
        ),
    )
    files = [
        export_model(model, x_test, out / f"{name}.pt2", ["layer1", "layer2", "fc"]),
        write_sidecar(out / f"{name}.json", info),
    ]
    write_image_zip(out / "digits_test.zip", images[test_idx], labels[test_idx], class_names)
    files.append(out / "digits_test.zip")
    return DemoResult(name, "accuracy", accuracy, 0.95, time.perf_counter() - started, files)


# --------------------------------------------------------------------------- tabular demos


@dataclass(frozen=True)
class TabularSpec:
    name: str
    load: Callable[[], object]
    task: str
    threshold: float
    epochs: int
    weight_decay: float
    blurb: str
    hidden: int = 64
    lr: float = 1e-2


TABULAR_DEMOS = {
    "breast_cancer": TabularSpec(
        "breast_cancer", lambda: sk_datasets.load_breast_cancer(as_frame=True), "classification", 0.95,
        epochs=60, weight_decay=1e-2, blurb="Tells malignant from benign breast tumours from 30 cell-nucleus measurements",
    ),
    "wine": TabularSpec(
        "wine", lambda: sk_datasets.load_wine(as_frame=True), "classification", 0.95,
        epochs=80, weight_decay=1e-2, blurb="Tells three wine cultivars apart from 13 chemical measurements",
    ),
    "diabetes": TabularSpec(
        # Noisy target: on this split ridge regression reaches R² 0.36; a small, strongly regularised,
        # briefly trained MLP matches it, a wide one overfits (R² < 0).
        "diabetes", lambda: sk_datasets.load_diabetes(as_frame=True, scaled=False), "regression", 0.30,
        epochs=20, weight_decay=1e-1, hidden=16, lr=1e-3,
        blurb="Predicts disease progression one year on from age, sex, BMI, blood pressure and six blood serum measurements",
    ),
}


def _fit_tabular(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: TabularSpec, loss_fn) -> None:
    """Mini-batch AdamW (batch 32) with a one-cycle schedule, a fixed number of epochs."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    batch_size = 32
    steps = spec.epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=steps)
    model.train()
    for epoch in range(spec.epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for first in range(0, len(x), batch_size):
            index = order[first : first + batch_size]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss) * len(index)
        if (epoch + 1) % 10 == 0 or epoch + 1 == spec.epochs:
            log.info("%s: epoch %d/%d  training loss %.4f", spec.name, epoch + 1, spec.epochs, total / len(x))
    model.eval()


def train_tabular(out: Path, spec: TabularSpec) -> DemoResult:
    """MLP on one scikit-learn table, taking raw feature values; writes weights and train/test CSVs."""
    started = time.perf_counter()
    seed_everything(SEED)
    bunch = spec.load()
    features = bunch.data.astype(np.float64)
    feature_names = tuple(str(c) for c in features.columns)
    target = bunch.target.to_numpy()
    classification = spec.task == "classification"
    train_idx, test_idx = train_test_split(
        np.arange(len(target)), test_size=TEST_FRACTION, random_state=SEED,
        stratify=target if classification else None,
    )
    x_train = torch.tensor(features.to_numpy()[train_idx], dtype=torch.float32)
    x_test = torch.tensor(features.to_numpy()[test_idx], dtype=torch.float32)
    mean, std = x_train.mean(0), x_train.std(0)

    if classification:
        class_names = tuple(str(c) for c in bunch.target_names)
        model = TabularMLP(mean, std, n_outputs=len(class_names), hidden=spec.hidden)
        y_train = torch.tensor(target[train_idx], dtype=torch.int64)
        _fit_tabular(model, x_train, y_train, spec, F.cross_entropy)
        predicted = _predict(model, x_test).argmax(1).numpy()
        metric_name, metric = "accuracy", float((predicted == target[test_idx]).mean())
        target_column = [class_names[i] for i in target]
    else:
        class_names = ()
        y = target.astype(np.float64)
        y_mean, y_std = float(y[train_idx].mean()), float(y[train_idx].std())
        model = TabularMLP(mean, std, n_outputs=1, hidden=spec.hidden, target_mean=y_mean, target_std=y_std)
        # Train on the standardised target, with the unstandardising layer bypassed.
        body = nn.Sequential(model.standardize, model.hidden, model.head)
        y_train = torch.tensor((y[train_idx] - y_mean) / y_std, dtype=torch.float32).unsqueeze(1)
        _fit_tabular(body, x_train, y_train, spec, F.mse_loss)
        predicted = _predict(model, x_test)[:, 0].numpy().astype(np.float64)
        truth = y[test_idx]
        metric_name = "R²"
        metric = float(1.0 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
        log.info("%s: held-out mean absolute error %.2f", spec.name, float(np.abs(truth - predicted).mean()))
        target_column = y
    log.info("%s: held-out %s %.4f on %d rows", spec.name, metric_name, metric, len(test_idx))
    _check_threshold(spec.name, metric_name, metric, spec.threshold)

    table = features.copy()
    table["target"] = target_column
    info = ModelInfo(
        name=spec.name,
        task=spec.task,  # type: ignore[arg-type]
        input_kind="tabular",
        input_shape=(len(feature_names),),
        class_names=class_names,
        target_name="target",
        feature_names=feature_names,
        architecture="MLP (standardise, 64-64 ReLU hidden layers" + (", unstandardise)" if not classification else ")"),
        description=(
            f"{spec.blurb}; "
            + (f"{metric:.1%} accuracy" if classification else f"R² {metric:.2f}")
            + f" on {len(test_idx)} held-out rows."
        ),
    )
    files = [
        export_model(model, x_test, out / f"{spec.name}.pt2", ["standardize", "hidden", "head"]),
        write_sidecar(out / f"{spec.name}.json", info),
        _write_bytes(out / f"{spec.name}_train.csv", table.iloc[train_idx].to_csv(index=False).encode()),
        _write_bytes(out / f"{spec.name}_test.csv", table.iloc[test_idx].to_csv(index=False).encode()),
    ]
    return DemoResult(spec.name, metric_name, metric, spec.threshold, time.perf_counter() - started, files)


# --------------------------------------------------------------------------- command line

DEMOS: dict[str, Callable[[Path], DemoResult]] = {
    "shapes": train_shapes,
    "shapes_vit": train_shapes_vit,
    "digits": train_digits,
    **{name: (lambda out, spec=spec: train_tabular(out, spec)) for name, spec in TABULAR_DEMOS.items()},
}


def _train_text(out: Path, arch: str, corpus: str = "planted") -> DemoResult:
    from xai_core.demo import text  # imported here: text.py uses this module's helpers

    return text.train_text(out, arch) if corpus == "planted" else text.train_fortunes(out, arch)


DEMOS.update({"text_bilstm": lambda out: _train_text(out, "bilstm"),
              "text_transformer": lambda out: _train_text(out, "transformer"),
              "text_fortunes_bilstm": lambda out: _train_text(out, "bilstm", "fortunes"),
              "text_fortunes_transformer": lambda out: _train_text(out, "transformer", "fortunes")})


def main(argv: Sequence[str] | None = None) -> list[DemoResult]:
    parser = argparse.ArgumentParser(prog="python -m xai_core.demo.train", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(DEMOS), help="train just this demo")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results = [DEMOS[name](args.out) for name in ([args.only] if args.only else DEMOS)]
    for r in results:
        size = sum(f.stat().st_size for f in r.files)
        log.info("%-14s held-out %-8s %.4f (≥ %.2f)  %6.1fs  %7.1f kB", r.name, r.metric_name, r.metric,
                 r.threshold, r.seconds, size / 1024)
    total = sum(f.stat().st_size for r in results for f in r.files)
    log.info("done in %.1fs; %d files, %.2f MB in %s", time.perf_counter() - started,
             sum(len(r.files) for r in results), total / 1e6, args.out)
    return results


if __name__ == "__main__":
    main()

"""Where a review job keeps its results: shards written atomically, a manifest, and `load_review` to read them back.

Layout of a review folder:

    manifest.json                 model and data SHA-256, every setting and seed, library versions, CPU, timings
    evaluation.json / .parquet    score with its interval (json), one row per input with prediction and probabilities
    shards/images-00000.parquet   one row per image: name, label, prediction, probabilities, target per method
    shards/images-00000.npz       the images and one map per image and method (np.savez_compressed)
    shards/shap-00000.parquet     one row per explained row: feature values, outputs, SHAP values, standard errors
    shards/shap-00000.npz         the same values as arrays (values, standard_errors, outputs) and the method's facts
    surrogate.json / _tree.npz    fidelity with its interval, scores, rules; the fitted tree's arrays
    quantization.parquet / .json  `QuantizationComparison.to_frame()`, the variants that failed, timing facts

Every file is written to a temporary name in the same folder and renamed, so a file that exists is complete. A
shard's `.npz` is renamed before its `.parquet`: the `.parquet` marks the shard finished.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xai_core.errors import XaiError

MANIFEST = "manifest.json"
SHARDS = "shards"
FORMAT = "xai-dashboard review"
FORMAT_VERSION = 2  # 2: sampled SHAP rows seeded by their index in the reviewed data (1: in the shard)


# ---------------------------------------------------------------------------------------- atomic writes


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` either does not exist or is complete (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=_json_default).encode())


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write(path, buffer.getvalue())


def write_arrays(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temp files a killed run left behind (never a finished file)."""
    removed = 0
    for directory in (Path(folder), Path(folder) / SHARDS):
        if directory.is_dir():
            for temp in directory.glob(".*.tmp"):
                temp.unlink(missing_ok=True)
                removed += 1
    return removed


# ---------------------------------------------------------------------------------------- shards


def shard_paths(folder: Path, kind: str, index: int) -> tuple[Path, Path]:
    """(table, arrays) of one shard."""
    stem = Path(folder) / SHARDS / f"{kind}-{index:05d}"
    return stem.with_suffix(".parquet"), stem.with_suffix(".npz")


def shard_done(folder: Path, kind: str, index: int) -> bool:
    table, arrays = shard_paths(folder, kind, index)
    return table.exists() and arrays.exists()


def write_shard(folder: Path, kind: str, index: int, frame: pd.DataFrame, arrays: dict[str, np.ndarray]) -> None:
    table, array_path = shard_paths(folder, kind, index)
    write_arrays(array_path, **arrays)
    write_frame(table, frame)  # last: its existence marks the shard finished


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each shard of `n` items."""
    if shard_size < 1:
        raise XaiError(f"The shard size must be at least 1; got {shard_size}.")
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def read_shards(folder: Path, kind: str, n_shards: int) -> tuple[list[pd.DataFrame], list[dict], list[int]]:
    """Tables and arrays of the finished shards of one kind, in order, and the indices of those not finished."""
    frames, arrays, missing = [], [], []
    for index in range(n_shards):
        table, array_path = shard_paths(folder, kind, index)
        if table.exists() and array_path.exists():
            frames.append(pd.read_parquet(table))
            arrays.append(read_arrays(array_path))
        else:
            missing.append(index)
    return frames, arrays, missing


# ---------------------------------------------------------------------------------------- reading a review


@dataclass
class ImageReview:
    """One row per image (name, label, prediction, probabilities) and, per method, the maps as an explanation."""

    table: pd.DataFrame
    images: np.ndarray  # (n, H, W, C) uint8, as the model saw them
    explanations: dict  # method key → xai_core.attribution.image.ImageExplanation


@dataclass
class Review:
    """Everything a review job stored, as the library's own result types; `missing` lists unfinished parts."""

    path: Path
    manifest: dict
    evaluation: object | None = None  # xai_core.evaluation.Evaluation
    images: ImageReview | None = None
    shap: object | None = None  # xai_core.attribution.results.TabularAttribution
    surrogate: object | None = None  # xai_core.surrogate.SurrogateTree
    quantization: pd.DataFrame | None = None  # QuantizationComparison.to_frame()
    quantization_facts: dict = field(default_factory=dict)  # variants that failed, rows compared, seconds
    audit: pd.DataFrame | None = None  # the compression audit's flip sets (CompressionAudit.to_frame()), when written
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


def load_review(folder) -> Review:
    """Read a review folder written by `run_review` (or `python -m xai_core review`), computing nothing."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise XaiError(f"'{folder}' holds no review ({MANIFEST} is missing). Write one with "
                       "`python -m xai_core review … --out FOLDER`.")
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise XaiError(f"'{manifest_path}' is not an xai-dashboard review manifest.")
    review = Review(folder, manifest)
    plan = manifest.get("plan", {})
    if "evaluation" in plan:
        review.evaluation = _load_evaluation(folder, review.missing)
    if "images" in plan:
        review.images = _load_images(folder, manifest, plan["images"]["n_shards"], review.missing)
    if "shap" in plan:
        review.shap = _load_shap(folder, manifest, plan["shap"]["n_shards"], review.missing)
    if "surrogate" in plan:
        review.surrogate = _load_surrogate(folder, manifest, review.missing)
    if "quantization" in plan:
        if (folder / "quantization.json").exists():
            review.quantization = pd.read_parquet(folder / "quantization.parquet")
            review.quantization_facts = read_json(folder / "quantization.json")
            if (folder / "audit_flip_sets.parquet").exists():
                review.audit = pd.read_parquet(folder / "audit_flip_sets.parquet")
        else:
            review.missing.append("quantization")
    return review


def _load_evaluation(folder: Path, missing: list[str]):
    from xai_core.evaluation import Evaluation

    if not (folder / "evaluation.json").exists():
        missing.append("evaluation")
        return None
    facts = read_json(folder / "evaluation.json")
    rows = pd.read_parquet(folder / "evaluation.parquet")
    probabilities = rows[[c for c in rows.columns if c.startswith("p_")]].to_numpy(dtype=np.float32)
    labels = rows["label"].to_numpy() if "label" in rows else None
    predictions = rows["prediction"].to_numpy()
    return Evaluation(
        task=facts["task"], n_rows=len(rows), predictions=predictions, probabilities=probabilities, labels=labels,
        score=facts["score"], score_name=facts["score_name"],
        score_interval=None if facts["score_interval"] is None else tuple(facts["score_interval"]),
        confusion=None if facts["confusion"] is None else np.asarray(facts["confusion"]),
        class_names=tuple(facts["class_names"]), extra=facts["extra"])


def _load_images(folder: Path, manifest: dict, n_shards: int, missing: list[str]) -> ImageReview | None:
    from xai_core.attribution.image import ImageExplanation

    frames, arrays, not_done = read_shards(folder, "images", n_shards)
    missing += [f"images shard {i}" for i in not_done]
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    images = np.concatenate([a["images"] for a in arrays])
    probabilities = table[[c for c in table.columns if c.startswith("p_")]].to_numpy(dtype=np.float32)
    explanations = {}
    for method in manifest["plan"]["images"]["methods"]:
        facts = json.loads(str(arrays[0][f"facts_{method}"]))
        explanations[method] = ImageExplanation(
            maps=np.concatenate([a[f"maps_{method}"] for a in arrays]), method=method,
            method_name=facts["method_name"], signed=facts["signed"], layer=facts["layer"],
            targets=table[f"target_{method}"].to_numpy(), predicted=table["prediction"].to_numpy(),
            probabilities=probabilities, settings=facts["settings"], notes=facts["notes"])
    return ImageReview(table, images, explanations)


def _load_shap(folder: Path, manifest: dict, n_shards: int, missing: list[str]):
    from xai_core.attribution.results import Background, TabularAttribution
    from xai_core.attribution.shapley import ShapleySettings

    frames, arrays, not_done = read_shards(folder, "shap", n_shards)
    missing += [f"shap shard {i}" for i in not_done]
    if not frames:
        return None
    facts = json.loads(str(arrays[0]["facts"]))
    names = facts["feature_names"]
    table = pd.concat(frames, ignore_index=True)
    rows = pd.DataFrame(table[[f"x_f{i}" for i in range(len(names))]].to_numpy(), columns=names,
                        index=table["row"].to_numpy())
    used = [a["n_permutations_used"] for a in arrays if "n_permutations_used" in a]
    background = arrays[0]
    return TabularAttribution(
        values=np.concatenate([a["values"] for a in arrays]),
        standard_errors=np.concatenate([a["standard_errors"] for a in arrays]),
        method=facts["method"], settings=ShapleySettings(**facts["settings"]), feature_names=names,
        output_names=facts["output_names"], rows=rows, outputs=np.concatenate([a["outputs"] for a in arrays]),
        base_values=background["base_values"], key="shapley", value_label="SHAP value",
        background=Background(background["background_rows"], background["background_weights"],
                              facts["background_kind"], names, facts["background_seed"]),
        notes=sorted({note for a in arrays for note in json.loads(str(a["facts"]))["notes"]}),
        n_permutations_used=np.concatenate(used) if len(used) == len(arrays) else None,
        relative_standard_errors=np.concatenate([a["relative_standard_errors"] for a in arrays]),
    )


def _load_surrogate(folder: Path, manifest: dict, missing: list[str]):
    if not (folder / "surrogate.json").exists():
        missing.append("surrogate")
        return None
    from xai_core.review.trees import surrogate_from_stored

    return surrogate_from_stored(read_json(folder / "surrogate.json"), read_arrays(folder / "surrogate_tree.npz"))

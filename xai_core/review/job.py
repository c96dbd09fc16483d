"""A review job: every analysis the pages offer, over a whole dataset, written to a folder shard by shard.

The job calls the same functions with the same settings dataclasses as the pages (`evaluate`, `explain_batch`,
`explain_table(..., "shapley", ShapleySettings)`, `fit_surrogate`, `compare_variants`), so a number in the review
equals the number on the page for the same inputs. Per-row and per-image work is cut into shards; a finished shard
is never computed again, so rerunning the same job after Ctrl-C or a crash resumes it. With `ray_address` the shards
run as a Ray Data `map_batches` job on a pool of workers that each load the model once from its bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from xai_core.attribution.image import METHODS as IMAGE_METHODS
from xai_core.attribution.image import default_method, explain_batch
from xai_core.attribution.shapley import ShapleySettings, make_background
from xai_core.attribution.tabular import explain_table
from xai_core.datasets import ImageSet, TableSet
from xai_core.errors import XaiError
from xai_core.evaluation import data_labels, evaluate
from xai_core.machine import cpu_model
from xai_core.model import LoadedModel
from xai_core.review import store
from xai_core.surrogate import SurrogateSettings, fit_surrogate

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
ANALYSES = ("images", "shap", "surrogate", "quantization")  # evaluation always runs
FOR_IMAGES = {"images", "quantization"}
FOR_TABLES = {"shap", "surrogate", "quantization"}
PACKAGES = ("torch", "torchvision", "captum", "numpy", "pandas", "scikit-learn", "pyarrow", "plotly", "ray")


@dataclass(frozen=True)
class ReviewSettings:
    """What a review computes and how: the pages' own settings dataclasses, with their defaults."""

    analyses: tuple[str, ...] = ANALYSES
    image_methods: tuple[str, ...] = ()  # empty: the Image explanations page's default for the model (default_method)
    image_batch_size: int = 16  # the Image explanations page's batch
    shapley: ShapleySettings = ShapleySettings()
    surrogate: SurrogateSettings = SurrogateSettings()
    quantization: tuple = ()  # VariantSpec…; empty: xai_core.quantization.default_specs(model)
    n_bootstrap: int = 1000  # evaluation interval, as on the Model & data page
    seed: int = 0  # evaluation bootstrap seed
    shard_size: int = 256
    max_rows: int | None = None  # review only the first rows or images (None: all)

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=store._json_default))


@dataclass
class ModelSource:
    """A model as bytes (file, sidecar, overrides): what Ray workers load, and what the manifest hashes."""

    data: bytes
    filename: str
    sidecar: bytes | None = None
    overrides: dict | None = None

    @classmethod
    def from_files(cls, path, sidecar_path=None) -> "ModelSource":
        path = Path(path)
        sidecar_path = Path(sidecar_path) if sidecar_path else path.with_suffix(".json")
        if not path.is_file():
            raise XaiError(f"The model file '{path}' does not exist.")
        if sidecar_path and not sidecar_path.is_file() and sidecar_path != path.with_suffix(".json"):
            raise XaiError(f"The sidecar file '{sidecar_path}' does not exist.")
        return cls(path.read_bytes(), path.name, sidecar_path.read_bytes() if sidecar_path.is_file() else None)

    def load(self) -> LoadedModel:
        from xai_core.loading import load_model

        return load_model(self.data, self.filename, sidecar=self.sidecar, overrides=self.overrides)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Plan:
    """Which analyses run and, for per-row ones, their shards."""

    analyses: list[str]
    skipped: dict[str, str]  # analysis → why it does not apply
    n_items: int
    shards: list[tuple[int, int]]
    methods: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        plan: dict = {"evaluation": {}}
        for name in self.analyses:
            plan[name] = {"n_shards": len(self.shards), "shard_ranges": self.shards} if name in ("images", "shap") else {}
        if "images" in plan:
            plan["images"]["methods"] = self.methods
        if "shap" in plan:
            # Each shard passes its first row's index (row_offset), so a sampled row's values are the Feature
            # importance page's for the same row, whatever the shard size or runner.
            plan["shap"]["row_seed"] = "default_rng([seed, index of the row in the reviewed data])"
        return plan


# ---------------------------------------------------------------------------------------- the job


def run_review(
    model: LoadedModel,
    data: ImageSet | TableSet,
    out_dir,
    settings: ReviewSettings = ReviewSettings(),
    background: TableSet | None = None,
    source: ModelSource | None = None,
    ray_address: str | None = None,
    ray_workers: int | None = None,
    progress: ProgressFn | None = None,
    on_shard: Callable[[str, int], None] | None = None,
):
    """Compute every analysis in `settings` for `data` into `out_dir` (resuming what a previous run finished).

    `background`: the training rows (tabular), used as the pages use them: SHAP baseline, surrogate rows and
    quantization drift. `source`: the model's bytes (needed for Ray; else only hashed into the manifest).
    `progress(done, total, message)` counts work units (shards and whole-data analyses); `on_shard(kind, index)` is
    called after each shard this run writes. Returns the stored `Review` (`load_review(out_dir)`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = _first(data, settings.max_rows)
    if not settings.image_methods and isinstance(data, ImageSet):  # resolved here: the manifest names the method
        settings = dataclasses.replace(settings, image_methods=(default_method(model),))
    plan = make_plan(model, data, settings)
    manifest = _manifest(model, data, settings, background, source, plan, out)
    store.remove_stale_temporaries(out)
    store.write_json(out / store.MANIFEST, manifest)

    units = [("evaluation", None)] + [(name, None) for name in plan.analyses if name not in ("images", "shap")]
    per_row = [name for name in plan.analyses if name in ("images", "shap")]
    units += [(name, i) for name in per_row for i in range(len(plan.shards))]
    total, done = len(units), 0
    timings = manifest.setdefault("timings", {})
    run = {"runner": "in-process", "started_unix": time.time(), "computed": [], "skipped": 0}

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        log.info("review %d/%d: %s", done, total, message)
        if progress is not None:
            progress(done, total, message)

    for name in ["evaluation"] + [n for n in plan.analyses if n not in ("images", "shap")]:
        if _global_done(out, name):
            run["skipped"] += 1
            tick(f"{name}: already done")
            continue
        t0 = time.perf_counter()
        GLOBAL_ANALYSES[name](model, data, settings, background, out)
        timings[name] = round(time.perf_counter() - t0, 3)
        run["computed"].append(name)
        tick(f"{name}: done in {timings[name]:.1f} s")

    pending = []
    for name in per_row:
        for index, _ in enumerate(plan.shards):
            if store.shard_done(out, name, index):
                run["skipped"] += 1
                tick(f"{name} shard {index + 1}/{len(plan.shards)}: already done")
            else:
                pending.append((name, index))
    if pending:
        t0 = time.perf_counter()
        inputs = _shard_inputs(model, data, settings, background)
        shard_times: dict[str, float] = {}

        def finished(name: str, index: int, seconds: float) -> None:
            shard_times[name] = shard_times.get(name, 0.0) + seconds
            run["computed"].append(f"{name}-{index:05d}")
            if on_shard is not None:
                on_shard(name, index)
            start, stop = plan.shards[index]
            tick(f"{name} shard {index + 1}/{len(plan.shards)} (items {start}-{stop - 1})")

        if ray_address:
            run["runner"] = f"ray ({ray_address})"
            run["ray"] = _run_on_ray(source, model, inputs, settings, plan, pending, out, ray_address,
                                             ray_workers, finished)
        else:
            for name, index in pending:
                t1 = time.perf_counter()
                compute_shard(model, inputs, settings, name, index, plan.shards[index], out)
                finished(name, index, time.perf_counter() - t1)
        timings["shards_wall_seconds"] = round(time.perf_counter() - t0, 3)
        for name, seconds in shard_times.items():
            timings[f"{name}_shard_seconds"] = round(seconds, 3)
    run["seconds"] = round(time.perf_counter() - started, 3)
    manifest.setdefault("runs", []).append(run)
    store.write_json(out / store.MANIFEST, manifest)
    return store.load_review(out)


def make_plan(model: LoadedModel, data, settings: ReviewSettings) -> Plan:
    unknown = [a for a in settings.analyses if a not in ANALYSES]
    if unknown:
        raise XaiError(f"Unknown analyses {unknown}; choose from {', '.join(ANALYSES)}.")
    kind = model.info.input_kind
    if kind not in ("image", "tabular"):
        raise XaiError(f"Review jobs explain image and table models; this model takes {kind} input.")
    if isinstance(data, ImageSet) != (kind == "image"):
        raise XaiError(f"This model takes {'images' if kind == 'image' else 'a table'}, but the data are "
                       f"{'images' if isinstance(data, ImageSet) else 'a table'}.")
    fits = FOR_IMAGES if kind == "image" else FOR_TABLES
    analyses = [a for a in ANALYSES if a in settings.analyses and a in fits]
    skipped = {a: f"not for {kind} models" for a in settings.analyses if a not in fits}
    methods = []
    if "images" in analyses:
        if model.info.task != "classification":
            raise XaiError("Image explanations need a classifier; drop 'images' from the analyses.")
        unknown = [m for m in settings.image_methods if m not in IMAGE_METHODS]
        if unknown:
            raise XaiError(f"Unknown image methods {unknown}; choose from {', '.join(IMAGE_METHODS)}.")
        methods = [m for m in settings.image_methods
                   if model.supports_layer_methods or not IMAGE_METHODS[m].needs_layer]
        skipped.update({f"images:{m}": "this model hides its layers (TorchScript)"
                        for m in settings.image_methods if m not in methods})
    return Plan(analyses, skipped, len(data), store.shard_ranges(len(data), settings.shard_size), methods)


# ---------------------------------------------------------------------------------------- whole-data analyses


def _global_done(out: Path, name: str) -> bool:
    return (out / f"{name}.json").exists()


def _run_evaluation(model, data, settings: ReviewSettings, background, out: Path) -> None:
    result = evaluate(model, data, n_bootstrap=settings.n_bootstrap, seed=settings.seed)
    rows = pd.DataFrame({"item": np.arange(result.n_rows), "name": _item_names(data), "prediction": result.predictions})
    if result.labels is not None:
        rows["label"] = result.labels
    for j in range(result.probabilities.shape[1]):
        rows[f"p_{j}"] = result.probabilities[:, j]
    store.write_frame(out / "evaluation.parquet", rows)
    store.write_json(out / "evaluation.json", {
        "task": result.task, "n_rows": result.n_rows, "score": result.score, "score_name": result.score_name,
        "score_interval": None if result.score_interval is None else list(result.score_interval),
        "confusion": result.confusion, "class_names": list(result.class_names), "extra": result.extra,
        "n_bootstrap": settings.n_bootstrap, "seed": settings.seed})


def surrogate_rows(data: TableSet, background: TableSet | None) -> TableSet:
    """The rows the Surrogate tree page fits on: training and reviewed rows together when there are training rows."""
    if background is None:
        return data
    y = None if data.y is None or background.y is None else pd.concat([background.y, data.y], ignore_index=True)
    return TableSet(pd.concat([background.X, data.X], ignore_index=True), y)


def _run_surrogate(model, data: TableSet, settings: ReviewSettings, background, out: Path) -> None:
    from xai_core.review.trees import surrogate_to_stored

    facts, arrays = surrogate_to_stored(fit_surrogate(model, surrogate_rows(data, background), settings.surrogate))
    facts["rows"] = "training and reviewed rows" if background is not None else "reviewed rows"
    store.write_arrays(out / "surrogate_tree.npz", **arrays)
    store.write_json(out / "surrogate.json", facts)


def _run_quantization(model, data, settings: ReviewSettings, background, out: Path) -> None:
    from xai_core.quantization import FP32, assemble, compare_many, default_specs, prepare_comparison
    from xai_core.quantization.audit import audit_variants

    specs = list(settings.quantization) or default_specs(model)
    context = prepare_comparison(model, data, background=background)  # what compare_variants does, keeping fp32's side
    comparison = assemble(context, compare_many(context, specs))
    frame = comparison.to_frame()
    store.write_frame(out / "quantization.parquet", frame)
    audited = [s for s in specs if s != FP32 and s.label not in comparison.errors]
    if audited and model.info.input_kind in ("image", "tabular"):  # the compression audit's flip sets, for the report
        store.write_frame(out / "audit_flip_sets.parquet",
                          audit_variants(context, audited, background=background, bits_curve=False).to_frame())
    store.write_json(out / "quantization.json", {
        "specs": [dataclasses.asdict(s) for s in specs], "errors": comparison.errors, "n_rows": comparison.n_rows,
        "seconds": comparison.seconds, "score_name": comparison.score_name,
        "settings": json.loads(json.dumps(comparison.settings, default=str))})


GLOBAL_ANALYSES = {"evaluation": _run_evaluation, "surrogate": _run_surrogate, "quantization": _run_quantization}


# ---------------------------------------------------------------------------------------- shards


@dataclass
class ShardInputs:
    """What every shard needs besides the model: the data as arrays, and the SHAP background built once."""

    kind: str  # "image" or "tabular"
    names: list[str]
    labels: np.ndarray | None
    images: np.ndarray | None = None
    X: pd.DataFrame | None = None
    shap_background: object | None = None  # xai_core.attribution.results.Background


def _shard_inputs(model, data, settings: ReviewSettings, background: TableSet | None) -> ShardInputs:
    labels = data_labels(data)
    if isinstance(data, ImageSet):
        return ShardInputs("image", list(data.names), labels, images=data.images)
    bg = None
    if "shap" in settings.analyses:
        # As the Feature importance page: the training rows (else the reviewed rows) summarised by the settings.
        s = settings.shapley
        bg = make_background((background if background is not None else data).X, s.baseline, s.n_background,
                             seed=s.seed or 0)
    return ShardInputs("tabular", _item_names(data), labels, X=data.X, shap_background=bg)


def compute_shard(model: LoadedModel, inputs: ShardInputs, settings: ReviewSettings, name: str, index: int,
                  bounds: tuple[int, int], out: Path) -> None:
    """Compute one shard of one per-row analysis and write it (atomically)."""
    start, stop = bounds
    if name == "images":
        frame, arrays = _image_shard(model, inputs, settings, start, stop)
    else:
        frame, arrays = _shap_shard(model, inputs, settings, start, stop)
    store.write_shard(out, name, index, frame, arrays)


def _image_shard(model, inputs: ShardInputs, settings: ReviewSettings, start: int, stop: int):
    images = inputs.images[start:stop]
    frame = pd.DataFrame({"item": np.arange(start, stop), "name": inputs.names[start:stop]})
    if inputs.labels is not None:
        frame["label"] = inputs.labels[start:stop]
    arrays: dict[str, np.ndarray] = {"images": images}
    methods = [m for m in settings.image_methods if model.supports_layer_methods or not IMAGE_METHODS[m].needs_layer]
    for i, method in enumerate(methods):
        result = explain_batch(model, images, method, batch_size=settings.image_batch_size)
        if i == 0:
            frame["prediction"] = result.predicted
            for j in range(result.probabilities.shape[1]):
                frame[f"p_{j}"] = result.probabilities[:, j]
        frame[f"target_{method}"] = result.targets
        maps = result.maps.reshape(len(result.maps), -1)
        frame[f"map_max_{method}"] = maps.max(axis=1)
        frame[f"map_min_{method}"] = maps.min(axis=1)
        arrays[f"maps_{method}"] = result.maps
        arrays[f"facts_{method}"] = np.array(json.dumps({
            "method_name": result.method_name, "signed": result.signed, "layer": result.layer,
            "settings": result.settings, "notes": result.notes}, default=store._json_default))
    return frame, arrays


def _shap_shard(model, inputs: ShardInputs, settings: ReviewSettings, start: int, stop: int):
    rows = inputs.X.iloc[start:stop]
    result = explain_table(model, rows, "shapley", settings.shapley, background=inputs.shap_background,
                           row_offset=start)
    n, d, k = result.values.shape
    columns: dict[str, np.ndarray] = {"row": np.arange(start, stop), "name": np.asarray(inputs.names[start:stop])}
    if inputs.labels is not None:
        columns["label"] = inputs.labels[start:stop]
    for i in range(d):
        columns[f"x_f{i}"] = rows.iloc[:, i].to_numpy(dtype=np.float64)
    for j in range(k):
        columns[f"output_o{j}"] = result.outputs[:, j]
    for j in range(k):
        for i in range(d):
            columns[f"shap_o{j}_f{i}"] = result.values[:, i, j]
            columns[f"se_o{j}_f{i}"] = result.standard_errors[:, i, j]
    columns["relative_se"] = result.relative_standard_errors
    if result.n_permutations_used is not None:
        columns["n_permutations_used"] = result.n_permutations_used
    facts = {"method": result.method, "settings": dataclasses.asdict(result.settings),
             "feature_names": result.feature_names, "output_names": result.output_names,
             "background_kind": result.background.kind, "background_seed": result.background.seed,
             "notes": result.notes}
    arrays = {"values": result.values, "standard_errors": result.standard_errors, "outputs": result.outputs,
              "base_values": result.base_values, "relative_standard_errors": result.relative_standard_errors,
              "background_rows": result.background.rows, "background_weights": result.background.weights,
              "facts": np.array(json.dumps(facts, default=store._json_default))}
    if result.n_permutations_used is not None:
        arrays["n_permutations_used"] = result.n_permutations_used
    return pd.DataFrame(columns), arrays


# ---------------------------------------------------------------------------------------- Ray


class ShardWorker:
    """Ray Data callable: loads the model once per worker from its bytes (ray.put), then computes whole shards."""

    def __init__(self, model_ref, inputs_ref, settings: ReviewSettings, shards: list, out_dir: str, threads: int = 1):
        import ray

        torch.set_num_threads(max(int(threads), 1))
        self.model = ray.get(model_ref[0]).load()
        self.inputs = ray.get(inputs_ref[0])
        self.settings = settings
        self.shards = shards
        self.out = Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        seconds = []
        for name, index in zip(batch["analysis"], batch["shard"]):
            t0 = time.perf_counter()
            compute_shard(self.model, self.inputs, self.settings, str(name), int(index), self.shards[int(index)],
                          self.out)
            seconds.append(time.perf_counter() - t0)
        return {"analysis": batch["analysis"], "shard": batch["shard"], "seconds": np.asarray(seconds),
                "pid": np.full(len(seconds), os.getpid())}


def _run_on_ray(source: ModelSource | None, model: LoadedModel, inputs: ShardInputs, settings: ReviewSettings,
                plan: Plan, pending: list[tuple[str, int]], out: Path, address: str, workers: int | None,
                finished) -> dict:
    try:
        import ray
        import ray.data
    except ImportError:
        raise XaiError("--ray needs Ray: pip install 'ray[data]'.") from None
    if source is None:
        raise XaiError("Running on Ray needs the model's bytes (ModelSource): workers load the model from them.")
    root = str(Path(__file__).resolve().parents[2])
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
                                "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}}  # see __main__.py
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address in ("auto", "local") else address, runtime_env=runtime_env,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return _map_shards(ray, source, inputs, settings, plan, pending, out, workers, runtime_env, finished)
    finally:
        if started_here:
            ray.shutdown()


def _map_shards(ray, source, inputs, settings, plan, pending, out, workers, runtime_env, finished) -> dict:
    if workers is None:
        workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    model_ref, inputs_ref = ray.put(source), ray.put(inputs)  # bytes and arrays: the module itself never travels
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own progress callback counts the shards
    context.enable_operator_progress_bars = False
    items = [{"analysis": name, "shard": index} for name, index in pending]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
        runtime_env=runtime_env,
        fn_constructor_kwargs={"model_ref": [model_ref], "inputs_ref": [inputs_ref], "settings": settings,
                               "shards": plan.shards, "out_dir": str(out)})
    pids = set()
    for row in dataset.iter_rows():
        pids.add(int(row["pid"]))
        finished(str(row["analysis"]), int(row["shard"]), float(row["seconds"]))
    return {"workers": workers, "worker_processes_used": len(pids)}


# ---------------------------------------------------------------------------------------- manifest


def _first(data, max_rows: int | None):
    if max_rows is None or max_rows >= len(data):
        return data
    if max_rows < 1:
        raise XaiError(f"Review at least one row; got max_rows = {max_rows}.")
    if isinstance(data, ImageSet):
        return data.subset(np.arange(max_rows))
    return TableSet(data.X.iloc[:max_rows], None if data.y is None else data.y.iloc[:max_rows], data.target_name,
                    data.notes)


def _item_names(data) -> list[str]:
    if isinstance(data, ImageSet):
        return list(data.names)
    return [str(i) for i in data.X.index]


def data_sha256(data) -> str:
    """SHA-256 of the data as the model reads it (values, names, labels), the same for a file and an upload."""
    h = hashlib.sha256()
    if isinstance(data, ImageSet):
        h.update(np.ascontiguousarray(data.images).tobytes())
        h.update("\x00".join(data.names).encode())
    else:
        h.update(np.ascontiguousarray(data.X.to_numpy(dtype=np.float64)).tobytes())
        h.update("\x00".join(map(str, data.X.columns)).encode())
    labels = data_labels(data)
    if labels is not None:
        h.update(np.asarray(labels).astype(str).astype(bytes).tobytes())
    return h.hexdigest()


def environment() -> dict:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "cpu": cpu_model() or platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def _manifest(model: LoadedModel, data, settings: ReviewSettings, background, source: ModelSource | None, plan: Plan,
              out: Path) -> dict:
    identity = {
        "model_sha256": model.sha256,
        "model_file_sha256": source.sha256 if source is not None else None,
        "data_sha256": data_sha256(data),
        "background_sha256": None if background is None else data_sha256(background),
        "settings": settings.to_json(),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    path = out / store.MANIFEST
    if path.exists():
        old = store.read_json(path)
        if old.get("format_version") != store.FORMAT_VERSION:
            raise XaiError(f"'{out}' holds a review written by an earlier version (format {old.get('format_version')}, "
                           f"now {store.FORMAT_VERSION}: sampled SHAP rows were seeded by their place in the shard), so "
                           "it cannot be resumed; it still opens. Pass a new --out folder to review again.")
        if old.get("key") != key:
            raise XaiError(f"'{out}' holds a review of another model, data or settings; nothing there was changed. "
                           "Pass a new --out folder (or delete that one) to start a new review.")
        old["plan"], old["skipped"] = plan.to_json(), plan.skipped
        return old
    info = model.info
    return {
        "format": store.FORMAT, "format_version": store.FORMAT_VERSION, "key": key, **identity,
        "model": {"file": source.filename if source is not None else info.name, "format": model.format,
                  "size_bytes": model.size_bytes, "n_parameters": model.n_parameters, "info": json.loads(info.to_json()),
                  "assumed": model.assumed, "notes": model.notes},
        "data": {"kind": "images" if isinstance(data, ImageSet) else "table", "n_items": len(data),
                 "labelled": data_labels(data) is not None, "notes": list(data.notes),
                 "background_rows": None if background is None else len(background)},
        "plan": plan.to_json(), "skipped": plan.skipped, "environment": environment(), "created_unix": time.time(),
    }

"""How well a model does on the data it was given: accuracy and confusion matrix, or R², plus its summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from xai_core import scoring
from xai_core.datasets import ImageSet, TableSet, images_to_tensor
from xai_core.model import LoadedModel
from xai_core.torch_internals import copy_module


@dataclass
class Evaluation:
    """Predictions on a dataset and, when labels exist, their quality (with a 95% bootstrap interval)."""

    task: str
    n_rows: int
    predictions: np.ndarray  # class index or predicted value per row
    probabilities: np.ndarray  # (n, n_classes) for classifiers, (n, 1) for regression
    labels: np.ndarray | None
    score: float | None = None  # accuracy or R²
    score_name: str = ""
    score_interval: tuple[float, float] | None = None
    confusion: np.ndarray | None = None  # rows = true class, columns = predicted
    class_names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def model_inputs(model: LoadedModel, data: ImageSet | TableSet) -> torch.Tensor:
    """The tensor a model takes for this dataset."""
    if isinstance(data, ImageSet):
        return images_to_tensor(data.images, model.info)
    return data.to_tensor()


def evaluate(model: LoadedModel, data: ImageSet | TableSet, n_bootstrap: int = 1000, seed: int = 0) -> Evaluation:
    """Run the model over the data; score it against the labels when there are labels."""
    proba = model.predict_proba(model_inputs(model, data))
    labels = data_labels(data)
    info = model.info
    pred = scoring.predictions(info.task, proba)
    result = Evaluation(info.task, len(pred), pred, proba, labels,
                        class_names=info.class_names if info.task == "classification" else ())
    if labels is None:
        return result
    result.score_name = scoring.score_name(info.task)
    result.score, result.score_interval = scoring.score_with_interval(info.task, pred, labels, n_bootstrap, seed)
    if info.task == "classification":
        result.confusion = scoring.confusion_matrix(labels, pred, len(info.class_names))
    else:
        result.extra["mae"] = float(np.abs(labels - pred).mean())
    return result


def data_labels(data: ImageSet | TableSet) -> np.ndarray | None:
    """The labels of a dataset as an array (class indices or target values), or None when unlabelled."""
    if isinstance(data, ImageSet):
        return data.labels
    return None if data.y is None else data.y.to_numpy()


@dataclass
class ModelSummary:
    """Architecture table (one row per submodule: name, type, parameters, output shape) and totals."""

    layers: pd.DataFrame
    n_parameters: int
    size_bytes: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def summarize(model: LoadedModel) -> ModelSummary:
    """Layer table from one forward pass with hooks on a private copy (the shared module is never hooked)."""
    shapes: dict[str, tuple] = {}
    work = copy_module(model.module)
    handles = []

    def record(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])
        return hook

    try:
        for name, module in work.named_modules():
            handles.append(module.register_forward_hook(record(name)))
        with torch.no_grad():
            out = work(model.info.example_input(1))
    except Exception:  # TorchScript submodules may not accept hooks; the table then lacks shapes
        out = model.forward_batched(model.info.example_input(1))
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, module in model.module.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({
            "layer": name or "(model)",
            "type": model.layer_types.get(name, type(module).__name__),
            "depth": 0 if not name else name.count(".") + 1,
            "parameters": sum(p.numel() for p in module.parameters()),
            "own parameters": own,
            "output shape": "×".join(map(str, shapes[name])) if name in shapes else "",
        })
    return ModelSummary(
        layers=pd.DataFrame(rows),
        n_parameters=model.n_parameters,
        size_bytes=model.size_bytes,
        input_shape=model.info.input_shape,
        output_shape=tuple(out.shape[1:]),
    )

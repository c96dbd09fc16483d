"""Every model format in, one `LoadedModel` out. Nothing uploaded is ever executed.

Formats, by what the bytes are (not the file name):
1. torch.export programs (`.pt2`): the recommended format. The archive is checked before it is
   deserialized (torch's own loader would unpickle, `eval` shape expressions and `exec` guard
   code from the file), then unflattened so that layers are reachable for Grad-CAM.
2. A state_dict (`.pt`/`.pth` read with `weights_only=True`, or `.safetensors`) plus a torchvision
   architecture name; the number of classes is read from the weights.
3. TorchScript (`.pt`): runs, but hides its layers from hooks, so layer methods need format 1 or 2.
4. A fully pickled `nn.Module`: refused, unless the operator started the server with
   `XAI_ALLOW_PICKLE=1` (never settable from a page).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
import struct
import warnings
import weakref
import zipfile
from typing import Any

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.torch_internals import EXPORT_LOCK, run_generated_code, weights_only_unpickling
from xai_core.model import LoadedModel, ModelInfo, class_names_or_default

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 1024**3
MAX_ARCHIVE_UNCOMPRESSED_BYTES = 4 * 1024**3

EXPORT_HOWTO = (
    "Export it instead: `ep = torch.export.export(model.eval(), (example_input,)); "
    "torch.export.save(ep, 'model.pt2')`, or save `model.state_dict()` with `torch.save` and pick the "
    "torchvision architecture on this page."
)

# Graph targets a vetted .pt2 may call: tensor operators and plain arithmetic, nothing that reaches Python.
_SAFE_TARGET_PREFIXES = ("torch.ops.aten.", "torch.ops.prims.", "_operator.", "math.")
_SAFE_TARGETS = {"torch.sym_int", "torch.sym_float", "torch.sym_max", "torch.sym_min", "torch.sym_not",
                 "torch.sym_ite", "torch.sym_sqrt", "torch._sym_sqrt"}
_SAFE_EXPR_NAMES = {
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "positive", "integer", "real", "nonnegative",
    "finite", "oo", "zoo", "nan", "floor", "ceiling", "FloorDiv", "ModularIndexing", "Where", "PythonMod",
    "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural",
    "IntTrueDiv", "FloatTrueDiv", "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or",
    "Identity", "sqrt",
}
_SYMBOL_NAME = re.compile(r"^[a-z]{1,3}\d+$")


# ---------------------------------------------------------------------------------------- public API


def load_model(
    data: bytes,
    filename: str = "model",
    sidecar: bytes | str | dict | None = None,
    overrides: dict | None = None,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load model bytes of any supported format; metadata = inferred < sidecar JSON < overrides.

    `overrides` are the page's form fields (same keys as `ModelInfo`). Raises `XaiError` with a message
    saying what is wrong and what to do for anything a user can cause.
    """
    if not data:
        raise XaiError(f"'{filename}' is empty (0 bytes). Upload the model file again.")
    if len(data) > MAX_MODEL_BYTES:
        raise XaiError(f"'{filename}' is {len(data) / 1024**2:.0f} MiB; the limit is {MAX_MODEL_BYTES // 1024**2} MiB.")
    declared = _parse_sidecar(sidecar)
    if overrides:
        declared.update({k: v for k, v in overrides.items() if v not in (None, "", (), [])})
    kind = sniff_model_format(data)
    notes: list[str] = []
    if kind == "export":
        module, inferred = _load_export(data)
        fmt = "export"
    elif kind == "torchscript":
        module, inferred = _load_torchscript(data)
        fmt = "torchscript"
        notes.append(
            "TorchScript hides its layers from hooks: Grad-CAM and other layer methods are unavailable. "
            "Gradient and perturbation methods work. For layer methods, upload a torch.export `.pt2` "
            "or a state_dict with its torchvision architecture."
        )
    elif kind in ("torch_save", "safetensors"):
        module, inferred, fmt = _load_saved_object(data, kind, declared.get("architecture"), allow_pickle, notes)
    else:
        raise XaiError(
            f"'{filename}' is not a model file this dashboard reads (expected a torch.export `.pt2`, a "
            "state_dict `.pt`/`.pth`/`.safetensors`, or TorchScript `.pt`)."
        )
    module.eval()
    layer_types = inferred.pop("layer_types", None) or {
        name: type(m).__name__ for name, m in module.named_modules()
    }
    info, assumed = _settle_info(module, inferred, declared, filename)
    if info.input_kind == "text":
        check_text_model(module, info, layer_types)
    digest = hashlib.sha256(data)
    digest.update(info.to_json().encode())
    return LoadedModel(module=module, info=info, format=fmt, sha256=digest.hexdigest(),
                       size_bytes=len(data), notes=notes, layer_types=layer_types, assumed=assumed)


def load_model_file(path, sidecar_path=None, **kwargs) -> LoadedModel:
    """`load_model` from paths; the sidecar defaults to the model's path with `.json`."""
    from pathlib import Path

    path = Path(path)
    sidecar_path = Path(sidecar_path) if sidecar_path else path.with_suffix(".json")
    sidecar = sidecar_path.read_bytes() if sidecar_path.exists() else None
    return load_model(path.read_bytes(), path.name, sidecar=sidecar, **kwargs)


def sniff_model_format(data: bytes) -> str:
    """'export', 'torchscript', 'torch_save', 'safetensors' or 'unknown', from the bytes themselves."""
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith("models/model.json") or n.endswith("/archive_format") for n in names):
            return "export"
        if any("/code/" in n or n.startswith("code/") for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch_save"
        return "unknown"
    if data[:1] == b"\x80":  # legacy (non-zip) torch.save / pickle
        return "torch_save"
    if len(data) > 10:
        (header_len,) = struct.unpack("<Q", data[:8])
        if 0 < header_len < len(data) and data[8:9] == b"{":
            return "safetensors"
    return "unknown"


def torchvision_architectures() -> list[str]:
    """Names of torchvision's image-classification architectures, for the page's selector."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


# ---------------------------------------------------------------------------------------- metadata


def _parse_sidecar(sidecar) -> dict:
    if sidecar is None:
        return {}
    if isinstance(sidecar, dict):
        data = sidecar
    else:
        try:
            data = json.loads(sidecar)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise XaiError(f"The metadata sidecar is not valid JSON ({exc}). Fix it or leave it out.") from None
    ModelInfo.from_dict(data)  # validates field names and types
    return dict(data)


IMAGENET_ASSUMED = ("ImageNet statistics, torchvision's default: nothing in the file or sidecar says how pixels are "
                    "normalised")


def _settle_info(module: nn.Module, inferred: dict, declared: dict, filename: str) -> tuple[ModelInfo, dict[str, str]]:
    """Merge inferred and declared metadata, then check it against one real forward pass.

    Returns the info and the fields whose values are guesses (field → why), which the page shows and lets the user fix.
    """
    assumed: dict[str, str] = dict(inferred.pop("_assumed", {}))
    input_dtype = inferred.pop("_input_dtype", None)
    values: dict[str, Any] = {"name": filename.rsplit(".", 1)[0]}
    values.update(inferred)
    values.update(declared)
    if values.get("input_kind") == "text" or (values.get("tokenizer") and "input_kind" not in declared):
        _settle_text_values(values, declared, input_dtype)
    if "input_shape" not in values:
        features = values.get("feature_names")
        if features and values.get("input_kind", "tabular") == "tabular":
            values["input_kind"], values["input_shape"] = "tabular", (len(features),)
        elif values.get("input_kind") == "tabular":
            raise XaiError("A tabular model needs its number of features: give 'feature_names' (one per column, in the "
                           "model's order) or 'input_shape' such as [8], in Model details or the sidecar.")
        else:
            values.setdefault("input_kind", "image")
            assumed["input_shape"] = ("nothing in the file or sidecar gives it, so 3×224×224 (the usual ImageNet "
                                      "input) is assumed")
    info = ModelInfo.from_dict(values)
    if info.input_kind == "text" and info.task != "classification":
        raise XaiError("Text models are explained as classifiers: the model must return one logit per class.")
    if info.input_kind == "image" and len(info.input_shape) != 3:
        raise XaiError(f"An image model takes (channels, height, width); this one's input shape is {list(info.input_shape)}. "
                       "Set 'input_kind' to 'tabular' or fix 'input_shape'.")
    if info.input_kind == "tabular" and len(info.input_shape) != 1:
        raise XaiError(f"A tabular model takes (n_features,); this one's input shape is {list(info.input_shape)}.")
    if info.input_kind == "image":
        if "mean" not in values and "std" not in values:
            if info.channels == 1:
                info = info.updated(mean=(0.5,), std=(0.5,))
                assumed.setdefault("mean", "nothing in the file or sidecar says how pixels are normalised; for one "
                                           "channel, (x − 0.5) / 0.5 (pixels in [−1, 1]) is assumed")
            else:
                assumed.setdefault("mean", IMAGENET_ASSUMED)
            assumed.setdefault("std", assumed["mean"])
        if len(info.mean) != info.channels or len(info.std) != info.channels:
            raise XaiError(f"Normalisation has {len(info.mean)} mean and {len(info.std)} std values for "
                           f"{info.channels} channels; give one of each per channel.")
    assumed = {k: v for k, v in assumed.items() if k not in declared and (info.input_kind == "image" or k not in ("mean", "std"))}
    try:
        with torch.no_grad():
            out = module(info.example_input(2))
    except Exception as exc:  # the model is the user's: any failure here means it does not fit
        if info.input_kind == "text":
            raise XaiError(f"The model failed on a batch of PAD token ids, int64 of shape {[2, *info.input_shape]}: "
                           f"{_short(exc)}. A text model must take int64 token ids (batch, max_length) and return "
                           "class logits; check the tokenizer's max_length.") from None
        source = (f"assumed: {assumed['input_shape']}" if "input_shape" in assumed else
                  "from the page or sidecar" if "input_shape" in declared else "as saved in the file")
        raise XaiError(
            f"The model failed on a batch of shape {[2, *info.input_shape]} (input shape {source}): {_short(exc)}. "
            "Set the input shape (without the batch dimension) in Model details or the sidecar, e.g. 'input_shape': "
            "[3, 32, 32] for images or 'feature_names' for a table."
        ) from None
    if not isinstance(out, torch.Tensor):
        raise XaiError("The model must return one tensor of logits or predictions; it returned "
                       f"{type(out).__name__}.")
    n_out = int(out.reshape(2, -1).shape[1])
    task = info.task
    if "task" not in declared and n_out == 1:
        task = "regression"
    if task == "classification":
        if n_out < 2:
            raise XaiError("A classifier must return one logit per class (at least 2); this model returns 1 value. "
                           "Set task to 'regression', or export the model with two outputs.")
        if info.class_names and len(info.class_names) != n_out:
            raise XaiError(f"The model returns {n_out} class scores but {len(info.class_names)} class names were given "
                           f"({list(info.class_names)[:6]}…). Give exactly {n_out} names.")
        info = info.updated(task=task, class_names=class_names_or_default(info.class_names, n_out))
    else:
        if n_out != 1:
            raise XaiError(f"A regression model must return one value per row; this one returns {n_out}.")
        info = info.updated(task=task, class_names=(), target_name=info.target_name or "prediction")
    if info.input_kind == "tabular":
        n = info.input_shape[0]
        if info.feature_names and len(info.feature_names) != n:
            raise XaiError(f"The model takes {n} features but {len(info.feature_names)} feature names were given.")
        if not info.feature_names:
            info = info.updated(feature_names=tuple(f"x{i}" for i in range(n)))
    return info, assumed


def _settle_text_values(values: dict, declared: dict, input_dtype: str | None) -> None:
    """A text model's metadata: a tokenizer is required, and it fixes the input shape to (max_length,)."""
    from xai_core.text.tokenizer import TOKENIZER_HOWTO, TokenizerSpec

    if not values.get("tokenizer"):
        raise XaiError("This is a text model (it takes token ids), but the sidecar has no 'tokenizer': without it "
                       "the dashboard cannot turn documents into ids. " + TOKENIZER_HOWTO)
    if input_dtype is not None and not input_dtype.startswith(("torch.int", "torch.uint")):
        raise XaiError(f"A text model must take int64 token ids, but this model's input is {input_dtype}. Export it "
                       "with an int64 example, e.g. torch.zeros((2, max_length), dtype=torch.int64).")
    spec = TokenizerSpec.from_dict(values["tokenizer"])
    length = (spec.max_length,)
    shape = values.get("input_shape")
    if shape is not None and tuple(int(v) for v in shape) != length:
        where = "given in the sidecar or page" if "input_shape" in declared else "saved in the model file"
        raise XaiError(f"The tokenizer's max_length is {spec.max_length}, but the input shape {where} is "
                       f"{list(shape)}; they must agree (input_shape is [max_length]).")
    values["input_kind"], values["input_shape"], values["tokenizer"] = "text", length, spec
    values.setdefault("task", "classification")


def check_text_model(module: nn.Module, info: ModelInfo, layer_types: dict[str, str]) -> None:
    """Refuse a vocabulary larger than the model's embedding table (found by type, else by a forward pass)."""
    vocab_size = info.tokenizer.vocab_size
    for name, size in _embedding_sizes(module, layer_types):
        if vocab_size > size:
            raise XaiError(f"The tokenizer has {vocab_size} tokens but the model's embedding '{name}' has only {size} "
                           f"rows: ids {size}…{vocab_size - 1} would not exist. Use the vocabulary the model was "
                           "trained with.")
    largest = torch.full((1, *info.input_shape), vocab_size - 1, dtype=torch.int64)
    try:
        with torch.no_grad():
            module(largest)
    except Exception as exc:  # an id past the embedding table fails inside the user's model
        raise XaiError(f"The model fails on the tokenizer's largest id ({vocab_size - 1}): {_short(exc)}. The "
                       "vocabulary is probably larger than the model's embedding; use the one it was trained with.") from None


def _embedding_sizes(module: nn.Module, layer_types: dict[str, str]) -> list[tuple[str, int]]:
    found = []
    for name, sub in module.named_modules():
        kinds = (layer_types.get(name), getattr(sub, "original_name", None), type(sub).__name__)  # TorchScript: original_name
        weight = getattr(sub, "weight", None)
        if "Embedding" in kinds and isinstance(weight, torch.Tensor) and weight.ndim == 2:
            found.append((name, int(weight.shape[0])))
    return found


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ---------------------------------------------------------------------------------------- torch.export


def _load_export(data: bytes) -> tuple[nn.Module, dict]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    _check_export_archive(archive)
    with EXPORT_LOCK, weights_only_unpickling(f"This .pt2 archive contains a pickled Python object; refused. {EXPORT_HOWTO}"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(io.BytesIO(data))
        except XaiError:
            raise
        except Exception as exc:
            raise XaiError(f"This .pt2 file could not be read as a torch.export program: {_short(exc)}. "
                           "Save it with `torch.export.save` from the same PyTorch version range.") from None
    inputs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    if len(inputs) != 1:
        raise XaiError(f"This exported model takes {len(inputs)} inputs; the dashboard explains models with exactly "
                       "one input tensor (an image batch or a table batch). Export a wrapper that takes one tensor.")
    placeholder = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == inputs[0].arg.name)
    shape = placeholder.meta["val"].shape
    inferred: dict[str, Any] = {}
    static = [int(d) if isinstance(d, int) or str(d).isdigit() else None for d in shape[1:]]
    dtype = getattr(placeholder.meta["val"], "dtype", None)
    inferred["_input_dtype"] = str(dtype)
    if None not in static:
        inferred["input_shape"] = tuple(static)
        inferred["input_kind"] = "image" if len(static) == 3 else "tabular"
        if dtype is not None and not dtype.is_floating_point and len(static) == 1:
            inferred["input_kind"] = "text"  # integer ids
    inferred["layer_types"] = _export_layer_types(program)
    with EXPORT_LOCK:
        module = torch.export.unflatten(program)
    _drop_fake_tensor_meta(module)
    run_generated_code(module)
    _share_weights(program, module)
    _EXPORTED_PROGRAMS[module] = program
    return module, inferred


def _share_weights(program, module: nn.Module) -> None:
    """Point the kept program's parameters and buffers at the module's own tensors (unflattening copied them), so
    keeping the program costs no second copy of the weights. Lifting reads them, never writes."""
    state = program.state_dict
    for name, value in list(state.items()):
        try:
            own = module.get_parameter(name) if isinstance(value, nn.Parameter) else module.get_buffer(name)
        except AttributeError:
            continue
        if own.shape == value.shape and own.dtype == value.dtype:
            state[name] = own


# Each unflattened module → the vetted program it was unflattened from, kept so that lifting (real int8, timing) reuses
# it instead of exporting the module again. Keyed by the module object itself: a copy, a variant or any other module
# has no entry, so a program is only ever read for the very module it describes.
_EXPORTED_PROGRAMS: "weakref.WeakKeyDictionary[nn.Module, torch.export.ExportedProgram]" = weakref.WeakKeyDictionary()


def exported_program(module: nn.Module):
    """The torch.export program `module` was loaded from (a `.pt2` upload), or None for any other module."""
    try:
        return _EXPORTED_PROGRAMS.get(module)
    except TypeError:  # not weak-referenceable (never one of ours)
        return None


def _export_layer_types(program) -> dict[str, str]:
    """Original class name of every submodule (unflattening turns them all into InterpreterModule)."""
    types: dict[str, str] = {}
    for node in program.graph.nodes:
        for path, type_name in (node.meta.get("nn_module_stack") or {}).values():
            if isinstance(type_name, type):
                type_name = type_name.__name__
            types[path] = str(type_name).rsplit(".", 1)[-1]
    return types


def _drop_fake_tensor_meta(module: nn.Module) -> None:
    """Fake tensors left in node meta make `copy.deepcopy` fail; explanations copy the module, so drop them."""
    for submodule in module.modules():
        graph = getattr(submodule, "graph", None)
        if isinstance(graph, torch.fx.Graph):
            for node in graph.nodes:
                node.meta = {k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")}


def _check_export_archive(archive: zipfile.ZipFile) -> None:
    """Refuse a .pt2 that would make torch's loader run anything: compiled code, pickled objects, code strings."""
    infos = archive.infolist()
    unpacked = sum(i.file_size for i in infos)
    if unpacked > MAX_ARCHIVE_UNCOMPRESSED_BYTES:
        raise XaiError(f"This .pt2 archive unpacks to {unpacked / 1024**2:.0f} MiB, over the "
                       f"{MAX_ARCHIVE_UNCOMPRESSED_BYTES // 1024**2} MiB limit; refused.")
    for info in infos:
        name = info.filename
        if name.endswith((".so", ".cpp", ".o", ".dll", ".dylib")) or "aotinductor" in name:
            raise XaiError(f"This .pt2 archive contains compiled code ({name}); the dashboard never runs uploaded "
                           "binaries. Save the program with plain `torch.export.save`.")
        if "/constants/" in name and ("custom_obj" in name or "opaque_obj" in name):
            raise XaiError(f"This .pt2 archive contains a pickled Python object ({name}); refused. {EXPORT_HOWTO}")
    model_jsons = [i.filename for i in infos if i.filename.endswith("models/model.json")]
    if not model_jsons:
        raise XaiError("This .pt2 archive has no `models/model.json`: it is not a torch.export program saved by "
                       "PyTorch ≥ 2.6. Re-export it with `torch.export.save`.")
    for name in model_jsons:
        try:
            program = json.loads(archive.read(name))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise XaiError(f"{name} inside the .pt2 archive is not valid JSON; the file is damaged.") from None
        if program.get("guards_code"):
            raise XaiError("This .pt2 program carries Python guard code, which the dashboard will not run. Export "
                           "with static shapes or simple dynamic dimensions (torch.export.Dim) only.")
        bad_targets, bad_exprs = set(), set()
        for key, value in _walk_json(program):
            if key == "target" and isinstance(value, str):
                if not (value.startswith(_SAFE_TARGET_PREFIXES) or value in _SAFE_TARGETS):
                    bad_targets.add(value)
            elif key == "expr_str" and isinstance(value, str) and not _is_safe_expr(value):
                bad_exprs.add(value[:80])
        for expr in (program.get("range_constraints") or {}):
            if not _is_safe_expr(expr):
                bad_exprs.add(expr[:80])
        if bad_targets:
            raise XaiError(f"This .pt2 program calls functions other than tensor operators ({sorted(bad_targets)[:5]}); "
                           "refused, since the dashboard never runs uploaded code.")
        if bad_exprs:
            raise XaiError(f"This .pt2 program has shape expressions that are not plain arithmetic ({sorted(bad_exprs)[:3]}); refused.")


def _walk_json(obj, key=None):
    stack = [(key, obj)]
    while stack:
        key, obj = stack.pop()
        if isinstance(obj, dict):
            stack.extend(obj.items())
        elif isinstance(obj, list):
            stack.extend((key, v) for v in obj)
        else:
            yield key, obj


def _is_safe_expr(expr: str) -> bool:
    """A sympy expression string made only of known functions, symbol names and arithmetic."""
    if "__" in expr or "lambda" in expr:
        return False
    stripped = re.sub(r"'([A-Za-z0-9_]+)'", lambda m: "SYM" if _SYMBOL_NAME.match(m.group(1)) else "'BAD'", expr)
    if "'" in stripped or '"' in stripped:
        return False
    if re.search(r"[^A-Za-z0-9_ +\-*/(),=<>!%&|~.]", stripped):
        return False
    if re.search(r"[A-Za-z_]\w*\s*\.", stripped) or re.search(r"\.\s*[A-Za-z_]", stripped):
        return False  # attribute access; only decimal points may use '.'
    for name in re.findall(r"[A-Za-z_]\w*", stripped):
        if name != "SYM" and name not in _SAFE_EXPR_NAMES and not _SYMBOL_NAME.match(name):
            return False
    return True


# ---------------------------------------------------------------------------------------- TorchScript


def _load_torchscript(data: bytes) -> tuple[nn.Module, dict]:
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise XaiError(f"This TorchScript file could not be loaded: {_short(exc)}.") from None
    return module, {}


# ---------------------------------------------------------------------------------------- state_dict


def _load_saved_object(data: bytes, kind: str, architecture: str | None, allow_pickle: bool, notes: list[str]):
    if kind == "safetensors":
        from safetensors.torch import load as load_safetensors

        try:
            obj = load_safetensors(data)
        except Exception as exc:
            raise XaiError(f"This .safetensors file could not be read: {_short(exc)}.") from None
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "Weights only load failed" not in str(exc) and "weights_only" not in str(exc):
                raise XaiError(f"This file could not be read as a PyTorch save file: {_short(exc)}.") from None
            if not allow_pickle:
                raise XaiError(
                    "This file is a pickled Python object (for example a whole `nn.Module` saved with "
                    "`torch.save(model)`). Unpickling it could run arbitrary code, so the dashboard refuses it. "
                    + EXPORT_HOWTO
                ) from None
            return _load_trusted_pickle(data, notes)
        except Exception as exc:
            raise XaiError(f"This file could not be read as a PyTorch save file: {_short(exc)}.") from None
    state_dict = _extract_state_dict(obj)
    module, inferred = _build_torchvision(state_dict, architecture)
    return module, inferred, "state_dict"


def _load_trusted_pickle(data: bytes, notes: list[str]):
    log.warning("Unpickling a full model because the operator set XAI_ALLOW_PICKLE=1")
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    if not isinstance(obj, nn.Module):
        raise XaiError(f"The pickled file holds a {type(obj).__name__}, not an nn.Module.")
    notes.append("Loaded from a full pickle because the operator allowed it (XAI_ALLOW_PICKLE=1).")
    return obj, {}, "pickle"


def _extract_state_dict(obj) -> dict[str, torch.Tensor]:
    """A state_dict, possibly inside a training checkpoint, with any DataParallel 'module.' prefix removed."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise XaiError("This file holds no state_dict (a mapping of parameter names to tensors). Save "
                       "`model.state_dict()` with `torch.save`, or export the model to `.pt2`.")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _final_linear_name(model: nn.Module) -> str | None:
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _architecture_skeleton(name: str, num_classes: int | None = None) -> nn.Module:
    """The architecture with its parameters on the meta device (names and shapes only, no memory, no init)."""
    import torchvision
    from torch.overrides import TorchFunctionMode

    class ParametersOnMeta(TorchFunctionMode):
        """Only the tensors parameters and buffers are made from go to meta; small helper tensors stay on the CPU.

        RegNet computes its stage widths with torch (`arange`, `pow`, `round`, then `.tolist()`), which fails when every
        tensor is on meta ("Cannot copy out of meta tensor"), so under `torch.device("meta")` no RegNet was ever built
        and their weights matched no architecture.
        """

        FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.empty_strided}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func in self.FACTORIES and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    kwargs = {"weights": None}
    if num_classes:
        kwargs["num_classes"] = num_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name, **kwargs)
        except NotImplementedError:  # computes with tensor values while building (RegNet)
            with ParametersOnMeta():
                return torchvision.models.get_model(name, **kwargs)


def _build_torchvision(state_dict: dict[str, torch.Tensor], architecture: str | None):
    import torchvision

    if not architecture:
        architecture = _guess_architecture(state_dict)
    if architecture not in torchvision_architectures():
        raise XaiError(f"'{architecture}' is not a torchvision classification architecture. Pick one of: "
                       f"{', '.join(torchvision_architectures()[:12])}, …")
    skeleton = _architecture_skeleton(architecture)
    head = _final_linear_name(skeleton)
    num_classes = None
    if head and f"{head}.weight" in state_dict:
        num_classes = int(state_dict[f"{head}.weight"].shape[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(architecture, weights=None, **({"num_classes": num_classes} if num_classes else {}))
    except Exception as exc:
        raise XaiError(f"Could not build {architecture}: {_short(exc)}.") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong:
        guess = _guess_architecture(state_dict, raise_if_none=False)
        hint = f" The weights look like '{guess}'." if guess and guess != architecture else ""
        raise XaiError(
            f"These weights do not fit {architecture}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(wrong)} shape mismatches "
            f"(e.g. {wrong[:2]}).{hint} Pick the architecture the weights were trained with."
        )
    model.load_state_dict(state_dict, strict=True)
    inferred = {"architecture": architecture, "input_kind": "image", "input_shape": (3, 224, 224),
                "_assumed": {"input_shape": "a state_dict does not record it, so torchvision's usual 3×224×224 is "
                                            "assumed (its layers accept other sizes too)"}}
    return model, inferred


_ARCH_KEYS_CACHE: dict[str, dict[str, tuple]] = {}


def _guess_architecture(state_dict: dict[str, torch.Tensor], raise_if_none: bool = True) -> str | None:
    """The torchvision architecture whose parameter names and shapes (head aside) match these weights."""
    keys = set(state_dict)
    for name in torchvision_architectures():
        if name not in _ARCH_KEYS_CACHE:
            try:
                skeleton = _architecture_skeleton(name)
            except Exception:  # an architecture that cannot be built on the meta device is just not a candidate
                continue
            _ARCH_KEYS_CACHE[name] = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
            _ARCH_KEYS_CACHE[name]["__head__"] = _final_linear_name(skeleton)
        shapes = dict(_ARCH_KEYS_CACHE[name])
        head = shapes.pop("__head__")
        if set(shapes) != keys:
            continue
        if all(tuple(state_dict[k].shape) == s for k, s in shapes.items() if not (head and k.startswith(head + "."))):
            return name
    if raise_if_none:
        raise XaiError("This state_dict matches no torchvision architecture by its layer names. Pick the "
                       "architecture on the page (or set 'architecture' in the sidecar), or export the model to `.pt2`.")
    return None

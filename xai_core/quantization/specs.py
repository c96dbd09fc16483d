"""What a variant is: its spec, the registry of builders (one class per kind), and the built variant."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import nn

from xai_core.errors import XaiError
from xai_core.model import LoadedModel
from xai_core.quantization import lifting

if TYPE_CHECKING:
    from xai_core.quantization.compare import QuantizationComparison, VariantResult

BITS = (8, 6, 4, 3, 2)
TORCHSCRIPT_HIDES_LAYERS = ("Real int8 needs the model's layers, which TorchScript hides: not for TorchScript. Upload "
                            "a torch.export `.pt2` or a state_dict with its architecture; fp16/bf16 and weight fake "
                            "quantization still work.")


@dataclass(frozen=True)
class VariantSpec:
    """One way of storing the weights. `bits` and `per_channel` apply to kind="weights"; `sparsity` to every kind.
    `kind` is one of `variant_kinds()`."""

    kind: str
    bits: int = 32
    per_channel: bool = True
    sparsity: float = 0.0

    def __post_init__(self):
        self.builder.validate(self)
        if not 0.0 <= self.sparsity < 1.0:
            raise XaiError(f"Sparsity is a share of weights in [0, 1), not {self.sparsity}.")

    @property
    def builder(self) -> "VariantBuilder":
        return builder_for(self.kind)

    @property
    def label(self) -> str:
        text = self.builder.label(self)
        if self.sparsity > 0:
            text += f" + {self.sparsity:.0%} pruned"
        return text

    @property
    def real_int8(self) -> bool:
        return self.builder.real_int8

    def pruned(self, sparsity: float) -> "VariantSpec":
        return dataclasses.replace(self, sparsity=sparsity)


@dataclass
class Variant:
    """A variant as a model every method accepts (float32 in, float32 out), plus how big it is."""

    spec: VariantSpec
    model: LoadedModel
    size_bytes: int
    size_basis: str  # "serialized" (torch.save of its state_dict) or "packed" (b bits per weight + scales)
    twin: LoadedModel | None = None  # real int8 only: fake-quant twin with autograd, for gradient methods
    notes: list[str] = field(default_factory=list)
    emulated: LoadedModel | None = None  # fp16/bf16 only: float32 emulation (same answers, fast on any CPU)

    @property
    def answer_model(self) -> LoadedModel:
        """What the comparison reads answers and perturbation explanations from."""
        return self.emulated if self.emulated is not None else self.model

    @property
    def gradient_model(self) -> LoadedModel:
        """What gradient methods (Grad-CAM) explain: the fake-quant twin of a real int8 model, else `answer_model`."""
        return self.twin if self.twin is not None else self.answer_model


@dataclass(frozen=True)
class SpeedVerdict:
    """A plain sentence on a variant's speed, and how loudly to say it."""

    level: Literal["warning", "info", "caption"]
    text: str


# ---------------------------------------------------------------------------------------- building context


class BuildContext:
    """What building the variants of one model shares: the model, the calibration inputs, and its graph lifted to nn
    layers (`lifted()`: lifted once, on first use, for every int8 variant, the timing and the bits curve)."""

    def __init__(self, model: LoadedModel, calibration: torch.Tensor | None = None):
        self.model, self.calibration = model, calibration
        self._lock = threading.Lock()
        self._lifted: lifting.Lifted | None = None
        self._lift_error: str | None = None
        self.lifts = 0  # how many times the model was lifted (tests check: once)

    def lifted(self) -> lifting.Lifted:
        """The lifted fp32 graph (raises XaiError when the model cannot be lifted, e.g. TorchScript)."""
        with self._lock:
            if self._lifted is None and self._lift_error is None:
                if self.model.format == "torchscript":
                    self._lift_error = TORCHSCRIPT_HIDES_LAYERS
                else:
                    self.lifts += 1
                    try:
                        self._lifted = lifting.lift(self.model.module, self.example())
                    except XaiError as exc:
                        self._lift_error = str(exc)
            if self._lift_error is not None:
                raise XaiError(self._lift_error)
            return self._lifted

    def flat_fp32(self) -> nn.Module:
        """The float model as a flat graph of nn layers, as real int8 variants are, so that timing them against it
        compares kernels, not Python overhead (an unflattened export interprets its graph node by node, which would
        flatter int8). The model itself when it cannot be lifted (TorchScript)."""
        try:
            return self.lifted().module
        except XaiError:
            return self.model.module

    def example(self) -> torch.Tensor:
        """Two inputs of the model's shape and type: real ones when there is calibration data, else zeros."""
        if self.calibration is not None and len(self.calibration) > 0:
            return self.calibration[:2]
        if self.model.info.input_kind == "text":  # token ids: PAD everywhere
            return torch.full((2, *self.model.info.input_shape), max(self.model.info.tokenizer.pad_id, 0),
                              dtype=torch.int64)
        return torch.zeros((2, *self.model.info.input_shape))


# ---------------------------------------------------------------------------------------- the registry


class VariantBuilder:
    """How one kind of variant is built, timed and described. One subclass per kind, registered with `@register`:
    a new kind of variant is one new class, nothing else changes."""

    kind: ClassVar[str]
    title: ClassVar[str]  # the label of its default spec
    description: ClassVar[str]  # one line for the variant picker's help
    real_int8: ClassVar[bool] = False
    builds_slowly: ClassVar[bool] = False  # its build is a comparison's longest step: side by side, it starts first

    def validate(self, spec: VariantSpec) -> None:
        """Raise XaiError when `spec` makes no sense for this kind."""

    def label(self, spec: VariantSpec) -> str:
        return self.title

    def offered(self) -> list[VariantSpec]:
        """The specs of this kind the page offers."""
        return [VariantSpec(self.kind)]

    def defaults(self, model: LoadedModel) -> list[VariantSpec]:
        """The specs of this kind the page starts with for `model`."""
        return []

    def build(self, spec: VariantSpec, context: BuildContext) -> Variant:
        raise NotImplementedError

    def timing_group(self, spec: VariantSpec) -> str:
        """Variants with the same group run the same kernels, so they share one timing. Default: timed on its own."""
        return spec.label

    def timed_module(self, variant: Variant, context: BuildContext) -> nn.Module:
        """What is timed for this variant's group."""
        return variant.model.module

    def speed_verdicts(self, results: list["VariantResult"], comparison: "QuantizationComparison") -> list[SpeedVerdict]:
        """What to say about the speed of `results` (every result of the kinds sharing this method)."""
        return []


_BUILDERS: dict[str, VariantBuilder] = {}


def register(cls: type[VariantBuilder]) -> type[VariantBuilder]:
    """Class decorator: make `cls` the builder of its `kind`."""
    _BUILDERS[cls.kind] = cls()
    return cls


def builder_for(kind: str) -> VariantBuilder:
    if kind not in _BUILDERS:
        raise XaiError(f"Unknown variant kind {kind!r}; use one of {sorted(_BUILDERS)}.")
    return _BUILDERS[kind]


def variant_kinds() -> list[str]:
    return list(_BUILDERS)


def builders() -> list[VariantBuilder]:
    return list(_BUILDERS.values())


def catalogue() -> list[VariantSpec]:
    """Every variant the page offers, in order (fp32 itself excluded: it is always compared)."""
    return [spec for builder in builders() for spec in builder.offered()]


def default_batch_sizes(model: LoadedModel) -> tuple[int, int]:
    """The batches the page times at: one input, and a batch typical of serving this kind of model."""
    return (1, 256) if model.info.input_kind == "tabular" else (1, 32)

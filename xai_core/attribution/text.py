"""Text explanation methods in one registry, run by one verb, `explain_text(model, documents, method, settings)`.

Every method gives one value per word of each document (`TextAttribution`), for one class (the predicted one by
default). "A word is absent" means the same thing everywhere: its tokens become UNK, while PAD and special tokens
stay as they are. So Layer Integrated Gradients (from the all-UNK baseline), gradient × (embedding − UNK embedding),
leave-one-word-out occlusion and Shapley values all measure the change from that baseline, and on a model linear in
its embeddings they are equal. Sub-word tokens are summed into their word. Gradient methods run on a private copy of
the model (the cached one is shared by every session and never hooked); perturbation methods only run it forward.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from xai_core.attribution.common import CopyPool, method_settings, method_spec, seeded
from xai_core.attribution.results import Background
from xai_core.attribution.shapley import EXACT_MAX_FEATURES, shapley_values
from xai_core.datasets import TextSet
from xai_core.errors import XaiError
from xai_core.model import LoadedModel, OutputSpace, output_scores
from xai_core.text.tokenizer import TokenizedText, tokenize

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]
_POOL = CopyPool()  # private copies for the gradient methods (the cached model is shared and never hooked)
Documents = TextSet | Sequence[str] | Sequence[TokenizedText] | str


# --------------------------------------------------------------------------------------------------
# Settings: one frozen dataclass per method (hashable: a page caches results by model hash + settings)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegratedGradientsTextSettings:
    """Layer Integrated Gradients on the embedding layer, from the baseline where every word is UNK."""

    output: OutputSpace = "probability"
    n_steps: int = 50
    batch_size: int = 16


@dataclass(frozen=True)
class GradientTextSettings:
    """Gradient of the output w.r.t. each token's embedding, times (embedding − UNK's embedding)."""

    output: OutputSpace = "probability"
    batch_size: int = 64


@dataclass(frozen=True)
class OcclusionTextSettings:
    """Leave one word out (its tokens become UNK) and measure the drop of the output."""

    output: OutputSpace = "probability"


@dataclass(frozen=True)
class LimeTextSettings:
    """Captum's Lime over words present/absent: `n_samples` perturbed documents, a linear model fitted on them."""

    output: OutputSpace = "probability"
    n_samples: int = 300
    seed: int = 0


@dataclass(frozen=True)
class ShapleyTextSettings:
    """Shapley values over words (absent = UNK): exact up to 14 words, else sampled until the relative standard
    error reaches `target_relative_se` or `n_permutations` are spent."""

    output: OutputSpace = "probability"
    n_permutations: int = 512
    target_relative_se: float | None = 0.05
    seed: int = 0


# --------------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------------


@dataclass
class TextAttribution:
    """One value per word of each explained document, for one class per document, with what was explained."""

    key: str  # the method's key in METHODS
    method: str  # display name
    settings: Any  # the method's frozen settings, as used
    class_names: list[str]
    documents: list[TokenizedText]
    values: list[np.ndarray]  # per document, (n_words,)
    targets: np.ndarray  # (n,) explained class per document
    probabilities: np.ndarray  # (n, k) class probabilities of the intact documents
    outputs: np.ndarray  # (n,) the explained output f(x)[target] in the settings' output space
    base_values: np.ndarray | None = None  # (n,) f(baseline): all words UNK (IG) or v(∅) (Shapley)
    convergence_deltas: np.ndarray | None = None  # (n,) IG: Σ attributions − (f(x) − f(baseline))
    standard_errors: list[np.ndarray] | None = None  # Shapley sampling only
    names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def value_label(self) -> str:
        return f"effect on {'P' if self.output == 'probability' else 'logit'}(class)"

    @property
    def output(self) -> str:
        return getattr(self.settings, "output", "probability")

    @property
    def efficiency_gap(self) -> float | None:
        """max |base + Σ values − f(x)| over documents; None for methods without a base value."""
        if self.base_values is None:
            return None
        sums = np.array([v.sum() for v in self.values])
        return float(np.max(np.abs(self.base_values + sums - self.outputs))) if len(sums) else 0.0

    def top_words(self, i: int, k: int = 5) -> list[str]:
        order = np.argsort(-self.values[i], kind="stable")[:k]
        return [self.documents[i].words[j] for j in order]

    def to_frame(self) -> pd.DataFrame:
        """Long table: document, word position, word, explained class, attribution (and standard error)."""
        rows = []
        for i, (doc, values) in enumerate(zip(self.documents, self.values)):
            se = self.standard_errors[i] if self.standard_errors is not None else np.zeros(len(values))
            for j, word in enumerate(doc.words):
                rows.append({"document": self.names[i] if self.names else i, "position": j, "word": word,
                             "class": self.class_names[int(self.targets[i])], "attribution": float(values[j]),
                             "standard_error": float(se[j])})
        return pd.DataFrame(rows, columns=["document", "position", "word", "class", "attribution", "standard_error"])


# --------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------


class _Scores(nn.Module):
    """The module's outputs as probabilities or logits (what every method explains)."""

    def __init__(self, module: nn.Module, output: OutputSpace):
        super().__init__()
        self.module = module
        self.output = output

    def forward(self, ids):
        return output_scores(self.module(ids), "classification", self.output)


def embedding_layer_name(model: LoadedModel) -> str:
    """The token embedding: the first submodule whose original type is nn.Embedding."""
    names = [name for name, kind in model.layer_types.items() if kind == "Embedding" and name]
    if not names:
        raise XaiError("No nn.Embedding layer was found in this model, so gradient methods have no token embeddings "
                       "to differentiate. Leave-one-word-out, LIME and Shapley values work on any model.")
    return names[0]


def baseline_ids(documents: Sequence[TokenizedText], unk_id: int) -> torch.Tensor:
    """Every word's tokens replaced by UNK; PAD and special tokens kept."""
    ids = np.stack([np.where(d.token_words >= 0, unk_id, d.ids) for d in documents]).astype(np.int64)
    return torch.from_numpy(ids)


def words_from_tokens(token_values: np.ndarray, doc: TokenizedText) -> np.ndarray:
    """Per-token values (max_length,) → per-word sums (n_words,)."""
    valid = doc.token_words >= 0
    return np.bincount(doc.token_words[valid], weights=token_values[valid], minlength=doc.n_words)[: doc.n_words]


def word_feature_mask(doc: TokenizedText) -> torch.Tensor:
    """(1, max_length): the word index of each token; PAD and special tokens share one extra group (index n_words)."""
    return torch.from_numpy(np.where(doc.token_words >= 0, doc.token_words, doc.n_words)).long().unsqueeze(0)


def _scores(model: LoadedModel, ids: np.ndarray | torch.Tensor, output: OutputSpace) -> np.ndarray:
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    return model.predict_proba(ids, batch_size=512, space=output)


# --------------------------------------------------------------------------------------------------
# Methods: each maps (model, documents, targets, settings) → per-word values (+ extras)
# --------------------------------------------------------------------------------------------------


def _integrated_gradients(model, docs, targets, settings: IntegratedGradientsTextSettings, progress):
    from captum.attr import LayerIntegratedGradients

    unk = model.info.tokenizer.unk_id
    values, deltas = [], []
    with _POOL.borrow(model) as module:
        layer = module.get_submodule(embedding_layer_name(model))
        ig = LayerIntegratedGradients(_Scores(module, settings.output), layer)
        for start in range(0, len(docs), settings.batch_size):
            batch = docs[start : start + settings.batch_size]
            ids = torch.from_numpy(np.stack([d.ids for d in batch]))
            attr, delta = ig.attribute(ids, baselines=baseline_ids(batch, unk),
                                       target=torch.from_numpy(targets[start : start + len(batch)]),
                                       n_steps=settings.n_steps, internal_batch_size=max(settings.n_steps, 64),
                                       return_convergence_delta=True)
            per_token = attr.detach().sum(dim=-1).double().numpy()
            values += [words_from_tokens(per_token[i], d) for i, d in enumerate(batch)]
            deltas.append(delta.detach().double().numpy())
            _report(progress, start + len(batch), len(docs))
    deltas = np.concatenate(deltas)
    base = _scores(model, baseline_ids(docs, unk), settings.output)[np.arange(len(docs)), targets]
    return values, {"base_values": base, "convergence_deltas": deltas}


def _gradient_x_input(model, docs, targets, settings: GradientTextSettings, progress):
    from captum.attr import LayerActivation, LayerGradientXActivation

    unk = model.info.tokenizer.unk_id
    values = []
    with _POOL.borrow(model) as module:
        layer = module.get_submodule(embedding_layer_name(model))
        forward = _Scores(module, settings.output)
        gradient = LayerGradientXActivation(forward, layer, multiply_by_inputs=False)
        activation = LayerActivation(forward, layer)
        for start in range(0, len(docs), settings.batch_size):
            batch = docs[start : start + settings.batch_size]
            ids = torch.from_numpy(np.stack([d.ids for d in batch]))
            grads = gradient.attribute(ids, target=torch.from_numpy(targets[start : start + len(batch)]))
            with torch.no_grad():
                delta = activation.attribute(ids) - activation.attribute(baseline_ids(batch, unk))
            per_token = (grads.detach() * delta).sum(dim=-1).double().numpy()
            values += [words_from_tokens(per_token[i], d) for i, d in enumerate(batch)]
            _report(progress, start + len(batch), len(docs))
    return values, {}


def _occlusion(model, docs, targets, settings: OcclusionTextSettings, progress):
    from captum.attr import FeatureAblation

    unk = model.info.tokenizer.unk_id
    ablation = FeatureAblation(lambda ids: torch.from_numpy(_scores(model, ids, settings.output)))
    values = []
    for i, doc in enumerate(docs):
        ids = torch.from_numpy(doc.ids).unsqueeze(0)
        attr = ablation.attribute(ids, baselines=baseline_ids([doc], unk), target=int(targets[i]),
                                  feature_mask=word_feature_mask(doc), perturbations_per_eval=64)
        values.append(_first_token_values(attr[0].double().numpy(), doc))
        _report(progress, i + 1, len(docs))
    return values, {}


def _lime(model, docs, targets, settings: LimeTextSettings, progress):
    from captum._utils.models.linear_model import SkLearnLinearRegression
    from captum.attr import Lime

    unk = model.info.tokenizer.unk_id
    lime = Lime(lambda ids: torch.from_numpy(_scores(model, ids, settings.output)),
                interpretable_model=SkLearnLinearRegression())
    values = []
    for i, doc in enumerate(docs):
        ids = torch.from_numpy(doc.ids).unsqueeze(0)
        with seeded(settings.seed + i):
            attr = lime.attribute(ids, baselines=baseline_ids([doc], unk), target=int(targets[i]),
                                  feature_mask=word_feature_mask(doc), n_samples=settings.n_samples,
                                  perturbations_per_eval=128)
        values.append(_first_token_values(attr[0].double().numpy(), doc))
        _report(progress, i + 1, len(docs))
    return values, {}


def _shapley(model, docs, targets, settings: ShapleyTextSettings, progress):
    unk = model.info.tokenizer.unk_id
    values, errors, bases = [], [], []
    notes = set()
    for i, doc in enumerate(docs):
        def f(present: np.ndarray, doc=doc) -> np.ndarray:
            return _scores(model, doc.ids_with_words_absent(present > 0.5, unk), settings.output)

        d = doc.n_words
        result = shapley_values(f, np.ones((1, d)), Background(np.zeros((1, d)), np.ones(1), "given"),
                                n_permutations=settings.n_permutations, seed=settings.seed,
                                target_relative_se=settings.target_relative_se,
                                feature_names=[f"w{j}" for j in range(d)])
        t = int(targets[i])
        values.append(result.values[0, :, t])
        errors.append(result.standard_errors[0, :, t])
        bases.append(float(result.base_values[t]))
        if d > EXACT_MAX_FEATURES:
            notes.add(f"Documents of more than {EXACT_MAX_FEATURES} words get sampled Shapley values (antithetic "
                      f"permutations, at most {settings.n_permutations}, until the relative standard error is "
                      f"{settings.target_relative_se}); shorter ones exact values.")
        notes.update(result.notes)
        _report(progress, i + 1, len(docs))
    return values, {"base_values": np.array(bases), "standard_errors": errors, "notes": sorted(notes)}


def _first_token_values(per_token: np.ndarray, doc: TokenizedText) -> np.ndarray:
    """Captum's perturbation methods give every token of a word the word's value: read it once per word."""
    out = np.zeros(doc.n_words)
    for t in range(len(doc.token_words) - 1, -1, -1):
        if doc.token_words[t] >= 0:
            out[doc.token_words[t]] = per_token[t]
    return out


def _report(progress: ProgressFn | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total, f"explaining {done}/{total} documents")


# --------------------------------------------------------------------------------------------------
# The registry and the verb
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextMethod:
    key: str
    name: str
    how_to_read: str
    settings: type
    run: Callable
    needs_gradients: bool = False


METHODS: dict[str, TextMethod] = {m.key: m for m in (
    TextMethod("integrated_gradients", "Integrated Gradients", "Each word's share of the change in the class "
               "probability from the all-UNK document to this one (Layer IG on the embeddings; the convergence "
               "delta is the integration error).", IntegratedGradientsTextSettings, _integrated_gradients, True),
    TextMethod("gradient_x_input", "Gradient × input", "The class probability's gradient at each word's embedding "
               "times (embedding − UNK's embedding): a one-step, local estimate of the same change.",
               GradientTextSettings, _gradient_x_input, True),
    TextMethod("occlusion", "Leave one word out", "How much the class probability drops when this word alone "
               "becomes UNK.", OcclusionTextSettings, _occlusion),
    TextMethod("lime", "LIME (words)", "A linear model of the class probability on words present/absent, fitted on "
               "random documents with words replaced by UNK (sampled).", LimeTextSettings, _lime),
    TextMethod("shapley", "Shapley values (words)", "Each word's average contribution over all orders of adding "
               "words to the all-UNK document; they add up to f(x) − f(all UNK).", ShapleyTextSettings, _shapley),
)}


def as_documents(model: LoadedModel, documents: Documents) -> tuple[list[TokenizedText], list[str]]:
    """Texts, a TextSet or tokenized documents → tokenized documents and their names."""
    if isinstance(documents, TextSet):
        return list(documents.documents), list(documents.names)
    if isinstance(documents, str):
        documents = [documents]
    documents = list(documents)
    if all(isinstance(d, TokenizedText) for d in documents):
        return documents, [f"doc {i + 1}" for i in range(len(documents))]
    if all(isinstance(d, str) for d in documents):
        docs = tokenize(documents, model.info.tokenizer)
        empty = [i + 1 for i, d in enumerate(docs) if d.n_words == 0]
        if empty:
            raise XaiError(f"Document(s) {empty[:5]} have no words to explain; give them some text.")
        return docs, [f"doc {i + 1}" for i in range(len(docs))]
    raise XaiError("Pass the documents as a TextSet, a list of strings or tokenized documents.")


def explain_text(
    model: LoadedModel,
    documents: Documents,
    method: str,
    settings: Any = None,
    targets: Sequence[int] | np.ndarray | int | None = None,
    progress: ProgressFn | None = None,
) -> TextAttribution:
    """Explain a text classifier on `documents` with `method` (a key of `METHODS`) for `targets` (default: the
    predicted class of each document). `progress(done, total, message)` is called as the work advances."""
    if model.info.input_kind != "text" or model.info.tokenizer is None:
        raise XaiError("These methods explain text models (token ids in, class logits out); for images use "
                       "xai_core.attribution.image, for tables xai_core.attribution.tabular.")
    spec = method_spec(METHODS, method, "text")
    settings = method_settings(spec, settings)
    if spec.needs_gradients and not model.supports_layer_methods:
        raise XaiError(f"{spec.name} differentiates the embedding layer's output, which TorchScript hides from hooks. "
                       "Export the model to .pt2, or use leave-one-word-out, LIME or Shapley values.")
    docs, names = as_documents(model, documents)
    if not docs:
        raise XaiError("No documents to explain.")
    ids = np.stack([d.ids for d in docs])
    probabilities = _scores(model, ids, "probability")
    k = probabilities.shape[1]
    if targets is None:
        target_arr = probabilities.argmax(axis=1)
    else:
        target_arr = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(target_arr) == 1:
            target_arr = np.repeat(target_arr, len(docs))
        if len(target_arr) != len(docs) or target_arr.min() < 0 or target_arr.max() >= k:
            raise XaiError(f"Targets must be {len(docs)} class indices between 0 and {k - 1}.")
    outputs = (probabilities if settings.output == "probability" else _scores(model, ids, "logit"))
    values, extra = spec.run(model, docs, target_arr, settings, progress)
    notes = list(extra.pop("notes", []))
    truncated = sum(d.truncated for d in docs)
    if truncated:
        notes.append(f"{truncated} document(s) are longer than the model's {model.info.tokenizer.max_length} tokens: "
                     "only the words the model sees are explained.")
    return TextAttribution(
        key=spec.key, method=spec.name, settings=settings, class_names=list(model.info.class_names), documents=docs,
        values=[np.asarray(v, dtype=np.float64) for v in values], targets=target_arr, probabilities=probabilities,
        outputs=outputs[np.arange(len(docs)), target_arr].astype(np.float64), names=names, notes=notes, **extra,
    )

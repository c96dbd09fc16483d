"""Text models: tokenizer, loading checks, text data, and every word-attribution method against known answers."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xai_core.attribution.text import (
    METHODS,
    GradientTextSettings,
    IntegratedGradientsTextSettings,
    LimeTextSettings,
    OcclusionTextSettings,
    ShapleyTextSettings,
    explain_text,
)
from xai_core.data_loading import load_data
from xai_core.errors import XaiError
from xai_core.loading import load_model
from xai_core.text.evaluation import aopc, evidence_share, rank_agreement, top_words_per_class
from xai_core.text.tokenizer import TokenizerSpec, tokenize

PAD, UNK = "[PAD]", "[UNK]"
WORDS = ["the", "film", "was", "good", "bad", "plot", "and", "acting", ".", "very"]
VOCAB = [PAD, UNK, *WORDS]
L = 12


class BagOfEmbeddings(nn.Module):
    """logits = Σ_t W · e(ids_t) + b: linear in the embeddings, so every method's word values are known by hand."""

    def __init__(self, vocab_size: int, dim: int = 4, classes: int = 2, seed: int = 0, squash: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embedding = nn.Embedding(vocab_size, dim)
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(vocab_size, dim, generator=g))
            self.embedding.weight[0].zero_()  # PAD contributes nothing
            self.head.weight.copy_(torch.randn(classes, dim, generator=g))
        self.squash = squash

    def forward(self, ids):
        logits = self.head(self.embedding(ids).sum(dim=1))
        return torch.tanh(logits) * 3 if self.squash else logits


def export_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def sidecar(vocab=VOCAB, length=L, **extra) -> str:
    return json.dumps({"class_names": ["neg", "pos"], "tokenizer": {"vocab": list(vocab), "pad_token": PAD,
                                                                     "unk_token": UNK, "max_length": length}, **extra})


@pytest.fixture(scope="module")
def linear():
    module = BagOfEmbeddings(len(VOCAB))
    model = load_model(export_bytes(module, torch.zeros((2, L), dtype=torch.int64)), "bag.pt2", sidecar=sidecar())
    return module, model


def hand_values(module: BagOfEmbeddings, doc, target: int) -> np.ndarray:
    """W_target · (e(word) − e(UNK)) for each word (one token per word)."""
    w = module.head.weight[target].detach().numpy().astype(np.float64)
    e = module.embedding.weight.detach().numpy().astype(np.float64)
    return np.array([w @ (e[doc.ids[j]] - e[1]) for j in range(doc.n_words)])


# ---------------------------------------------------------------------------------------- tokenizer and loading


def test_vocab_tokenizer_pads_lowercases_and_maps_unknown_words_to_unk():
    spec = TokenizerSpec.from_dict({"vocab": VOCAB, "max_length": 6, "pad_token": PAD, "unk_token": UNK})
    doc = tokenize("The FILM was weird.", spec)[0]
    assert doc.words == ["The", "FILM", "was", "weird", "."]
    assert doc.ids.tolist() == [2, 3, 4, 1, 10, 0]
    assert doc.token_words.tolist() == [0, 1, 2, 3, 4, -1]
    assert doc.spans[3] == (13, 18) and not doc.truncated
    long = tokenize("the film " * 5, spec)[0]
    assert long.truncated and long.n_words == 6 and long.n_words_total == 10


def test_text_model_loads_with_its_tokenizer(linear):
    _, model = linear
    assert model.info.input_kind == "text" and model.info.input_shape == (L,)
    assert model.info.tokenizer.vocab == tuple(VOCAB) and model.info.tokenizer.pad_id == 0
    assert model.layer_types["embedding"] == "Embedding"


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_exported_lstm_and_transformer_pass_the_archive_vetting(arch):
    from xai_core.demo.text_architectures import BiLSTMClassifier, TransformerClassifier

    torch.manual_seed(0)
    module = (BiLSTMClassifier(len(VOCAB), 2, 0, 8, 8) if arch == "lstm"
              else TransformerClassifier(len(VOCAB), 2, 0, L, embed_dim=8, heads=2, layers=1))
    example = torch.randint(0, len(VOCAB), (3, L))
    model = load_model(export_bytes(module, example), f"{arch}.pt2", sidecar=sidecar())
    assert model.info.input_kind == "text"
    with torch.no_grad():
        assert torch.allclose(model.module(example), module(example), atol=1e-5)


def test_model_without_int64_ids_is_refused():
    module = nn.Sequential(nn.Linear(L, 2))
    data = export_bytes(module, torch.zeros((2, L)))
    with pytest.raises(XaiError, match="int64 token ids"):
        load_model(data, "float.pt2", sidecar=sidecar(input_kind="text"))


def test_vocabulary_larger_than_the_embedding_is_refused():
    module = BagOfEmbeddings(len(VOCAB))
    data = export_bytes(module, torch.zeros((2, L), dtype=torch.int64))
    with pytest.raises(XaiError, match=f"{len(VOCAB) + 1} tokens but the model's embedding 'embedding' has only {len(VOCAB)} rows"):
        load_model(data, "bag.pt2", sidecar=sidecar(vocab=VOCAB + ["extra"]))
    load_model(data, "bag.pt2", sidecar=sidecar(vocab=VOCAB))  # exactly the embedding's size is fine


def test_text_model_without_a_tokenizer_is_refused():
    data = export_bytes(BagOfEmbeddings(len(VOCAB)), torch.zeros((2, L), dtype=torch.int64))
    with pytest.raises(XaiError, match="no 'tokenizer'"):
        load_model(data, "bag.pt2", sidecar=json.dumps({"class_names": ["neg", "pos"]}))


def test_tokenizer_max_length_must_match_the_exported_length():
    data = export_bytes(BagOfEmbeddings(len(VOCAB)), torch.zeros((2, L), dtype=torch.int64))
    with pytest.raises(XaiError, match="max_length is 8"):
        load_model(data, "bag.pt2", sidecar=sidecar(length=8))


def test_tokenizer_whose_pad_is_not_in_the_vocabulary_is_refused():
    with pytest.raises(XaiError, match="pad_token"):
        TokenizerSpec.from_dict({"vocab": ["a", UNK], "max_length": 4, "pad_token": PAD, "unk_token": UNK})


# ---------------------------------------------------------------------------------------- text data


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_text_csv_with_labels_and_a_txt_file_are_read(linear):
    _, model = linear
    data = load_data([("docs.csv", _csv(pd.DataFrame({"text": ["good film", "bad plot ."], "y": [1, 0]})))],
                     model.info, target_column="y")
    assert list(data.labels) == [1, 0] and data.documents[1].words == ["bad", "plot", "."]
    named = load_data([("docs.csv", _csv(pd.DataFrame({"review": ["good film", "bad plot"], "label": ["pos", "neg"]})))],
                      model.info)
    assert list(named.labels) == [1, 0] and named.documents[0].words == ["good", "film"]
    lines = load_data([("docs.txt", b"good film\n\nbad plot\n")], model.info)
    assert lines.texts == ["good film", "bad plot"] and lines.labels is None and "empty line" in lines.notes[0]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"a": [1, 2], "b": [3, 4]}), "no text column"),
    (pd.DataFrame({"text": ["good", "  "], "label": ["pos", "neg"]}), "empty"),
    (pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "meh"]}), "neither classes of this model"),
])
def test_text_data_errors_say_what_is_wrong(linear, frame, message):
    _, model = linear
    with pytest.raises(XaiError, match=message):
        load_data([("docs.csv", _csv(frame))], model.info)


def test_long_documents_are_truncated_with_a_note(linear):
    _, model = linear
    data = load_data([("docs.txt", ("good " * 20).encode())], model.info)
    assert data.documents[0].n_words == L and any("truncated" in n for n in data.notes)
    result = explain_text(model, data, "occlusion")
    assert len(result.values[0]) == L and any("longer than" in n for n in result.notes)


# ---------------------------------------------------------------------------------------- known answers


DOCS = ["the film was very good and the acting good .", "bad plot , bad acting", "the plot"]


@pytest.mark.parametrize("method, settings", [
    ("integrated_gradients", IntegratedGradientsTextSettings(output="logit", n_steps=8)),
    ("gradient_x_input", GradientTextSettings(output="logit")),
    ("occlusion", OcclusionTextSettings(output="logit")),
    ("shapley", ShapleyTextSettings(output="logit")),
    ("lime", LimeTextSettings(output="logit", n_samples=400)),
])
def test_every_method_gives_w_dot_embedding_minus_unk_on_a_linear_model(linear, method, settings):
    module, model = linear
    for target in (0, 1):
        result = explain_text(model, DOCS, method, settings, targets=target)
        for i, doc in enumerate(result.documents):
            expected = hand_values(module, doc, target)
            np.testing.assert_allclose(result.values[i], expected, rtol=1e-4, atol=1e-4 if method != "lime" else 1e-3)


def test_integrated_gradients_reports_its_convergence_delta_and_completeness(linear):
    _, model = linear
    result = explain_text(model, DOCS, "integrated_gradients", IntegratedGradientsTextSettings(n_steps=64))
    assert result.convergence_deltas.shape == (3,)
    assert np.abs(result.convergence_deltas).max() < 1e-3
    # completeness: Σ values = f(x) − f(baseline) up to the delta
    np.testing.assert_allclose(result.base_values + [v.sum() for v in result.values], result.outputs,
                               atol=np.abs(result.convergence_deltas).max() + 1e-6)


@pytest.mark.parametrize("words", [5, 20])
def test_shapley_values_are_efficient_on_a_nonlinear_model(words):
    module = BagOfEmbeddings(len(VOCAB), squash=True, seed=3)
    model = load_model(export_bytes(module, torch.zeros((2, 24), dtype=torch.int64)), "squash.pt2",
                       sidecar=sidecar(length=24))
    rng = np.random.default_rng(0)
    text = " ".join(rng.choice(WORDS, words))
    result = explain_text(model, [text], "shapley", ShapleyTextSettings(n_permutations=64, target_relative_se=None))
    assert result.efficiency_gap < 1e-6
    if words > 14:
        assert result.standard_errors[0].max() > 0  # sampled
    else:
        assert result.standard_errors[0].max() == 0  # exact


def test_subword_tokens_add_up_to_their_word():
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {PAD: 0, UNK: 1, "play": 2, "##ing": 3, "good": 4, "the": 5, "##s": 6}
    hf = Tokenizer(models.WordPiece(vocab, unk_token=UNK))
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    spec = {"tokenizers_json": json.loads(hf.to_str()), "pad_token": PAD, "unk_token": UNK, "max_length": 8}
    module = BagOfEmbeddings(len(vocab), seed=5)
    model = load_model(export_bytes(module, torch.zeros((2, 8), dtype=torch.int64)), "wp.pt2",
                       sidecar=json.dumps({"class_names": ["neg", "pos"], "tokenizer": spec}))
    doc = tokenize("The playing goods", model.info.tokenizer)[0]
    assert doc.words == ["The", "playing", "goods"] and doc.ids[:5].tolist() == [5, 2, 3, 4, 6]
    result = explain_text(model, [doc], "integrated_gradients", IntegratedGradientsTextSettings(output="logit"),
                          targets=1)
    w = module.head.weight[1].detach().double().numpy()
    e = module.embedding.weight.detach().double().numpy()
    expected = [w @ (e[5] - e[1]), w @ (e[2] + e[3] - 2 * e[1]), w @ (e[4] + e[6] - 2 * e[1])]
    np.testing.assert_allclose(result.values[0], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------- planted words and metrics


@pytest.fixture(scope="module")
def planted():
    """A bag model where 'good' and 'bad' carry all the evidence (large weights), the rest a little noise."""
    module = BagOfEmbeddings(len(VOCAB), seed=1)
    with torch.no_grad():
        module.embedding.weight.mul_(0.05)
        module.embedding.weight[VOCAB.index("good")] = torch.tensor([3.0, 0, 0, 0])
        module.embedding.weight[VOCAB.index("bad")] = torch.tensor([-3.0, 0, 0, 0])
        module.head.weight.copy_(torch.tensor([[-1.0, 0.1, 0.2, -0.1], [1.0, -0.2, 0.1, 0.3]]))
    model = load_model(export_bytes(module, torch.zeros((2, L), dtype=torch.int64)), "planted.pt2", sidecar=sidecar())
    rng = np.random.default_rng(0)
    texts, evidence = [], []
    for i in range(12):
        words = list(rng.choice(["the", "film", "was", "plot", "and", "acting", "very"], 8))
        word = "good" if i % 2 else "bad"
        words.insert(int(rng.integers(0, 9)), word)
        texts.append(" ".join(words))
        evidence.append((word,))
    return model, texts, evidence


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_finds_the_planted_word(planted, method):
    model, texts, evidence = planted
    result = explain_text(model, texts, method)
    shares = evidence_share(result, evidence)
    assert shares.tolist() == [1.0] * len(texts)


def test_evidence_share_counts_positions_among_the_top_m():
    class Fake:
        pass

    spec = TokenizerSpec.from_dict({"vocab": VOCAB, "max_length": 8})
    docs = tokenize(["good film bad plot", "the film"], spec)
    from xai_core.attribution.text import TextAttribution

    result = TextAttribution("x", "x", None, ["a", "b"], docs, [np.array([0.9, 0.1, 0.2, 0.5]), np.array([1.0, 0])],
                             np.zeros(2, int), np.ones((2, 2)) / 2, np.zeros(2))
    shares = evidence_share(result, [("good", "bad"), ("plot",)])
    assert shares[0] == 0.5 and np.isnan(shares[1])  # top-2 = good, plot: one of good/bad; doc 2 has no evidence


def test_aopc_prefers_the_true_ranking_to_random_and_top_words_per_class(planted):
    model, texts, evidence = planted
    result = explain_text(model, texts, "occlusion")
    faith = aopc(model, result).summary()
    assert faith["comprehensiveness"] > faith["random_comprehensiveness"]
    assert faith["sufficiency"] < faith["random_sufficiency"]
    top = top_words_per_class(result, k=1, min_count=2)
    assert dict(zip(top["class"], top["word"])) == {"neg": "bad", "pos": "good"}
    agreement = rank_agreement(result, explain_text(model, texts, "integrated_gradients"))
    assert np.nanmean(agreement) > 0.8


def test_methods_refuse_non_text_models_and_unknown_names(linear):
    _, model = linear
    with pytest.raises(XaiError, match="Unknown text method"):
        explain_text(model, DOCS, "saliency")
    with pytest.raises(XaiError, match="class indices between 0 and 1"):
        explain_text(model, DOCS, "occlusion", targets=[0, 1, 2])


def test_gradient_methods_leave_no_hooks_on_the_model(linear):
    _, model = linear
    explain_text(model, DOCS, "integrated_gradients")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.module.modules())


def test_torchscript_text_model_runs_perturbation_methods_and_refuses_gradient_ones():
    module = BagOfEmbeddings(len(VOCAB)).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    model = load_model(buffer.getvalue(), "bag_scripted.pt", sidecar=sidecar(input_kind="text"))
    assert model.format == "torchscript" and model.info.input_shape == (L,)
    result = explain_text(model, DOCS[:1], "occlusion", OcclusionTextSettings(output="logit"), targets=1)
    np.testing.assert_allclose(result.values[0], hand_values(module, result.documents[0], 1), rtol=1e-4, atol=1e-4)
    with pytest.raises(XaiError, match="TorchScript hides"):
        explain_text(model, DOCS[:1], "integrated_gradients")
    with pytest.raises(XaiError, match="has only"):
        load_model(buffer.getvalue(), "bag_scripted.pt", sidecar=sidecar(vocab=VOCAB + ["x", "y"], input_kind="text"))


class _RefusesZeros(nn.Module):
    """Fails on an all-zero batch (what an image/tabular check would send); PAD here is id 1."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), 3)
        self.head = nn.Linear(3, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if bool((ids == 0).all()):
            raise ValueError("got zeros, not PAD ids")
        return self.head(self.embedding(ids).sum(dim=1))


def test_the_check_forward_pass_feeds_int64_pad_ids():
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_RefusesZeros().eval()), buffer)
    vocab = [UNK, PAD, *WORDS]  # PAD is id 1
    model = load_model(buffer.getvalue(), "pad.pt", sidecar=sidecar(vocab=vocab, input_kind="text"))
    assert model.info.tokenizer.pad_id == 1
    assert model.info.example_input(2).dtype == torch.int64 and model.info.example_input(2).eq(1).all()


def test_highlighted_text_escapes_every_character_and_greys_the_unseen_tail(linear):
    import html
    import re

    from xai_core.viz.text import word_highlight_html

    _, model = linear
    text = "<img src=x onerror=alert(1)> good & bad " + "film " * 12 + "<b>tail</b>"
    result = explain_text(model, [text], "occlusion")
    markup = word_highlight_html(result, 0)
    assert "<img" not in markup and "<b>" not in markup and "&lt;" in markup and "&gt;" in markup
    assert html.unescape(re.sub(r"<[^>]+>", "", markup)) == text  # only the page's own tags are markup
    assert "color:#9aa5b1" in markup  # the words past max_length are shown, greyed
    assert markup.count("<span title=") == L  # one coloured span per word the model sees

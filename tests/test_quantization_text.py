"""Quantization of text models: variants build on token ids, every number against a hand computation, word drift,
the layers torch.ao cannot quantize named, and the page in AppTest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest
from torch import nn

from tests.test_text import VOCAB, BagOfEmbeddings, export_bytes, sidecar
from xai_core.datasets import TextSet
from xai_core.errors import XaiError
from xai_core.loading import load_model
from xai_core.quantization import (BuildContext, VariantSpec, build_variant, compare_variants, lift, packed_size,
                                   word_drift_frame)
from xai_core.text.tokenizer import tokenize

ROOT = Path(__file__).resolve().parents[1]
L = 8
WORDS = VOCAB[2:]


def documents(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    # distinct words: a repeated word's values tie, and float32 vs float64 rounding would break the tie at random
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, L + 1), replace=False)) for _ in range(n)]


def text_set(model, texts: list[str], labels: np.ndarray | None = None) -> TextSet:
    docs = tokenize(texts, model.info.tokenizer)
    return TextSet(texts=list(texts), names=[f"doc {i + 1}" for i in range(len(texts))], labels=labels, documents=docs)


def loaded(module: nn.Module, name: str):
    return load_model(export_bytes(module, torch.zeros((2, L), dtype=torch.int64)), name, sidecar=sidecar(length=L))


def symmetric_int8(w: torch.Tensor) -> torch.Tensor:
    """What torch.ao's default dynamic weight observer does, by hand: per tensor, symmetric, scale = max|w| / 127.5."""
    w = w.detach().double()
    scale = w.abs().max() / 127.5
    return (torch.clamp(torch.round(w / scale), -128, 127) * scale).float()


def rounded_rows(w: torch.Tensor, bits: int) -> np.ndarray:
    """Weight fake quantization by hand (numpy): symmetric, one scale per row."""
    w = w.detach().double().numpy().reshape(len(w), -1)
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(axis=1, keepdims=True) / qmax
    scale[scale == 0] = 1
    return np.clip(np.round(w / scale), -qmax, qmax) * scale


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TinyBiLSTM(nn.Module):
    def __init__(self, vocab: int, dim: int = 6, hidden: int = 5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 2)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.head(out.amax(dim=1))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int, dim: int = 8):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, ids):
        return self.head(self.encoder(self.embedding(ids)).mean(dim=1))


@pytest.fixture(scope="module")
def bag():
    torch.manual_seed(0)
    module = BagOfEmbeddings(len(VOCAB), dim=4).eval()
    with torch.no_grad():
        module.embedding.weight.mul_(0.4)  # probabilities away from 0 and 1: word values well apart, no ties
    model = loaded(module, "bag.pt2")
    texts = documents(40)
    data = text_set(model, texts)
    ids = data.to_tensor()
    logits = module(ids).detach().numpy()
    labels = (logits[:, 1] > logits[:, 0]).astype(int)
    labels[::7] = 1 - labels[::7]  # some wrong answers, so accuracy is not 1
    data.labels = labels
    return module, model, data


@pytest.fixture(scope="module")
def bilstm():
    torch.manual_seed(1)
    module = TinyBiLSTM(len(VOCAB)).eval()
    model = loaded(module, "bilstm.pt2")
    return module, model, text_set(model, documents(24, seed=1))


@pytest.fixture(scope="module")
def transformer():
    torch.manual_seed(2)
    module = TinyTransformer(len(VOCAB)).eval()
    model = loaded(module, "transformer.pt2")
    return module, model, text_set(model, documents(24, seed=2))


# ---------------------------------------------------------------------------------------- building variants


def test_lifted_lstm_computes_exactly_what_the_model_computes(bilstm):
    module, model, data = bilstm
    ids = data.to_tensor()
    lifted = lift(model.module, ids[:2])
    assert not any(op.startswith("lstm") for op in lifted.float_ops)  # the LSTM became a module, not a float op
    assert any(type(m).__name__ == "LiftedLSTM" for m in lifted.module.modules())
    with torch.no_grad():
        assert torch.equal(lifted.module(ids), model.module(ids))
        assert torch.equal(lifted.module(ids[:1]), module(ids[:1]))  # any batch size


def test_int8_dynamic_quantizes_the_lstm_and_its_twin_holds_the_hand_rounded_weights(bilstm):
    import torch.ao.nn.quantized.dynamic as nnqd

    module, model, data = bilstm
    variant = build_variant(model, VariantSpec("int8-dynamic"), calibration=data.to_tensor())
    assert any(isinstance(m, nnqd.LSTM) for m in variant.model.module.modules())
    assert any(isinstance(m, nnqd.Linear) for m in variant.model.module.modules())
    twin = dict(variant.twin.module.named_parameters())
    for name, weight in module.named_parameters():
        if name.startswith("lstm.weight") or name == "head.weight":
            assert torch.allclose(twin[name], symmetric_int8(weight), atol=1e-7, rtol=0), name
            assert not torch.equal(twin[name], weight)
        else:  # biases, embeddings: float as they were
            assert torch.equal(twin[name], weight), name
    assert "Linear and LSTM layers run in int8" in " ".join(variant.notes)
    with torch.no_grad():  # the real int8 model answers close to its twin (activations are quantized per batch)
        ids = data.to_tensor()
        assert torch.allclose(variant.model.module(ids), variant.twin.module(ids), atol=0.05)


def test_transformer_layers_torch_ao_cannot_quantize_are_named_and_their_linears_run_in_int8(transformer):
    import torch.ao.nn.quantized.dynamic as nnqd

    module, model, data = transformer
    variant = build_variant(model, VariantSpec("int8-dynamic"), calibration=data.to_tensor())
    notes = " ".join(variant.notes)
    assert "TransformerEncoderLayer (encoder.layers.0, encoder.layers.1)" in notes
    assert "pytorch#109987" in notes and "MultiheadAttention" not in notes  # named once, by the outer layer
    assert "scaled_dot_product_attention" in notes  # what stays float is listed
    int8_linears = [m for m in variant.model.module.modules() if isinstance(m, nnqd.Linear)]
    assert len(int8_linears) == 2 * 4 + 1  # in_proj, out_proj, linear1, linear2 per layer, and the head
    twin = dict(variant.twin.module.named_parameters())
    weight = module.encoder.layers[0].self_attn.in_proj_weight
    assert torch.allclose(twin["encoder.layers.0.self_attn.in_proj_weight"], symmetric_int8(weight), atol=1e-7, rtol=0)
    with torch.no_grad():
        assert variant.model.module(data.to_tensor()).shape == (len(data), 2)


def test_static_int8_is_refused_for_text_with_the_reason(bag):
    _, model, data = bag
    with pytest.raises(XaiError, match="Static int8 is not offered for text models"):
        build_variant(model, VariantSpec("int8-static"), calibration=data.to_tensor())


def test_half_variants_take_token_ids_and_round_every_weight_matrix(bilstm):
    module, model, data = bilstm
    ids = data.to_tensor()
    context = BuildContext(model, ids)
    for kind, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        spec = VariantSpec(kind)
        variant = build_variant(model, spec, context=context)
        with torch.no_grad():
            out = spec.builder.timed_module(variant, context)(ids)  # the real half model timed: ids pass uncast
            emulated = variant.emulated.module(ids)
        assert out.dtype == torch.float32 and emulated.dtype == torch.float32
        step = float(torch.finfo(dtype).eps) * 4 * float(emulated.abs().max())
        assert torch.allclose(out, emulated, atol=step), kind
    w4 = build_variant(model, VariantSpec("weights", 4), calibration=ids)
    rounded = dict(w4.model.module.named_parameters())
    for name in ("embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0_reverse", "head.weight"):
        assert np.allclose(rounded[name].detach().numpy(), rounded_rows(dict(module.named_parameters())[name], 4),
                           atol=1e-6), name


# ---------------------------------------------------------------------------------------- the numbers


@pytest.fixture(scope="module")
def bag_comparison(bag):
    _, model, data = bag
    return compare_variants(model, data, [VariantSpec("weights", 4), VariantSpec("int8-dynamic")], batch_sizes=(1, 4),
                            n_drift=6, bits_curve=False)


def test_accuracy_agreement_kl_and_size_of_rounded_weights_match_a_hand_computation(bag, bag_comparison):
    module, _, data = bag
    ids = data.to_tensor().numpy()
    e = module.embedding.weight.detach().double().numpy()
    w = module.head.weight.detach().double().numpy()
    b = module.head.bias.detach().double().numpy()
    p32 = softmax(e[ids].sum(axis=1) @ w.T + b)
    e4, w4 = rounded_rows(module.embedding.weight, 4), rounded_rows(module.head.weight, 4)
    p4 = softmax(e4[ids].sum(axis=1) @ w4.T + b)
    row = {r.label: r for r in bag_comparison.results}["w4 per-channel"]
    assert row.score == pytest.approx(float(np.mean(p4.argmax(1) == data.labels)), abs=1e-12)
    assert bag_comparison.results[0].score == pytest.approx(float(np.mean(p32.argmax(1) == data.labels)), abs=1e-12)
    assert row.agreement == pytest.approx(float(np.mean(p4.argmax(1) == p32.argmax(1))), abs=1e-12)
    assert row.divergence == pytest.approx(float(np.mean(np.sum(p32 * np.log(p32 / p4), axis=1))), rel=1e-3, abs=1e-7)
    # packed: each matrix at 4 bits + one float32 scale per row; the bias in float32
    v, d = e.shape
    assert row.size_bytes == int(np.ceil(v * d * 4 / 8 + 4 * v + 2 * d * 4 / 8 + 4 * 2 + 2 * 4))
    assert row.size_bytes == packed_size(module, 4, True)
    assert set(row.latency_ms) == {1, 4} and all(ms > 0 for ms in row.latency_ms.values())


def test_leave_one_word_out_drift_of_real_int8_matches_a_hand_computation(bag, bag_comparison):
    module, model, data = bag
    row = {r.label: r for r in bag_comparison.results}["int8 dynamic"]
    ref = bag_comparison.drift_reference
    int8 = build_variant(model, VariantSpec("int8-dynamic"), calibration=data.to_tensor()).model.module
    unk = model.info.tokenizer.unk_id
    e = module.embedding.weight.detach().double().numpy()
    w, b = module.head.weight.detach().double().numpy(), module.head.bias.detach().double().numpy()
    rho, overlap = [], []
    for i, doc in enumerate(ref.documents):
        t = int(ref.targets[i])
        ablated = np.repeat(doc.ids[None], doc.n_words + 1, axis=0)
        for j in range(doc.n_words):
            ablated[j + 1, j] = unk  # one token per word here
        p32 = softmax(e[ablated].sum(axis=1) @ w.T + b)[:, t]
        with torch.no_grad():  # int8 dynamic scales activations per batch: the document alone, then its ablations
            # (Captum's feature ablation also "ablates" the PAD group, a copy of the document, in the same batch)
            batch = ablated[1:] if doc.n_words == L else np.concatenate([ablated[1:], ablated[:1]])
            p8 = np.concatenate([torch.softmax(int8(torch.from_numpy(part)), dim=1)[:, t].double().numpy()
                                 for part in (ablated[:1], batch)])[: doc.n_words + 1]
        a, c = p32[0] - p32[1:], p8[0] - p8[1:]
        rho.append(spearmanr(a, c).statistic if np.ptp(a) and np.ptp(c) else 1.0)
        k = min(3, len(a))
        overlap.append(len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-c, kind="stable")[:k])) / k)
    assert row.drift["Leave-one-word-out rank correlation"] == pytest.approx(np.mean(rho), abs=1e-9)
    assert row.drift["Leave-one-word-out top-3 word overlap"] == pytest.approx(np.mean(overlap), abs=1e-9)
    assert "leave-one-word-out on the real int8 model" in row.drift_method
    assert "fake-quant twin" in row.drift_method


def _integrated_gradients(e: np.ndarray, w: np.ndarray, b: np.ndarray, ids: np.ndarray, baseline: np.ndarray,
                          target: int, steps: int = 2000) -> np.ndarray:
    """IG of P(target) over each token's embedding, from the baseline's embeddings, by a midpoint sum (by hand)."""
    x, x0 = torch.tensor(e[ids]), torch.tensor(e[baseline])
    total = torch.zeros_like(x)
    for s in (np.arange(steps) + 0.5) / steps:
        point = (x0 + s * (x - x0)).requires_grad_(True)
        p = torch.softmax(point.sum(dim=0) @ torch.tensor(w).T + torch.tensor(b), dim=0)[target]
        total += torch.autograd.grad(p, point)[0]
    return ((x - x0) * total / steps).sum(dim=1).numpy()


def test_integrated_gradients_drift_of_rounded_weights_matches_a_hand_computation(bag, bag_comparison):
    module, model, _ = bag
    ref = bag_comparison.drift_reference
    row = {r.label: r for r in bag_comparison.results}["w4 per-channel"]
    unk = model.info.tokenizer.unk_id
    e32, w32 = module.embedding.weight.detach().double().numpy(), module.head.weight.detach().double().numpy()
    e4, w4 = rounded_rows(module.embedding.weight, 4), rounded_rows(module.head.weight, 4)
    b = module.head.bias.detach().double().numpy()
    rho, overlap = [], []
    for i, doc in enumerate(ref.documents):
        t, n = int(ref.targets[i]), doc.n_words
        baseline = np.where(doc.token_words >= 0, unk, doc.ids)
        a = _integrated_gradients(e32, w32, b, doc.ids, baseline, t)[:n]
        c = _integrated_gradients(e4, w4, b, doc.ids, baseline, t)[:n]
        assert np.allclose(ref.values[i], a, atol=2e-4), i
        assert np.allclose(bag_comparison.drift_variants["w4 per-channel"][i], c, atol=2e-4), i
        rho.append(spearmanr(a, c).statistic)
        overlap.append(len(set(np.argsort(-a)[:3]) & set(np.argsort(-c)[:3])) / 3)
    assert row.drift["IG rank correlation"] == pytest.approx(np.mean(rho), abs=1e-9)
    assert row.drift["IG top-3 word overlap"] == pytest.approx(np.mean(overlap), abs=1e-9)
    frame = word_drift_frame(ref, {"w4 per-channel": bag_comparison.drift_variants["w4 per-channel"]}, 0)
    assert list(frame.columns) == ["position", "word", "fp32", "w4 per-channel"]
    assert frame["fp32"].is_monotonic_decreasing and len(frame) == ref.documents[0].n_words


def test_comparison_of_a_transformer_reports_what_it_could_not_build(transformer):
    _, model, data = transformer
    c = compare_variants(model, data, [VariantSpec("int8-dynamic"), VariantSpec("int8-static")], batch_sizes=(1, 4),
                         n_drift=3, bits_curve=False)
    assert [r.label for r in c.results] == ["fp32", "int8 dynamic"]
    assert "Static int8 is not offered for text models" in c.errors["int8 static"]
    assert c.results[1].agreement >= 0.9 and "IG rank correlation" in c.results[1].drift


# ---------------------------------------------------------------------------------------- the page

PAGE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from ui import state
from views.quantization_text import show
show(state.current_selection())
"""


def run_text_page(demo_key: str) -> AppTest:
    at = AppTest.from_string(PAGE, default_timeout=600)
    at.session_state["demo_key"] = demo_key
    return at.run()


@pytest.mark.parametrize("key", ["text_bilstm", "text_transformer"])
def test_page_compares_a_text_demo_and_shows_word_drift(key):
    at = run_text_page(key)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    frame = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    variants = list(frame["variant"])
    assert variants[0] == "fp32" and "int8 dynamic" in variants and "w4 per-channel" in variants
    assert frame.loc[frame["variant"] == "int8 dynamic", "agreement with fp32"].item() >= 0.95
    assert "IG rank correlation" in frame.columns and "Leave-one-word-out rank correlation" in frame.columns
    infos = " ".join(i.value for i in at.info)
    warnings = " ".join(w.value for w in at.warning)
    if key == "text_transformer":
        assert "TransformerEncoderLayer (encoder.layers.0, encoder.layers.1)" in infos
    else:
        assert "TransformerEncoderLayer" not in infos + warnings
    assert len(at.get("plotly_chart")) >= 3  # trade-offs, bits curve, drift summary
    html = " ".join(m.value for m in at.markdown)
    assert "<span title=" in html  # the drift document's words coloured
    words = next(df.value for df in at.dataframe if "word" in df.value.columns)
    assert list(words.columns[:3]) == ["position", "word", "fp32"]


def test_torchscript_text_model_gets_leave_one_word_out_drift_and_int8_says_why_not(bag):
    import io

    module, _, data = bag
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    model = load_model(buffer.getvalue(), "bag_scripted.pt", sidecar=sidecar(length=L))
    assert model.format == "torchscript"
    c = compare_variants(model, text_set(model, data.texts), [VariantSpec("weights", 4), VariantSpec("int8-dynamic")],
                         batch_sizes=(1, 4), n_drift=4, bits_curve=False)
    assert "TorchScript" in c.errors["int8 dynamic"]
    assert c.drift_reference.method == "occlusion" and "TorchScript hides the embedding" in c.drift_reference.note
    w4 = c.results[1]
    assert set(w4.drift) == {"Leave-one-word-out rank correlation", "Leave-one-word-out top-3 word overlap"}
    # fp32's leave-one-word-out by hand: P(class) drop when the word alone becomes UNK
    e = module.embedding.weight.detach().double().numpy()
    w, b = module.head.weight.detach().double().numpy(), module.head.bias.detach().double().numpy()
    doc, t = c.drift_reference.documents[0], int(c.drift_reference.targets[0])
    ablated = np.repeat(doc.ids[None], doc.n_words + 1, axis=0)
    for j in range(doc.n_words):
        ablated[j + 1, j] = model.info.tokenizer.unk_id
    p = softmax(e[ablated].sum(axis=1) @ w.T + b)[:, t]
    assert np.allclose(c.drift_reference.values[0], p[0] - p[1:], atol=1e-6)


def test_page_reruns_with_pruning_and_another_variant():
    at = run_text_page("text_bilstm")
    at.multiselect(key="qt_variants").set_value(["w8 per-tensor"])
    at.slider(key="qt_sparsity").set_value(50).run()
    assert not at.exception, at.exception
    frame = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert list(frame["variant"]) == ["fp32", "fp32 + 50% pruned", "w8 per-tensor + 50% pruned"]
    assert "int8 static" not in at.multiselect(key="qt_variants").options

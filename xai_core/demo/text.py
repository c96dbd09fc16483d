"""The text demos: a synthetic corpus with planted sentiment words (the ground truth of every explanation), and
a BiLSTM and a Transformer encoder trained on it by `python -m xai_core.demo.train --only text_bilstm`.

Each document is neutral filler (clauses of neutral words, none of them in VADER's lexicon) with 1–3 evidence
words planted at random positions, all of one polarity, drawn from VADER's sentiment lexicon (vaderSentiment,
MIT licence; a training-time dependency only): strongly positive words (valence ≥ 2) for "positive", strongly
negative ones (valence ≤ −2) for "negative". The label is decided by the planted words alone, so a faithful
explanation puts them on top.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from xai_core.demo.text_architectures import BiLSTMClassifier, TransformerClassifier
from xai_core.demo.train import DemoResult, _check_threshold, _write_bytes, export_model, seed_everything, write_sidecar
from xai_core.model import ModelInfo
from xai_core.text.tokenizer import TokenizerSpec, tokenize

log = logging.getLogger(__name__)

CLASS_NAMES = ("negative", "positive")
MAX_LENGTH = 32
PAD, UNK = "[PAD]", "[UNK]"
N_EVIDENCE_WORDS = 60  # per polarity: each appears ~50 times in training, so every one is learnt
DATA_FILE = "text_planted_test.csv"

_NOUNS = ("report", "meeting", "table", "window", "train", "station", "garden", "letter", "office", "street", "river",
          "road", "morning", "evening", "kitchen", "door", "chair", "book", "paper", "phone", "car", "bus", "bridge",
          "market", "shop", "engineer", "teacher", "student", "driver", "neighbour", "company", "schedule", "ticket",
          "box", "bottle", "coat", "shirt", "window", "lamp", "floor", "wall", "village", "city", "map", "plan")
_VERBS = ("opened", "closed", "moved", "carried", "checked", "painted", "described", "measured", "counted", "visited",
          "passed", "followed", "reached", "crossed", "printed", "packed", "sorted", "noted", "listed", "turned")
_ADJECTIVES = ("blue", "green", "grey", "tall", "short", "wooden", "metal", "square", "round", "local", "second",
               "third", "northern", "southern", "weekly", "yellow", "narrow", "wide", "plain", "usual")
_PREPOSITIONS = ("near", "behind", "beside", "after", "before", "under", "over", "across", "around", "along")
_ADVERBS = ("today", "yesterday", "again", "slowly", "quickly", "later", "early", "twice", "often", "recently")


def vader_lexicon() -> dict[str, float]:
    """VADER's word → mean valence (−4…4), read from the file vaderSentiment ships (no network)."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The text demos are trained on VADER's lexicon: pip install vaderSentiment "
                           "(in requirements-dev.txt).")
    path = Path(list(spec.submodule_search_locations)[0]) / "vader_lexicon.txt"
    lexicon = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and re.fullmatch(r"[a-z]{3,}", parts[0]):
            lexicon[parts[0]] = float(parts[1])
    return lexicon


# Profanity and slurs are in VADER's lexicon too; a demo shown to anyone leaves them out.
_BLOCKED_PREFIXES = ("dick", "fuck", "shit", "bitch", "bastard", "cunt", "whore", "slut", "ass", "damn", "piss", "cock",
                     "puss", "fag", "nig", "retard", "rap", "douche", "twat", "wank", "prick", "crap", "hell", "jackass",
                     "dumb", "moth", "bull", "suck", "kill", "suicid", "murder", "molest", "pedo", "porn", "nazi", "sex",
                     "horny", "stupid", "idiot", "moron", "butt", "tit", "boob", "arse", "screw", "bloody", "goddam")


def evidence_words(seed: int = 0) -> dict[str, list[str]]:
    """The planted words of each class: N_EVIDENCE_WORDS strong words per polarity, sampled with the seed."""
    lexicon = {w: v for w, v in vader_lexicon().items() if not w.startswith(_BLOCKED_PREFIXES)
               and not any(b in w for b in ("fuck", "shit", "bitch", "cunt", "whore", "asshole", "nigg"))}
    rng = np.random.default_rng(seed)
    positive = sorted(w for w, v in lexicon.items() if v >= 2.0)
    negative = sorted(w for w, v in lexicon.items() if v <= -2.0)
    return {"positive": sorted(rng.choice(positive, N_EVIDENCE_WORDS, replace=False).tolist()),
            "negative": sorted(rng.choice(negative, N_EVIDENCE_WORDS, replace=False).tolist())}


def neutral_words() -> list[str]:
    lexicon = vader_lexicon()
    words = {*_NOUNS, *_VERBS, *_ADJECTIVES, *_PREPOSITIONS, *_ADVERBS, "the", "a", "and", "then"}
    return sorted(w for w in words if w not in lexicon)


def planted_corpus(n: int, seed: int, max_words: int = MAX_LENGTH - 4) -> pd.DataFrame:
    """n documents: columns text, label (class name) and evidence (the planted words, space-separated)."""
    rng = np.random.default_rng(seed)
    lexicon = vader_lexicon()
    evidence = evidence_words()

    def pick(words):
        words = [w for w in words if w not in lexicon]
        return words[rng.integers(len(words))]

    rows = []
    for _ in range(n):
        words: list[str] = []
        for _clause in range(rng.integers(1, 3)):
            clause = ["the"]
            if rng.random() < 0.5:
                clause.append(pick(_ADJECTIVES))
            clause += [pick(_NOUNS), pick(_VERBS), "the", pick(_NOUNS)]
            if rng.random() < 0.5:
                clause += [pick(_PREPOSITIONS), "the", pick(_NOUNS)]
            if rng.random() < 0.4:
                clause.append(pick(_ADVERBS))
            words += clause + ["and"]
        words = words[:-1][: max_words - 4]
        label = CLASS_NAMES[int(rng.integers(2))]
        planted = [str(w) for w in rng.choice(evidence[label], int(rng.integers(1, 4)), replace=False)]
        for word in planted:
            words.insert(int(rng.integers(0, len(words) + 1)), word)
        text = " ".join(words) + " ."
        rows.append({"text": text[0].upper() + text[1:], "label": label, "evidence": " ".join(planted)})
    return pd.DataFrame(rows)


def demo_tokenizer() -> TokenizerSpec:
    words = neutral_words() + [w for ws in evidence_words().values() for w in ws] + ["."]
    return TokenizerSpec(max_length=MAX_LENGTH, pad_token=PAD, unk_token=UNK, lowercase=True,
                         vocab=(PAD, UNK, *sorted(set(words))))


def _ids(frame: pd.DataFrame, spec: TokenizerSpec) -> torch.Tensor:
    return torch.from_numpy(np.stack([d.ids for d in tokenize(list(frame["text"]), spec)]))


WORD_DROPOUT = 0.15  # training words replaced by UNK: "absent" (UNK) is then a state the model has seen


def train_text(out: Path, arch: str, n_train: int = 3000, n_test: int = 300, epochs: int | None = None) -> DemoResult:
    """Train the BiLSTM (arch="bilstm") or Transformer (arch="transformer") on the planted corpus; write its assets."""
    started = time.perf_counter()
    seed_everything(0)
    spec = demo_tokenizer()
    train = planted_corpus(n_train, seed=1)
    test = planted_corpus(n_test, seed=2)
    x_train, x_test = _ids(train, spec), _ids(test, spec)
    y_train = torch.tensor([CLASS_NAMES.index(c) for c in train["label"]])
    y_test = np.array([CLASS_NAMES.index(c) for c in test["label"]])
    vocab_size = len(spec.vocab)
    if arch == "bilstm":
        model: nn.Module = BiLSTMClassifier(vocab_size, len(CLASS_NAMES), spec.pad_id, embed_dim=32, hidden=32)
        description, lr = "Bidirectional LSTM (32 units each way), max-pooled over the document's tokens", 3e-3
    else:
        model = TransformerClassifier(vocab_size, len(CLASS_NAMES), spec.pad_id, MAX_LENGTH, embed_dim=32, heads=2)
        description, lr = "2-layer Transformer encoder (32 wide, 2 heads), mean-pooled over tokens", 2e-3
    epochs = epochs or (5 if arch == "bilstm" else 6)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            ids = x_train[batch]
            drop = (torch.rand(ids.shape, generator=generator) < WORD_DROPOUT) & (ids != spec.pad_id)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(ids.masked_fill(drop, spec.unk_id)), y_train[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(1).numpy() == y_test).mean())
        log.info("text_%s: epoch %d, held-out accuracy %.4f", arch, epoch + 1, accuracy)
    name = f"text_{arch}"
    _check_threshold(name, "accuracy", accuracy, 0.95)
    info = ModelInfo(
        name=name, task="classification", input_kind="text", input_shape=(MAX_LENGTH,), class_names=CLASS_NAMES,
        target_name="label", architecture=description, tokenizer=spec,
        description=(f"Neutral sentences with 1–3 planted VADER sentiment words deciding the class; {accuracy:.1%} "
                     f"accuracy on {n_test} held-out documents."),
    )
    files = [
        export_model(model, x_test, out / f"{name}.pt2", ["embedding"]),
        write_sidecar(out / f"{name}.json", info),
        _write_bytes(out / DATA_FILE, test.to_csv(index=False).encode()),
    ]
    return DemoResult(name, "accuracy", accuracy, 0.95, time.perf_counter() - started, files)

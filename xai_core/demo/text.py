"""The text demos: a synthetic corpus with planted sentiment words (the ground truth of every explanation), and
a BiLSTM and a Transformer encoder trained on it by `python -m xai_core.demo.train --only text_bilstm`.

Each document is neutral filler (clauses of neutral words, none of them in VADER's lexicon) with 1–3 evidence
words planted at random positions, all of one polarity, drawn from VADER's sentiment lexicon (vaderSentiment,
MIT licence; a training-time dependency only): strongly positive words (valence ≥ 2) for "positive", strongly
negative ones (valence ≤ −2) for "negative". The label is decided by the planted words alone, so a faithful
explanation puts them on top.

The real corpus: Debian's fortune cookies (the `fortunes` package, BSD licence; `apt-get install fortunes`, a
training-time dependency only), one class per topic file (computers, politics, science). A quotation's attribution
line ("-- Mark Twain") is cut off, so the models read what was said, not who said it. Nothing is planted: there is no
ground truth for explanations, only faithfulness (AOPC) and the words that the training documents of a class use far
more often than the others'.
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

from xai_core.demo import DEMOS
from xai_core.demo.text_architectures import BiLSTMClassifier, TransformerClassifier
from xai_core.demo.train import DemoResult, _check_threshold, _write_bytes, export_model, seed_everything, write_sidecar
from xai_core.model import ModelInfo
from xai_core.text.tokenizer import WORD_PATTERN, TokenizerSpec, tokenize

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


def _text_model(arch: str, vocab_size: int, n_classes: int, pad_id: int, max_length: int) -> tuple[nn.Module, str, float]:
    """The demo network of `arch` ("bilstm" or "transformer"), its description and learning rate."""
    if arch == "bilstm":
        model: nn.Module = BiLSTMClassifier(vocab_size, n_classes, pad_id, embed_dim=32, hidden=32)
        return model, "Bidirectional LSTM (32 units each way), max-pooled over the document's tokens", 3e-3
    model = TransformerClassifier(vocab_size, n_classes, pad_id, max_length, embed_dim=32, heads=2)
    return model, "2-layer Transformer encoder (32 wide, 2 heads), mean-pooled over tokens", 2e-3


def _fit_text(model: nn.Module, name: str, spec: TokenizerSpec, x_train: torch.Tensor, y_train: torch.Tensor,
              x_test: torch.Tensor, y_test: np.ndarray, epochs: int, lr: float, weight_decay: float = 0.0) -> float:
    """Mini-batch Adam (batch 64) with word dropout; returns the held-out accuracy after the last epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(0)
    accuracy = 0.0
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
        log.info("%s: epoch %d, held-out accuracy %.4f", name, epoch + 1, accuracy)
    return accuracy


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
    name = f"text_{arch}"
    model, description, lr = _text_model(arch, len(spec.vocab), len(CLASS_NAMES), spec.pad_id, MAX_LENGTH)
    epochs = epochs or (5 if arch == "bilstm" else 6)
    accuracy = _fit_text(model, name, spec, x_train, y_train, x_test, y_test, epochs, lr)
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


# --------------------------------------------------------------------------- the real corpus: fortunes by topic

FORTUNES_DIR = Path("/usr/share/games/fortunes")  # where Debian's `fortunes` package installs its files
FORTUNE_TOPICS = ("computers", "politics", "science")
FORTUNES_MAX_LENGTH = 64  # tokens: 9 in 10 quotations fit (longer ones are truncated, with the page's note)
FORTUNES_TEST_FILE = "text_fortunes_test.csv"
FORTUNES_TRAIN_FILE = "text_fortunes_train.csv"  # shipped for the tests' independent word counts, not the page
FORTUNES_TEST_FRACTION = 0.25
_ATTRIBUTION = re.compile(r"\n[ \t]*--[ \t]")  # the "-- Author, Work" line that closes many quotations
_OVERSTRIKE = re.compile(".\x08")  # terminal bold/underline ("_\bx"): keep the character printed last
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def read_fortune_file(path: Path) -> list[str]:
    """The quotations of one fortune file (separated by lines holding only '%'), attribution cut, whitespace joined."""
    quotes = []
    for chunk in path.read_text(encoding="utf-8").split("\n%\n"):
        chunk = _CONTROL.sub("", _OVERSTRIKE.sub("", "\n" + chunk.strip("\n")))
        match = _ATTRIBUTION.search(chunk)
        text = " ".join((chunk[: match.start()] if match else chunk).split())
        if text and text != "%":
            quotes.append(text)
    return quotes


def fortunes_corpus(directory: Path = FORTUNES_DIR) -> pd.DataFrame:
    """The quotations of FORTUNE_TOPICS: columns text, label (the topic file). Quotations filed under more than one
    topic, and repeats within one, are dropped."""
    missing = [t for t in FORTUNE_TOPICS if not (directory / t).is_file()]
    if missing:
        raise RuntimeError(f"The fortunes demos are trained on Debian's fortune files, and {directory} lacks "
                           f"{missing}: apt-get install fortunes.")
    frame = pd.DataFrame([{"text": q, "label": t} for t in FORTUNE_TOPICS for q in read_fortune_file(directory / t)])
    topics_per_text = frame.groupby("text")["label"].nunique()
    frame = frame[frame["text"].map(topics_per_text) == 1].drop_duplicates("text")
    return frame.reset_index(drop=True)


def fortunes_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and held-out quotations: a stratified, seeded 75/25 split."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(frame, test_size=FORTUNES_TEST_FRACTION, stratify=frame["label"], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def vocabulary_tokenizer(texts: list[str], max_length: int, min_count: int = 2) -> TokenizerSpec:
    """One token per lowercased word seen at least `min_count` times in `texts` (the rest become UNK)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in WORD_PATTERN.findall(text.lower()):
            counts[word] = counts.get(word, 0) + 1
    kept = sorted(w for w, c in counts.items() if c >= min_count)
    return TokenizerSpec(max_length=max_length, pad_token=PAD, unk_token=UNK, lowercase=True, vocab=(PAD, UNK, *kept))


def train_fortunes(out: Path, arch: str, epochs: int | None = None) -> DemoResult:
    """Train the BiLSTM or the Transformer to tell the topic of a fortune quotation; write its assets."""
    started = time.perf_counter()
    seed_everything(0)
    train, test = fortunes_split(fortunes_corpus())
    spec = vocabulary_tokenizer(list(train["text"]), FORTUNES_MAX_LENGTH)
    x_train, x_test = _ids(train, spec), _ids(test, spec)
    y_train = torch.tensor([FORTUNE_TOPICS.index(c) for c in train["label"]])
    y_test = np.array([FORTUNE_TOPICS.index(c) for c in test["label"]])
    chance = float(np.bincount(y_test).max() / len(y_test))
    name = f"text_fortunes_{arch}"
    # Declared with the demo, where the tests read it too (one not registered yet is held to the BiLSTM's).
    threshold = DEMOS.get(name, DEMOS["text_fortunes_bilstm"]).min_score
    model, description, lr = _text_model(arch, len(spec.vocab), len(FORTUNE_TOPICS), spec.pad_id,
                                         FORTUNES_MAX_LENGTH)
    epochs = epochs or 20  # where accuracy on a validation fifth of the training quotations levelled off
    accuracy = _fit_text(model, name, spec, x_train, y_train, x_test, y_test, epochs, lr, weight_decay=1e-5)
    log.info("%s: held-out accuracy %.4f (majority class %.4f) on %d quotations", name, accuracy, chance, len(test))
    _check_threshold(name, "accuracy", accuracy, threshold)
    info = ModelInfo(
        name=name, task="classification", input_kind="text", input_shape=(FORTUNES_MAX_LENGTH,),
        class_names=FORTUNE_TOPICS, target_name="label", architecture=description, tokenizer=spec,
        description=(f"Tells the topic of a quotation from Debian's fortune cookies (the files computers, politics "
                     f"and science, attribution lines cut; {len(train)} training quotations); {accuracy:.1%} accuracy "
                     f"on {len(test)} held-out quotations, where always answering the largest topic scores "
                     f"{chance:.1%} (chance)."),
    )
    files = [
        export_model(model, x_test, out / f"{name}.pt2", ["embedding"]),
        write_sidecar(out / f"{name}.json", info),
        _write_bytes(out / FORTUNES_TEST_FILE, test.to_csv(index=False).encode()),
        _write_bytes(out / FORTUNES_TRAIN_FILE, train.to_csv(index=False).encode()),
    ]
    return DemoResult(name, "accuracy", accuracy, threshold, time.perf_counter() - started, files)

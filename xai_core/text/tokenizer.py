"""The tokenizer of a text model, from its JSON sidecar: a vocabulary list, or a `tokenizers` JSON.

Every document becomes token ids (int64, padded with PAD to `max_length`) plus the map from tokens to words, so
explanations computed per token are summed per word (sub-word tokens aggregate to their word) and shown on the
original text (each word's character span).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xai_core.errors import XaiError

# Words and single punctuation marks: "don't stop." → ["don't", "stop", "."]
WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
TOKENIZER_HOWTO = (
    'Give it in the sidecar, e.g. "tokenizer": {"vocab": ["[PAD]", "[UNK]", "the", ...], "pad_token": "[PAD]", '
    '"unk_token": "[UNK]", "max_length": 64, "lowercase": true}, or "tokenizer": {"tokenizers_json": <the JSON '
    'saved by the tokenizers package>, "pad_token": ..., "unk_token": ..., "max_length": ...}.'
)


@dataclass(frozen=True)
class TokenizerSpec:
    """How a text model's input ids are made. Exactly one of `vocab` (one token per word, id = position in the list)
    or `tokenizers_json` (a `tokenizers` package tokenizer, serialised) is set."""

    max_length: int
    pad_token: str = "[PAD]"
    unk_token: str = "[UNK]"
    lowercase: bool = True
    vocab: tuple[str, ...] = ()
    tokenizers_json: str | None = None

    @property
    def kind(self) -> str:
        return "tokenizers" if self.tokenizers_json else "vocab"

    @property
    def vocab_size(self) -> int:
        if self.tokenizers_json:
            return _hf_tokenizer(self.tokenizers_json).get_vocab_size(with_added_tokens=True)
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.token_id(self.pad_token)

    @property
    def unk_id(self) -> int:
        return self.token_id(self.unk_token)

    def token_id(self, token: str) -> int:
        if self.tokenizers_json:
            found = _hf_tokenizer(self.tokenizers_json).token_to_id(token)
            return -1 if found is None else int(found)
        return _vocab_index(self.vocab).get(token, -1)

    @classmethod
    def from_dict(cls, data) -> "TokenizerSpec":
        """Build from the sidecar's "tokenizer" object, checking each field and naming the wrong one."""
        if isinstance(data, TokenizerSpec):
            return data
        if not isinstance(data, dict):
            raise XaiError("The sidecar's 'tokenizer' must be a JSON object. " + TOKENIZER_HOWTO)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise XaiError(f"Unknown tokenizer field(s) {unknown}; allowed: {sorted(known)}.")
        values = dict(data)
        if "max_length" not in values:
            raise XaiError("The tokenizer needs 'max_length': the number of token ids the model takes per document.")
        try:
            values["max_length"] = int(values["max_length"])
        except (TypeError, ValueError):
            raise XaiError(f"Tokenizer 'max_length' must be a whole number, not {values['max_length']!r}.") from None
        if values["max_length"] < 1:
            raise XaiError(f"Tokenizer 'max_length' must be at least 1, not {values['max_length']}.")
        values["lowercase"] = bool(values.get("lowercase", True))
        for key in ("pad_token", "unk_token"):
            if key in values and not isinstance(values[key], str):
                raise XaiError(f"Tokenizer '{key}' must be a string (the token itself, e.g. \"[PAD]\").")
        raw_json = values.get("tokenizers_json")
        vocab = values.get("vocab")
        if (raw_json is None) == (vocab is None or len(vocab) == 0):
            raise XaiError("The tokenizer needs exactly one of 'vocab' (a list of tokens) or 'tokenizers_json'. "
                           + TOKENIZER_HOWTO)
        if raw_json is not None:
            values["tokenizers_json"] = raw_json if isinstance(raw_json, str) else json.dumps(raw_json, sort_keys=True)
            values.pop("vocab", None)
            _hf_tokenizer(values["tokenizers_json"])  # parse now, so a broken one is refused at load time
        else:
            if not isinstance(vocab, (list, tuple)) or not all(isinstance(t, str) for t in vocab):
                raise XaiError("Tokenizer 'vocab' must be a list of token strings, the token with id i at position i.")
            duplicates = sorted({t for t in vocab if vocab.count(t) > 1}) if len(set(vocab)) != len(vocab) else []
            if duplicates:
                raise XaiError(f"Tokenizer 'vocab' lists {duplicates[:5]} more than once; each token needs one id.")
            values["vocab"] = tuple(vocab)
        spec = cls(**values)
        for key in ("pad_token", "unk_token"):
            if spec.token_id(getattr(spec, key)) < 0:
                raise XaiError(f"The tokenizer's {key} {getattr(spec, key)!r} is not in its vocabulary; add it, or "
                               f"set '{key}' to the token the model was trained with.")
        if spec.pad_id == spec.unk_id:
            raise XaiError("The tokenizer's pad_token and unk_token are the same token; they must differ.")
        return spec


@dataclass
class TokenizedText:
    """One document as the model takes it, and how its tokens map back to words of the original text."""

    text: str
    ids: np.ndarray  # (max_length,) int64, PAD after the last token
    token_words: np.ndarray  # (max_length,) int64: word index of each token, -1 for PAD and special tokens
    words: list[str]  # the words kept (after truncation), as written in the text
    spans: list[tuple[int, int]]  # character span of each kept word in `text`
    n_words_total: int  # words in the whole document, before truncation

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def truncated(self) -> bool:
        return self.n_words < self.n_words_total

    def word_mask(self) -> np.ndarray:
        """(n_words, max_length) bool: which token positions belong to each word."""
        return self.token_words[None, :] == np.arange(self.n_words)[:, None]

    def ids_with_words_absent(self, present: np.ndarray, unk_id: int) -> np.ndarray:
        """(m, max_length) ids for m word-presence masks (m, n_words): absent words' tokens become UNK."""
        present = np.asarray(present, dtype=bool).reshape(-1, self.n_words)
        keep = np.ones((len(present), len(self.ids)), dtype=bool)
        words = self.token_words >= 0
        keep[:, words] = present[:, self.token_words[words]]
        return np.where(keep, self.ids[None, :], unk_id).astype(np.int64)


def tokenize(texts, spec: TokenizerSpec) -> list[TokenizedText]:
    """Documents → `TokenizedText`s, truncated to the tokenizer's `max_length` (whole words only)."""
    if isinstance(texts, str):
        texts = [texts]
    if spec.tokenizers_json:
        return [_tokenize_hf(str(t), spec) for t in texts]
    return [_tokenize_vocab(str(t), spec) for t in texts]


def ids_tensor(documents: list[TokenizedText]):
    """The int64 tensor (n, max_length) of these documents."""
    import torch

    return torch.from_numpy(np.stack([d.ids for d in documents]).astype(np.int64))


def _tokenize_vocab(text: str, spec: TokenizerSpec) -> TokenizedText:
    index = _vocab_index(spec.vocab)
    unk, length = spec.unk_id, spec.max_length
    matches = list(WORD_PATTERN.finditer(text))
    kept = matches[:length]
    ids = np.full(length, spec.pad_id, dtype=np.int64)
    token_words = np.full(length, -1, dtype=np.int64)
    for i, m in enumerate(kept):
        word = m.group(0).lower() if spec.lowercase else m.group(0)
        ids[i] = index.get(word, unk)
        token_words[i] = i
    return TokenizedText(text, ids, token_words, [m.group(0) for m in kept], [m.span() for m in kept], len(matches))


def _tokenize_hf(text: str, spec: TokenizerSpec) -> TokenizedText:
    tokenizer = _hf_tokenizer(spec.tokenizers_json)
    encoding = tokenizer.encode(text.lower() if spec.lowercase else text)
    word_ids = encoding.word_ids
    offsets = encoding.offsets
    # Words in order of appearance; a word is kept only when all its tokens fit.
    first_token: dict[int, int] = {}
    last_token: dict[int, int] = {}
    for t, w in enumerate(word_ids):
        if w is not None:
            first_token.setdefault(w, t)
            last_token[w] = t
    order = sorted(first_token, key=first_token.get)
    length = spec.max_length
    ids = np.full(length, spec.pad_id, dtype=np.int64)
    token_words = np.full(length, -1, dtype=np.int64)
    kept_words = [w for w in order if last_token[w] < length]
    position = {w: i for i, w in enumerate(kept_words)}
    n = min(len(encoding.ids), length)
    specials = set(tokenizer.get_added_tokens_decoder()) if hasattr(tokenizer, "get_added_tokens_decoder") else set()
    for t in range(n):
        w = word_ids[t]
        if w is None:
            if encoding.special_tokens_mask[t] or encoding.ids[t] in specials:
                ids[t] = encoding.ids[t]  # [CLS], [SEP]…: kept, not a word
            continue
        if w in position:
            ids[t] = encoding.ids[t]
            token_words[t] = position[w]
    spans = []
    for w in kept_words:
        start = offsets[first_token[w]][0]
        end = offsets[last_token[w]][1]
        spans.append((int(start), int(end)))
    words = [text[s:e] for s, e in spans]
    return TokenizedText(text, ids, token_words, words, spans, len(order))


@lru_cache(maxsize=16)
def _vocab_index(vocab: tuple[str, ...]) -> dict[str, int]:
    return {token: i for i, token in enumerate(vocab)}


@lru_cache(maxsize=8)
def _hf_tokenizer(serialised: str):
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers is in requirements.txt
        raise XaiError("This model's tokenizer is a `tokenizers` JSON, and the tokenizers package is not installed "
                       "(pip install tokenizers).") from None
    try:
        tokenizer = Tokenizer.from_str(serialised)
    except Exception as exc:  # the package raises its own exception types for malformed JSON
        raise XaiError(f"The sidecar's 'tokenizers_json' could not be read by the tokenizers package: "
                       f"{str(exc).splitlines()[0][:200]}.") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer

"""What is measured on text explanations: faithfulness (ERASER's comprehensiveness and sufficiency as AOPC), the
share of known evidence words among the top words, the top words per class over a dataset, and rank agreement.

A removed word becomes UNK, as in every text method (xai_core/attribution/text.py). Scores are on the probability of
the explained class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from xai_core.attribution.text import TextAttribution, _scores
from xai_core.errors import XaiError
from xai_core.model import LoadedModel

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.5)


@dataclass
class TextFaithfulness:
    """Per-document AOPC of one method, and the same for a random word order (what chance gives)."""

    method: str
    fractions: tuple[float, ...]
    comprehensiveness: np.ndarray  # (n,) mean over fractions of p(x) − p(x without its top words): higher is better
    sufficiency: np.ndarray  # (n,) mean over fractions of p(x) − p(only its top words): lower is better
    random_comprehensiveness: np.ndarray
    random_sufficiency: np.ndarray

    def summary(self) -> dict[str, float]:
        def mean_se(a):
            return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0

        out = {}
        for name in ("comprehensiveness", "sufficiency", "random_comprehensiveness", "random_sufficiency"):
            out[name], out[name + "_se"] = mean_se(getattr(self, name))
        return out


def aopc(model: LoadedModel, result: TextAttribution, fractions: Sequence[float] = DEFAULT_FRACTIONS,
         seed: int = 0) -> TextFaithfulness:
    """Comprehensiveness and sufficiency (DeYoung et al., ERASER 2020) averaged over the top `fractions` of words."""
    if not fractions or min(fractions) <= 0 or max(fractions) > 1:
        raise XaiError(f"Fractions of words must be in (0, 1]; got {list(fractions)}.")
    unk = model.info.tokenizer.unk_id
    rng = np.random.default_rng(seed)
    out = {key: np.zeros(len(result)) for key in ("c", "s", "rc", "rs")}
    for i, doc in enumerate(result.documents):
        d, t = doc.n_words, int(result.targets[i])
        p = result.probabilities[i, t]
        orders = {"": np.argsort(-result.values[i], kind="stable"), "r": rng.permutation(d)}
        masks = []
        for order in orders.values():
            for q in fractions:
                top = order[: max(1, math.ceil(q * d))]
                keep = np.ones(d, dtype=bool)
                keep[top] = False
                masks += [keep, ~keep]
        scores = _scores(model, doc.ids_with_words_absent(np.array(masks), unk), "probability")[:, t]
        scores = scores.reshape(2, len(fractions), 2)  # order, fraction, (without top, only top)
        out["c"][i], out["s"][i] = (p - scores[0, :, 0]).mean(), (p - scores[0, :, 1]).mean()
        out["rc"][i], out["rs"][i] = (p - scores[1, :, 0]).mean(), (p - scores[1, :, 1]).mean()
    return TextFaithfulness(result.method, tuple(fractions), out["c"], out["s"], out["rc"], out["rs"])


def evidence_share(result: TextAttribution, evidence: Sequence[Sequence[str]]) -> np.ndarray:
    """Per document: of its m evidence words (by position), the share found among its m highest-ranked words.
    NaN for a document with no evidence word among the words the model sees."""
    if len(evidence) != len(result):
        raise XaiError(f"Got evidence for {len(evidence)} documents, but {len(result)} were explained.")
    shares = np.full(len(result), np.nan)
    for i, (doc, words) in enumerate(zip(result.documents, evidence)):
        wanted = {w.lower() for w in words}
        positions = {j for j, w in enumerate(doc.words) if w.lower() in wanted}
        if positions:
            top = np.argsort(-result.values[i], kind="stable")[: len(positions)]
            shares[i] = len(positions.intersection(top.tolist())) / len(positions)
    return shares


def top_words_per_class(result: TextAttribution, k: int = 10, min_count: int = 2) -> pd.DataFrame:
    """For each explained class, the words with the largest mean attribution over the documents explained for it
    (words seen at least `min_count` times): columns class, word, mean_attribution, count."""
    rows = [{"class": result.class_names[int(result.targets[i])], "word": w.lower(), "value": float(v)}
            for i, doc in enumerate(result.documents) for w, v in zip(doc.words, result.values[i])]
    if not rows:
        return pd.DataFrame(columns=["class", "word", "mean_attribution", "count"])
    frame = pd.DataFrame(rows).groupby(["class", "word"], sort=False)["value"].agg(["mean", "count"]).reset_index()
    frame = frame[frame["count"] >= min_count].rename(columns={"mean": "mean_attribution"})
    frame = frame.sort_values(["class", "mean_attribution"], ascending=[True, False], kind="stable")
    return frame.groupby("class", sort=False).head(k).reset_index(drop=True)


def rank_agreement(a: TextAttribution, b: TextAttribution) -> np.ndarray:
    """Per document, Spearman's rank correlation of two methods' word values (NaN where either is constant)."""
    from scipy.stats import spearmanr

    if len(a) != len(b):
        raise XaiError("Both explanations must cover the same documents.")
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a.values, b.values)):
        if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out

"""The text demos: the planted corpus is what it claims, and Integrated Gradients recovers the planted words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_core.attribution.text import IntegratedGradientsTextSettings, explain_text
from xai_core.demo import ASSETS, load_demo
from xai_core.text.evaluation import evidence_share


def test_held_out_corpus_plants_only_words_of_the_documents_class():
    frame = pd.read_csv(ASSETS / "text_planted_test.csv")
    assert set(frame["label"]) == {"negative", "positive"}
    by_class = {label: {w for e in part["evidence"] for w in e.split()} for label, part in frame.groupby("label")}
    assert not by_class["negative"] & by_class["positive"]
    for text, evidence in zip(frame["text"], frame["evidence"]):
        words = text.lower().split()
        assert all(w in words for w in evidence.split())


def test_planted_corpus_filler_is_neutral_in_vaders_lexicon():
    pytest.importorskip("vaderSentiment")
    from xai_core.demo.text import evidence_words, neutral_words, planted_corpus, vader_lexicon

    lexicon = vader_lexicon()
    assert not set(neutral_words()) & set(lexicon)
    planted = evidence_words()
    assert all(lexicon[w] >= 2 for w in planted["positive"]) and all(lexicon[w] <= -2 for w in planted["negative"])
    first, again = planted_corpus(20, seed=5), planted_corpus(20, seed=5)
    pd.testing.assert_frame_equal(first, again)  # seeded


@pytest.mark.parametrize("demo", ["text_bilstm", "text_transformer"])
def test_integrated_gradients_ranks_the_planted_words_first(demo):
    model, data = load_demo(demo)
    subset = data.subset(range(100))
    result = explain_text(model, subset, "integrated_gradients", IntegratedGradientsTextSettings(n_steps=32))
    assert np.nanmean(evidence_share(result, subset.evidence)) >= 0.9
    assert np.abs(result.convergence_deltas).max() < 0.1

"""The text demos: the planted corpus is what it claims, and Integrated Gradients recovers the planted words; the
real corpus (fortunes by topic) is what it claims, and IG's top words per topic are that topic's words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from xai_core.attribution.text import IntegratedGradientsTextSettings, explain_text
from xai_core.demo import ASSETS, DEMOS, load_demo
from xai_core.text.evaluation import evidence_share, top_words_per_class


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
@pytest.mark.slow
def test_integrated_gradients_ranks_the_planted_words_first(demo):
    model, data = load_demo(demo)
    subset = data.subset(range(100))
    result = explain_text(model, subset, "integrated_gradients", IntegratedGradientsTextSettings(n_steps=32))
    assert np.nanmean(evidence_share(result, subset.evidence)) >= 0.9
    assert np.abs(result.convergence_deltas).max() < 0.1


# --------------------------------------------------------------------------- the real corpus: fortunes by topic

FORTUNE_DEMOS = [k for k in ("text_fortunes_bilstm", "text_fortunes_transformer") if k in DEMOS]
TOPICS = {"computers", "politics", "science"}


def _fortunes(split: str) -> pd.DataFrame:
    return pd.read_csv(ASSETS / f"text_fortunes_{split}.csv")


def test_fortunes_training_and_held_out_quotations_are_labelled_by_topic_and_disjoint():
    train, test = _fortunes("train"), _fortunes("test")
    assert list(test.columns) == ["text", "label"]  # no evidence column: nothing is planted
    assert set(train["label"]) == set(test["label"]) == TOPICS
    assert not set(train["text"]) & set(test["text"])
    assert len(test) >= 500 and len(train) >= 3 * len(test) - 10
    # Stratified: each topic's share of the held-out quotations is its share of the training ones.
    shares = pd.concat([train["label"].value_counts(normalize=True), test["label"].value_counts(normalize=True)], axis=1)
    assert (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().max() < 0.01
    # Attribution lines are cut, whitespace joined: science's "...will to find out,\nwhich is the exact
    # opposite.\n\t\t-- Bertrand Russell, "Skeptical Essays", 1928" is read as the quotation alone.
    both = pd.concat([train, test])
    russell = both[both["text"].str.startswith("What is wanted is not the will to believe")]
    assert russell["text"].tolist() == ["What is wanted is not the will to believe, but the will to find out, which "
                                        "is the exact opposite."] and russell["label"].tolist() == ["science"]
    assert not both["text"].str.contains("Bertrand Russell|Charles Duell|[\t\n]").any()


def test_fortunes_demo_documents_load_without_evidence():
    model, data = load_demo("text_fortunes_bilstm")
    assert data.evidence is None and data.labels is not None and len(data) == len(_fortunes("test"))
    assert set(model.info.class_names) == TOPICS


def test_shipped_fortunes_data_is_what_debians_package_gives():
    from xai_core.demo.text import FORTUNES_DIR, fortunes_corpus, fortunes_split

    if not (FORTUNES_DIR / "computers").is_file():
        pytest.skip("Debian's fortunes package is not installed (apt-get install fortunes)")
    train, test = fortunes_split(fortunes_corpus())
    pd.testing.assert_frame_equal(train, _fortunes("train"))
    pd.testing.assert_frame_equal(test, _fortunes("test"))


def _topic_words(train: pd.DataFrame, min_docs: int = 8, ratio: float = 4.0) -> dict[str, set[str]]:
    """Per topic, the words in at least `min_docs` of its training quotations whose document frequency there is at
    least `ratio` times their frequency in the other topics' quotations (counted here, with a plain regex)."""
    docs = {label: [set(re.findall(r"\w+", t.lower())) for t in part["text"]] for label, part in train.groupby("label")}
    out = {}
    for label, own in docs.items():
        others = [d for other, ds in docs.items() if other != label for d in ds]
        counts = pd.Series([w for d in own for w in d]).value_counts()
        other_counts = pd.Series([w for d in others for w in d]).value_counts()
        out[label] = {w for w, n in counts.items() if n >= min_docs
                      and n / len(own) >= ratio * (other_counts.get(w, 0) + 1) / len(others)}
    return out


@pytest.mark.parametrize("demo", FORTUNE_DEMOS)
@pytest.mark.slow
def test_integrated_gradients_top_words_of_each_topic_are_that_topics_words(demo):
    """IG's top words per topic over the held-out quotations include words far more frequent in that topic's training
    quotations than in the others' (which the model can only have learnt from the data)."""
    topic_words = _topic_words(_fortunes("train"))
    assert all(len(w) >= 10 for w in topic_words.values())
    model, data = load_demo(demo)
    result = explain_text(model, data.subset(range(200)), "integrated_gradients",
                          IntegratedGradientsTextSettings(n_steps=32))
    top = top_words_per_class(result, k=10, min_count=3)
    own = {}
    for topic in TOPICS:
        words = set(top.loc[top["class"] == topic, "word"])
        own[topic] = words & topic_words[topic]
        others = set().union(*(topic_words[t] for t in TOPICS - {topic}))
        assert len(words & others) <= 1, (topic, sorted(words & others))  # another topic's words rarely push it
    assert own["computers"] and own["politics"], own
    # Own-topic words among the 10 top words: BiLSTM (67% accurate) computers 8, politics 3, science 1 ("light");
    # Transformer (66%) 7, 3 and 0. Science, the smallest topic, is the one both learnt least: not asserted per topic.
    assert sum(len(w) for w in own.values()) >= 8, own

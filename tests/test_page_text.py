"""Text explanations page (AppTest): both text demos end to end, escaping of documents, other pages with a text model."""

from __future__ import annotations

import html
import re

import pytest
import torch

from tests.apptest import open_page, run_app, upload_state
from xai_core.demo import DEMOS
from tests.test_text import VOCAB, BagOfEmbeddings, export_bytes, sidecar

PAGE = "views/text_explanations.py"


def _no_exceptions(at):
    assert not at.exception, [e.stack_trace for e in at.exception]


@pytest.mark.parametrize("demo", ["text_bilstm", "text_transformer"])
def test_text_demo_page_explains_a_document_and_recovers_the_planted_words(demo):
    at = open_page(PAGE, demo_key=demo)
    _no_exceptions(at)
    assert not at.error
    highlighted = [m.value for m in at.markdown if "<span title=" in m.value]
    assert len(highlighted) == 3  # three methods side by side
    shares = {m.label: float(m.value.rstrip("%")) / 100 for m in at.metric}
    assert set(shares) == {"Integrated Gradients", "Gradient × input", "Leave one word out"}
    assert shares["Integrated Gradients"] >= 0.9
    assert any("Planted evidence words in this document" in c.value for c in at.caption)


@pytest.mark.parametrize("demo", [k for k in ("text_fortunes_bilstm", "text_fortunes_transformer") if k in DEMOS])
def test_real_corpus_demo_page_explains_a_quotation_without_the_planted_word_metric(demo):
    at = open_page(PAGE, demo_key=demo)
    _no_exceptions(at)
    assert not at.error
    highlighted = [m.value for m in at.markdown if "<span title=" in m.value]
    assert len(highlighted) == 3  # three methods side by side
    assert any(m.value.startswith("**Top words per class**") for m in at.markdown)
    assert any(m.value.startswith("**Faithfulness**") for m in at.markdown)
    # Nothing is planted in a real corpus: no share of planted words, and the page says why.
    assert not at.metric
    assert not any("Planted evidence" in e.value for e in (*at.markdown, *at.caption))
    assert any("compared by faithfulness alone" in c.value for c in at.caption)


@pytest.fixture(scope="module")
def upload():
    model = export_bytes(BagOfEmbeddings(len(VOCAB)), torch.zeros((2, 12), dtype=torch.int64))
    return upload_state(model, "bag.pt2", sidecar().encode(), data=[("docs.txt", b"good film\nbad plot\nthe acting\n")])


def test_a_typed_document_is_shown_as_text_never_as_html(upload):
    at = open_page(PAGE, **upload)
    _no_exceptions(at)
    typed = "<script>alert('x')</script> good <b>film</b> & plot"
    at.text_area(key="tx_typed").set_value(typed).run()
    _no_exceptions(at)
    highlighted = [m.value for m in at.markdown if "<span title=" in m.value]
    assert highlighted
    for value in highlighted:
        assert "<script" not in value and "<b>" not in value and "&lt;" in value and "&amp;" in value
        # Only the page's own tags are markup: without them, the escaped text reads exactly as typed.
        assert html.unescape(re.sub(r"<[^>]+>", "", value)) == typed


def test_shapley_and_lime_can_be_added_side_by_side(upload):
    at = open_page(PAGE, **upload)
    at.multiselect(key="tx_methods").set_value(["integrated_gradients", "shapley", "lime"]).run()
    _no_exceptions(at)
    assert [m.value for m in at.markdown if m.value.startswith("**") and m.value.endswith("**")][:3] == [
        "**Integrated Gradients**", "**Shapley values (words)**", "**LIME (words)**"]
    assert any("Σ values − (f(x) − f(all UNK))" in c.value for c in at.caption)


def test_a_long_typed_document_says_it_was_truncated(upload):
    at = open_page(PAGE, **upload)
    at.text_area(key="tx_typed").set_value("good film " * 10).run()
    _no_exceptions(at)
    assert any("reads only its first 12 tokens" in w.value for w in at.warning)


@pytest.mark.parametrize("page, says", [
    ("views/image_explanations.py", "image models"),
    ("views/feature_importance.py", "tabular models"),
    ("views/surrogate_tree.py", "for text models they are not available here"),
])  # the Quantization page takes text models (tests/test_quantization_text.py)
def test_other_pages_say_what_they_are_for_with_a_text_model(upload, page, says):
    at = open_page(page, **upload)
    _no_exceptions(at)
    assert any(says in i.value for i in at.info)


def test_model_and_data_page_shows_a_text_model_and_its_documents():
    at = run_app(demo_key="text_bilstm")
    _no_exceptions(at)
    facts = next(m.value for m in at.markdown if "Format" in m.value)
    assert "32 token ids" in facts
    assert any("document" in list(d.value.columns) for d in at.dataframe)

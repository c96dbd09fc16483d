"""Text explanations: which words made a text classifier decide, for one document and over the dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.attribution.text import (
    METHODS,
    IntegratedGradientsTextSettings,
    ShapleyTextSettings,
    explain_text,
)
from xai_core.datasets import TextSet
from xai_core.text.evaluation import aopc, evidence_share, top_words_per_class
from xai_core.text.tokenizer import tokenize
from xai_core.viz.text import faithfulness_figure, top_words_figure, word_bar_figure, word_highlight_html
from ui import state
from ui.look import ICON_INFO, card, facts, figure, page_header, table_download, user_errors

page_header("Text explanations", "Which words made the model decide, in one document and across the dataset?")

DEFAULT_METHODS = ["integrated_gradients", "gradient_x_input", "occlusion"]
EVIDENCE_GOAL = 0.9  # share of planted words among the top words that a faithful method should reach


def method_settings(key: str):
    """The settings the page uses for a method: IG with 32 steps, Shapley capped at 256 permutations."""
    if key == "integrated_gradients":
        return IntegratedGradientsTextSettings(n_steps=32)
    if key == "shapley":
        return ShapleyTextSettings(n_permutations=256, target_relative_se=0.05)
    return METHODS[key].settings()


@st.cache_data(max_entries=64, show_spinner=False)
def cached_explanation(model_sha: str, texts: tuple[str, ...], method: str, settings, _model):
    bar = st.progress(0.0, text=f"{METHODS[method].name}…")

    def progress(done: int, total: int, message: str = "") -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{METHODS[method].name}: {message}")

    result = explain_text(_model, list(texts), method, settings, progress=progress)
    bar.empty()
    return result


@st.cache_data(max_entries=32, show_spinner="Measuring faithfulness (removing top words)…")
def cached_faithfulness(model_sha: str, texts: tuple[str, ...], method: str, settings, _model, _result):
    return aopc(_model, _result)


def choose_document(data: TextSet | None) -> str:
    left, right = st.columns([3, 2], gap="large")
    text = ""
    if data is not None and len(data):
        n = min(len(data), 500)
        index = left.selectbox("Document", range(n), key="tx_doc",
                               format_func=lambda i: f"{data.names[i]}: {data.texts[i][:90]}")
        text = data.texts[int(index)]
    typed = right.text_area("…or type a document", key="tx_typed", height=80,
                            help="Anything typed here is explained instead of the chosen document.")
    return typed.strip() or text


def show_document(model, text: str, methods: list[str], evidence: tuple[str, ...] | None) -> None:
    info = model.info
    doc = tokenize(text, info.tokenizer)[0]
    if doc.n_words == 0:
        st.warning("This document has no words to explain.")
        return
    results = {}
    for key in methods:
        results[key] = cached_explanation(model.sha256, (text,), key, method_settings(key), model)
    first = next(iter(results.values()))
    proba = first.probabilities[0]
    predicted = int(proba.argmax())
    facts({"Prediction": info.class_names[predicted],
           **{f"P({c})": f"{p:.3f}" for c, p in zip(info.class_names, proba)},
           "Words": f"{doc.n_words}" + (f" of {doc.n_words_total}" if doc.truncated else "")})
    if doc.truncated:
        st.warning(f"This document has {doc.n_words_total} words; the model reads only its first "
                   f"{info.tokenizer.max_length} tokens ({doc.n_words} words). The rest (greyed) is neither seen nor "
                   "explained.", icon=":material/content_cut:")
    if evidence:
        st.caption("Planted evidence words in this document: " + ", ".join(evidence))
    columns = st.columns(len(results), gap="large")
    for column, (key, result) in zip(columns, results.items()):
        with column:
            st.markdown(f"**{result.method}**")
            st.markdown(word_highlight_html(result, 0), unsafe_allow_html=True)
            details = []
            if result.convergence_deltas is not None:
                details.append(f"convergence delta {result.convergence_deltas[0]:+.2e}")
            if result.efficiency_gap is not None:
                details.append(f"Σ values − (f(x) − f(all UNK)) = {result.efficiency_gap:.1e}")
            if result.standard_errors is not None and result.standard_errors[0].max() > 0:
                details.append(f"largest standard error {result.standard_errors[0].max():.3f} (sampled)")
            st.caption(METHODS[key].how_to_read + (" " + "; ".join(details) + "." if details else ""))
            for note in result.notes:
                st.caption(note)
    st.caption(f"Red words raise P({info.class_names[predicted]}), blue words lower it; the stronger the colour, the "
               "larger the effect (each method scaled to its own largest value; hover a word for its value). A word "
               "is 'absent' when its tokens become UNK (PAD kept).")
    key = st.selectbox("Ranked words of", list(results), format_func=lambda k: METHODS[k].name, key="tx_bar_method")
    figure(word_bar_figure(results[key], 0), "The words with the largest effect, by size; the number is the word's "
           "position in the document.", key="tx_bar", download_name="word_attributions")
    frame = pd.concat([r.to_frame().assign(method=r.method) for r in results.values()], ignore_index=True)
    table_download(frame, "word_attributions", "word attributions (CSV)")


def show_dataset(model, data: TextSet, methods: list[str]) -> None:
    card("Over the dataset", "Which words push each class, and how faithful is each method?")
    n = st.slider("Documents (the first N)", min_value=5, max_value=min(len(data), 200), value=min(len(data), 30),
                  key="tx_n")
    texts = tuple(data.texts[:n])
    results = {key: cached_explanation(model.sha256, texts, key, method_settings(key), model) for key in methods}

    global_key = "integrated_gradients" if "integrated_gradients" in results else next(iter(results))
    top = top_words_per_class(results[global_key], k=10, min_count=2)
    st.markdown(f"**Top words per class** ({results[global_key].method}, each document explained for its predicted "
                "class)")
    if len(top):
        figure(top_words_figure(top, results[global_key].value_label),
               "Words with the largest mean effect on the class the model predicted, over the documents where they "
               "occur (×count: how many times). Only words seen at least twice.", key="tx_top",
               download_name="top_words")
        table_download(top, "top_words", "top words (CSV)")
    else:
        st.info("No word occurs twice in these documents; take more documents.", icon=ICON_INFO)

    rows = []
    for key, result in results.items():
        faith = cached_faithfulness(model.sha256, texts, key, method_settings(key), model, result).summary()
        row = {"method": result.method, **faith}
        if data.evidence is not None:
            shares = evidence_share(result, data.evidence[:n])
            row["evidence share"] = float(np.nanmean(shares)) if np.isfinite(shares).any() else float("nan")
        if result.convergence_deltas is not None:
            row["largest |IG delta|"] = float(np.abs(result.convergence_deltas).max())
        rows.append(row)
    table = pd.DataFrame(rows)
    st.markdown("**Faithfulness** (ERASER comprehensiveness and sufficiency, AOPC over the top 10, 20, 30, 50 % of "
                "words)")
    figure(faithfulness_figure(table), "Comprehensiveness: how much P(class) drops when a method's top words become "
           "UNK (higher = the words mattered); the black mark is the same for a random order of words. Sufficiency: "
           "how much it drops when only the top words are kept (lower = they suffice). Error bars: standard error "
           "over documents.", key="tx_faith", download_name="text_faithfulness")
    if data.evidence is None:
        st.caption("No words are known to carry the class in these documents (only the planted-evidence demos have "
                   "them), so the methods are compared by faithfulness alone.")
    else:
        st.markdown("**Planted evidence recovered**: the share of each document's planted words found among its "
                    "top-ranked words (as many as it has planted words)")
        columns = st.columns(len(rows))
        for column, row in zip(columns, rows):
            share = row["evidence share"]
            column.metric(row["method"], f"{share:.1%}",
                          delta=f"{share - EVIDENCE_GOAL:+.1%} vs goal {EVIDENCE_GOAL:.0%}", delta_color="normal")
    table_download(table, "text_method_scores", "method scores (CSV)")


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    if data is not None and not isinstance(data, TextSet):
        data = None
    card("One document", "Why did the model predict what it did for this text?")
    text = choose_document(data)
    methods = st.multiselect("Methods side by side", list(METHODS), default=DEFAULT_METHODS, key="tx_methods",
                             format_func=lambda k: METHODS[k].name,
                             help="Integrated Gradients and gradient × input need the model's embedding layer "
                                  "(.pt2); leave-one-word-out, LIME and Shapley values only run the model.")
    if not methods:
        st.info("Pick at least one method.", icon=ICON_INFO)
        return
    if not text:
        st.info("Type a document, or upload documents on **Model & data**.", icon=ICON_INFO)
        return
    evidence = None
    if data is not None and data.evidence is not None and text in data.texts:
        evidence = data.evidence[data.texts.index(text)]
    show_document(model, text, methods, evidence)
    if data is not None:
        for note in data.notes:
            st.caption(note)
        show_dataset(model, data, [m for m in methods if m not in ("shapley", "lime")] or ["occlusion"])
        if any(m in ("shapley", "lime") for m in methods):
            st.caption("LIME and Shapley values are sampled per document and slow over a dataset: the dataset view "
                       "uses the other methods.")


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind != "text":
        st.info("This page is for text models. For image models open **Image explanations**, for tables **Feature "
                "importance**; pick a text demo or upload a text model on **Model & data**.", icon=ICON_INFO)
    else:
        show(selection)

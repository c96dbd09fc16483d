"""Text explanations drawn: the document with each word coloured by its attribution (HTML, every character of the
document escaped), top words per class, and faithfulness per method. Pure functions: result in, figure or HTML out."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xai_core.attribution.text import TextAttribution

# The project's signed attribution colours: red raises the class, blue lowers it.
POSITIVE_RGB = (214, 39, 40)
NEGATIVE_RGB = (31, 119, 180)


def _template() -> go.layout.Template:
    return go.layout.Template(layout=dict(font=dict(size=13), margin=dict(l=10, r=10, t=40, b=10),
                                          plot_bgcolor="white", paper_bgcolor="white"))


def word_highlight_html(result: TextAttribution, index: int, scale: float | None = None) -> str:
    """The document's text with every explained word on a background whose colour is the sign of its value and
    whose strength is |value| / `scale` (default: the document's largest |value|). Text outside words (spaces,
    anything past the truncation) is kept as written, and everything is HTML-escaped."""
    doc, values = result.documents[index], result.values[index]
    scale = float(scale if scale is not None else (np.abs(values).max() if len(values) else 0.0)) or 1.0
    parts, cursor = [], 0
    for (start, end), value in zip(doc.spans, values):
        parts.append(html.escape(doc.text[cursor:start]))
        alpha = min(abs(float(value)) / scale, 1.0) * 0.85
        r, g, b = POSITIVE_RGB if value >= 0 else NEGATIVE_RGB
        parts.append(f"<span title=\"{value:+.4f}\" style=\"background:rgba({r},{g},{b},{alpha:.3f});"
                     f"border-radius:3px;padding:0 2px\">{html.escape(doc.text[start:end])}</span>")
        cursor = end
    rest = doc.text[cursor:]
    if doc.truncated and rest.strip():
        parts.append(f"<span style=\"color:#9aa5b1\">{html.escape(rest)}</span>")
    else:
        parts.append(html.escape(rest))
    return "<div style=\"line-height:2;font-size:1.05rem\">" + "".join(parts) + "</div>"


def word_bar_figure(result: TextAttribution, index: int, k: int = 15) -> go.Figure:
    """The document's k words with the largest |value|, ranked, signed colours."""
    doc, values = result.documents[index], result.values[index]
    order = np.argsort(-np.abs(values), kind="stable")[:k][::-1]
    labels = [f"{doc.words[j]} ({j + 1})" for j in order]
    colours = [f"rgb{POSITIVE_RGB}" if values[j] >= 0 else f"rgb{NEGATIVE_RGB}" for j in order]
    fig = go.Figure(go.Bar(x=values[order], y=labels, orientation="h", marker_color=colours))
    fig.update_layout(template=_template(), height=max(220, 22 * len(order) + 60), title=result.method,
                      xaxis_title=result.value_label, yaxis_title="word (position)")
    return fig


def top_words_figure(frame: pd.DataFrame, value_label: str) -> go.Figure:
    """One panel per class: its words with the largest mean attribution over the dataset."""
    from plotly.subplots import make_subplots

    classes = list(dict.fromkeys(frame["class"]))
    fig = make_subplots(rows=1, cols=max(len(classes), 1), subplot_titles=[f"for '{c}'" for c in classes],
                        horizontal_spacing=0.12)
    for col, name in enumerate(classes, start=1):
        part = frame[frame["class"] == name].iloc[::-1]
        fig.add_trace(go.Bar(x=part["mean_attribution"], y=part["word"], orientation="h", showlegend=False,
                             marker_color=f"rgb{POSITIVE_RGB}", text=[f"×{c}" for c in part["count"]],
                             textposition="outside"), row=1, col=col)
        fig.update_xaxes(title_text=value_label, row=1, col=col)
    fig.update_layout(template=_template(), height=max(300, 24 * frame.groupby("class").size().max() + 90))
    return fig


def faithfulness_figure(table: pd.DataFrame) -> go.Figure:
    """Comprehensiveness and sufficiency (AOPC) per method with standard errors, and a random ranking's."""
    fig = go.Figure()
    for column, name, colour in (("comprehensiveness", "comprehensiveness (higher is better)", POSITIVE_RGB),
                                 ("sufficiency", "sufficiency (lower is better)", NEGATIVE_RGB)):
        fig.add_trace(go.Bar(x=table["method"], y=table[column], name=name, marker_color=f"rgb{colour}",
                             error_y=dict(type="data", array=table[column + "_se"])))
    fig.add_trace(go.Scatter(x=table["method"], y=table["random_comprehensiveness"], mode="markers",
                             name="comprehensiveness of a random order", marker=dict(symbol="line-ew-open", size=26,
                                                                                   color="black")))
    fig.update_layout(template=_template(), barmode="group", height=360, yaxis_title="AOPC (drop in P(class))",
                      legend=dict(orientation="h", y=-0.2))
    return fig

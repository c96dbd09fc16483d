"""Figures for feature importance: global bars, beeswarm, method comparison, local waterfall.

Each takes a `TabularAttribution` (any local method: Shapley values, gradient × input, integrated gradients) or
`GlobalImportance` objects, and labels its axes with the method's own `value_label`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from xai_core.attribution.results import GlobalImportance, TabularAttribution
from xai_core.errors import XaiError
from xai_core.viz import NEGATIVE, NEUTRAL, POSITIVE, styled

FEATURE_VALUE_COLORSCALE = [[0.0, NEGATIVE], [0.5, "#c9c9d6"], [1.0, POSITIVE]]


def _top(result: TabularAttribution, output_index: int, top_k: int) -> list[int]:
    """Indices of the top-k features by mean |φ|, most important first."""
    mean_abs = np.abs(result.values[:, :, output_index]).mean(axis=0)
    return list(np.argsort(-mean_abs, kind="stable")[:top_k])


def shap_bar_figure(result: TabularAttribution, output_index: int = 0, top_k: int = 15) -> go.Figure:
    """Mean |φ| per feature, largest on top; error bars are the mean standard error when the values are sampled."""
    order = _top(result, output_index, top_k)
    phi = np.abs(result.values[:, order, output_index]).mean(axis=0)
    errors = result.standard_errors[:, order, output_index].mean(axis=0)
    names = [result.feature_names[i] for i in order]
    label = result.value_label
    fig = go.Figure(go.Bar(
        x=phi[::-1], y=names[::-1], orientation="h", marker_color=POSITIVE,
        error_x=dict(type="data", array=errors[::-1], visible=result.has_standard_errors, color="#52606d"),
        hovertemplate="%{y}<br>mean |" + label + "| %{x:.4g}<extra></extra>",
    ))
    fig.update_xaxes(title=f"mean |{label}| (effect on {result.output_names[output_index]})")
    return styled(fig, "Which features matter most overall?", height=max(300, 28 * len(names) + 110))


BEESWARM_MAX_ROWS = 2000


def beeswarm_figure(result: TabularAttribution, output_index: int = 0, top_k: int = 15, seed: int = 0,
                    max_rows: int = BEESWARM_MAX_ROWS) -> go.Figure:
    """One row of dots per feature: each dot a data row, x its value φ, colour its feature value (low blue, high red).

    Above `max_rows` rows the dots are a seeded sample of rows (the title says so): every dot costs bytes in the page
    and the report, and 2,000 dots already show the shape. The ranking and the colour scale use every row.
    """
    order = _top(result, output_index, top_k)
    rng = np.random.default_rng(seed)
    X = result.rows.to_numpy(dtype=np.float64)
    n = len(X)
    shown = np.sort(rng.choice(n, max_rows, replace=False)) if n > max_rows else np.arange(n)
    xs, ys, colours, texts = [], [], [], []
    for rank, j in enumerate(order):
        phi = result.values[shown, j, output_index]
        column = X[:, j]
        spread = column.max() - column.min()
        values = column[shown]
        scaled = (values - column.min()) / spread if spread > 0 else np.full_like(values, 0.5)
        xs.append(phi)
        ys.append(len(order) - 1 - rank + rng.uniform(-0.3, 0.3, len(phi)))
        colours.append(scaled)
        texts += [f"{result.feature_names[j]} = {v:.4g}<br>{result.value_label} {p:+.4g}" for v, p in zip(values, phi)]
    fig = go.Figure(go.Scattergl(
        x=np.concatenate(xs), y=np.concatenate(ys), mode="markers", text=texts, hoverinfo="text",
        marker=dict(size=6, color=np.concatenate(colours), colorscale=FEATURE_VALUE_COLORSCALE, opacity=0.8,
                    colorbar=dict(title="feature<br>value", tickvals=[0, 1], ticktext=["low", "high"], len=0.6)),
    ))
    fig.add_vline(x=0, line_color=NEUTRAL, line_width=1)
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=[result.feature_names[j] for j in order][::-1],
                     showgrid=False, zeroline=False)
    fig.update_xaxes(title=f"{result.value_label} (effect on {result.output_names[output_index]})")
    title = "How does each feature push predictions?"
    if len(shown) < n:
        title += f"<br><sup>{len(shown):,} of {n:,} rows drawn (a seeded random sample); ranking over all rows</sup>"
    return styled(fig, title, height=max(320, 30 * len(order) + 110))


COMPARISON_COLOURS = (POSITIVE, "#17a398", "#3366cc", "#f2a541", "#8e6c8a")


def importance_comparison_figure(importances: Sequence[GlobalImportance], top_k: int = 15) -> go.Figure:
    """Several importances side by side, each scaled so its largest feature is 1; features ranked by the first."""
    if not importances:
        raise XaiError("Nothing to compare: pass at least one importance.")
    first = importances[0]
    order = list(np.argsort(-np.asarray(first.values, dtype=float), kind="stable")[:top_k])
    names = [first.feature_names[i] for i in order]
    fig = go.Figure()
    for number, importance in enumerate(importances):
        index = {n: i for i, n in enumerate(importance.feature_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise XaiError(f"{importance.method} has no value for the features {missing[:5]}; compare importances of "
                           "the same features.")
        v = np.asarray(importance.values, dtype=float)
        scale = np.max(np.abs(v)) or 1.0
        picked = np.array([v[index[n]] for n in names]) / scale
        picked_err = np.array([importance.errors[index[n]] for n in names]) / scale
        label = f"{importance.method} ({importance.measure})"
        fig.add_trace(go.Bar(
            y=names[::-1], x=picked[::-1], orientation="h", name=label,
            marker_color=COMPARISON_COLOURS[number % len(COMPARISON_COLOURS)],
            error_x=dict(type="data", array=picked_err[::-1], color="#52606d"),
            hovertemplate="%{y}<br>" + label + ": %{x:.3f} of its maximum<extra></extra>",
        ))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.12))
    fig.update_xaxes(title="importance, scaled to each method's largest")
    return styled(fig, "Do the methods agree on what matters?", height=max(360, 52 * len(names) + 140))


def waterfall_figure(result: TabularAttribution, row: int, output_index: int = 0, top_k: int = 12) -> go.Figure:
    """From the base value to this row's prediction: one step per feature, the smallest lumped together."""
    if result.base_values is None:
        raise XaiError(f"A {result.value_label} has no base value to start from, so its values do not add up to the "
                       "output; draw a waterfall of Shapley values or integrated gradients.")
    phi = result.values[row, :, output_index]
    order = list(np.argsort(-np.abs(phi), kind="stable"))
    shown, rest = order[:top_k], order[top_k:]
    values = result.rows.iloc[row]
    labels = [f"{result.feature_names[j]} = {values.iloc[j]:.4g}" for j in shown]
    steps = [float(phi[j]) for j in shown]
    if rest:
        labels.append(f"{len(rest)} other features")
        steps.append(float(phi[rest].sum()))
    base = float(result.base_values[output_index])
    total = float(result.outputs[row, output_index])
    fig = go.Figure(go.Waterfall(
        orientation="h", measure=["absolute", *["relative"] * len(steps), "total"],
        y=["base value (average output)", *labels, "prediction f(x)"], x=[base, *steps, total],
        base=0, increasing=dict(marker_color=POSITIVE), decreasing=dict(marker_color=NEGATIVE),
        totals=dict(marker_color="#52606d"), connector=dict(line=dict(color=NEUTRAL, width=1)),
        text=[f"{base:.3g}", *[f"{s:+.3g}" for s in steps], f"{total:.3g}"], textposition="auto",
        insidetextfont=dict(color="white"), outsidetextfont=dict(color="#1f2933"), cliponaxis=False,
        hovertemplate="%{y}<br>%{text}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title=result.output_names[output_index])
    return styled(fig, "Why this prediction?", height=max(360, 30 * (len(steps) + 2) + 120))

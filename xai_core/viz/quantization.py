"""Figures for the float vs quantized comparison: trade-offs per variant, the bits curve, explanation drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xai_core.quantization import ImageDriftReference, QuantizationComparison, TabularDriftReference
from xai_core.viz import NEGATIVE, NEUTRAL, POSITIVE, TEMPLATE, styled
from xai_core.viz.image import overlay_grid_figure


def tradeoff_figure(comparison: QuantizationComparison) -> go.Figure:
    """Per variant: quality (score and agreement), size ratio and speedup, each against fp32 (dashed line = fp32)."""
    labels = [r.label for r in comparison.results]
    quality = "agreement with fp32" if comparison.task == "classification" else (comparison.score_name or "MSE vs fp32")
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=(f"Quality ({comparison.score_name or 'vs fp32'})", "Smaller by (× vs fp32)",
                                        "Faster by (× vs fp32, same run)"))
    colorway = TEMPLATE.layout.colorway
    if comparison.score_name:
        fig.add_trace(go.Bar(x=labels, y=[r.score for r in comparison.results], name=comparison.score_name,
                             marker_color=colorway[0], hovertemplate="%{x}: %{y:.4f}<extra>" + comparison.score_name + "</extra>"),
                      row=1, col=1)
    if comparison.task == "classification":
        fig.add_trace(go.Bar(x=labels, y=[r.agreement for r in comparison.results], name="agreement with fp32",
                             marker_color=colorway[2], hovertemplate="%{x}: %{y:.4f}<extra>agreement</extra>"), row=1, col=1)
        low = min([r.score for r in comparison.results if r.score is not None] + [r.agreement for r in comparison.results])
        fig.update_yaxes(range=[max(0.0, low - 0.05), 1.0], row=1, col=1)
    elif not comparison.score_name:
        fig.add_trace(go.Bar(x=labels, y=[r.divergence for r in comparison.results], name=quality,
                             marker_color=colorway[2]), row=1, col=1)
    base = comparison.results[0]
    fig.add_trace(go.Bar(x=labels, y=[base.size_bytes / r.size_bytes for r in comparison.results], name="size ratio",
                         marker_color=NEUTRAL, showlegend=False,
                         customdata=[[r.size_bytes / 1024, r.size_basis] for r in comparison.results],
                         hovertemplate="%{x}: %{y:.2f}× smaller (%{customdata[0]:,.1f} KiB, %{customdata[1]})<extra></extra>"),
                  row=1, col=2)
    for i, batch in enumerate(comparison.settings["batch_sizes"]):
        fig.add_trace(go.Bar(x=labels, y=[r.speedup[batch] for r in comparison.results], name=f"batch {batch}",
                             marker_color=(POSITIVE, NEGATIVE, colorway[3])[i % 3],
                             customdata=[[r.latency_ms[batch], r.fp32_latency_ms.get(batch, float("nan"))]
                                         for r in comparison.results],
                             hovertemplate="%{x}: %{y:.2f}× (%{customdata[0]:.2f} ms per batch; fp32 %{customdata[1]:.2f} "
                                           "ms in the same run)<extra>batch " + str(batch) + "</extra>"),
                      row=1, col=3)
    for col in (2, 3):
        fig.add_hline(y=1.0, line_dash="dash", line_color="#52606d", row=1, col=col)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.35))
    fig.update_xaxes(tickangle=-35)
    return styled(fig, None, height=440)


def bits_curve_figure(curve: pd.DataFrame, score_name: str | None, task: str) -> go.Figure:
    """Score (solid) and agreement with fp32 (dotted) as weights get fewer bits, per channel and per tensor."""
    fig = go.Figure()
    order = sorted(curve["bits"].unique(), reverse=True)
    for granularity, color in (("per-channel", POSITIVE), ("per-tensor", NEGATIVE)):
        part = curve[curve["granularity"] == granularity].set_index("bits").loc[order].reset_index()
        x = [str(b) if b != 32 else "32 (fp32)" for b in part["bits"]]
        if score_name:
            fig.add_trace(go.Scatter(x=x, y=part["score"], mode="lines+markers", name=f"{score_name}, {granularity}",
                                     line=dict(color=color)))
        if task == "classification":
            fig.add_trace(go.Scatter(x=x, y=part["agreement"], mode="lines+markers", name=f"agreement, {granularity}",
                                     line=dict(color=color, dash="dot")))
        elif not score_name:
            fig.add_trace(go.Scatter(x=x, y=part["divergence"], mode="lines+markers", name=f"MSE vs fp32, {granularity}",
                                     line=dict(color=color)))
    fig.update_xaxes(title="bits per weight (symmetric, weight-only)", type="category")
    fig.update_yaxes(title=score_name or "MSE vs fp32")
    fig.update_layout(legend=dict(orientation="h", y=-0.3))
    return styled(fig, "How many bits do the weights need?", height=400)


def drift_summary_figure(comparison: QuantizationComparison) -> go.Figure:
    """Per variant, how similar its explanations are to fp32's (1 = the same ranking / the same top evidence)."""
    results = [r for r in comparison.results if r.drift]
    metrics = list(dict.fromkeys(name for r in results for name in r.drift))
    fig = go.Figure()
    colorway = TEMPLATE.layout.colorway
    for i, name in enumerate(metrics):
        values = [r.drift.get(name) for r in results]
        fig.add_trace(go.Bar(y=[r.label for r in results][::-1], x=values[::-1], name=name, orientation="h",
                             marker_color=colorway[i % len(colorway)], texttemplate="%{x:.3f}", textposition="inside",
                             hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>"))
    low = min([v for r in results for v in r.drift.values()] + [0.0])
    fig.add_vline(x=1.0, line_dash="dash", line_color="#52606d")
    fig.update_xaxes(range=[low, 1.02], title="similarity to fp32's explanation")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3))
    return styled(fig, "How far do the explanations drift?", height=max(320, 40 * len(results) * max(1, len(metrics)) // 2 + 160))


def drift_image_figure(comparison: QuantizationComparison, index: int, labels: list[str], colormap: str = "Inferno",
                       opacity: float = 0.6) -> go.Figure:
    """The same image's Grad-CAM (or the drift's method) for fp32 and each chosen variant, side by side."""
    ref = comparison.drift_reference
    if not isinstance(ref, ImageDriftReference):
        raise TypeError("drift_image_figure draws an image comparison's drift.")
    labels = [label for label in labels if label in comparison.drift_variants]
    image = ref.images[index]
    maps = [ref.maps[index]] + [comparison.drift_variants[label][index] for label in labels]
    titles = ["fp32"] + labels
    return overlay_grid_figure([image] * len(maps), maps, [False] * len(maps), titles, colormap, opacity,
                               columns=min(4, len(maps)))


def drift_tabular_figure(comparison: QuantizationComparison, row: int, labels: list[str], top_k: int = 12) -> go.Figure:
    """One row's Shapley values for fp32 and each chosen variant, features ranked by fp32's |φ|."""
    ref = comparison.drift_reference
    if not isinstance(ref, TabularDriftReference):
        raise TypeError("drift_tabular_figure draws a tabular comparison's drift.")
    labels = [label for label in labels if label in comparison.drift_variants]
    names = ref.feature_names
    base = ref.values[row]
    order = np.argsort(-np.abs(base))[:top_k][::-1]
    fig = go.Figure(go.Bar(x=base[order], y=[names[i] for i in order], orientation="h", name="fp32",
                           marker_color="#1f2933"))
    colorway = TEMPLATE.layout.colorway
    for i, label in enumerate(labels):
        values = comparison.drift_variants[label][row]
        fig.add_trace(go.Bar(x=values[order], y=[names[j] for j in order], orientation="h", name=label,
                             marker_color=colorway[i % len(colorway)]))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title=f"Shapley value for '{ref.explained[row]}'")
    return styled(fig, None, height=max(360, 24 * len(order) * (1 + len(labels)) // 2 + 140))

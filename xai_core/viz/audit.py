"""Figures for the compression audit: the bits curve with explanation agreement, flip-set samples beside fp32, group
drift per class."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from xai_core.quantization.audit import BitsAudit, CompressionAudit
from xai_core.viz import NEGATIVE, NEUTRAL, POSITIVE, TEMPLATE, styled
from xai_core.viz.image import overlay_grid_figure


def _band(fig: go.Figure, x, low, high, color: str, name: str) -> None:
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(high) + list(low)[::-1], fill="toself",
                             fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip", showlegend=False,
                             name=f"{name} 95% interval"))


def audit_bits_figure(bits: BitsAudit) -> go.Figure:
    """Score and explanation agreement (top-k overlap, rank correlation) with fp32 as weights get fewer bits, each with
    its 95% bootstrap interval; dashed lines: the floors explanations must stay above."""
    frame = bits.frame.sort_values("bits", ascending=False)
    x = [str(b) for b in frame["bits"]]
    fig = go.Figure()
    colorway = TEMPLATE.layout.colorway
    if "score" in frame:
        _band(fig, x, frame["score low"], frame["score high"], colorway[0], bits.score_name)
        fig.add_trace(go.Scatter(x=x, y=frame["score"], mode="lines+markers", name=bits.score_name,
                                 line=dict(color=colorway[0])))
    elif "agreement" in frame:
        fig.add_trace(go.Scatter(x=x, y=frame["agreement"], mode="lines+markers", name="agreement with fp32",
                                 line=dict(color=colorway[0])))
    for column, color, name in (("overlap", POSITIVE, f"{bits.explanation}: {bits.top_k_name}"),
                                ("rank correlation", colorway[2], f"{bits.explanation}: rank correlation")):
        _band(fig, x, frame[f"{column} low"], frame[f"{column} high"], color, name)
        fig.add_trace(go.Scatter(x=x, y=frame[column], mode="lines+markers", name=name, line=dict(color=color,
                                                                                              dash="dot")))
    fig.add_hline(y=bits.settings.overlap_floor, line_dash="dash", line_color=NEUTRAL)
    fig.update_xaxes(title="bits per weight (rounded " + ("per channel" if bits.settings.per_channel else "per tensor")
                     + ")", type="category")
    fig.update_yaxes(title="vs labels / vs fp32's explanation")
    fig.update_layout(legend=dict(orientation="h", y=-0.3))
    return styled(fig, "Do explanations drift before accuracy does?", height=420)


def flip_pairs_figure(audit: CompressionAudit, label: str, images: np.ndarray, samples: list[str],
                      colormap: str = "Inferno", opacity: float = 0.6) -> go.Figure:
    """Explained flip-set images: fp32's map beside the variant's, one pair per row."""
    index = {name: i for i, name in enumerate(audit.explained_ids)}
    chosen = [index[s] for s in samples if s in index]
    if not chosen:
        raise ValueError("None of these samples was explained.")
    pictures, maps, titles = [], [], []
    for i in chosen:
        pictures += [images[i], images[i]]
        maps += [audit.reference[i], audit.values[label][i]]
        name = audit.explained_ids[i].rsplit("/", 1)[-1]
        titles += [f"fp32 · {name}", f"{label} · {name}"]
    return overlay_grid_figure(pictures, maps, [False] * len(maps), titles, colormap, opacity, columns=4)


def flip_table_figure(audit: CompressionAudit, label: str, sample: str, feature_names: list[str],
                      top_k: int = 12) -> go.Figure:
    """One explained row's attributions by fp32 and by the variant, features ranked by fp32's magnitude."""
    i = audit.explained_ids.index(sample)
    base, other = audit.reference[i], audit.values[label][i]
    order = np.argsort(-np.abs(base))[:top_k][::-1]
    names = [feature_names[j] for j in order]
    fig = go.Figure([go.Bar(x=base[order], y=names, orientation="h", name="fp32", marker_color="#1f2933"),
                     go.Bar(x=other[order], y=names, orientation="h", name=label, marker_color=NEGATIVE)])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title=f"{audit.explainer.name} for fp32's class")
    return styled(fig, f"Row {sample}", height=max(360, 26 * len(order) * 2 // 2 + 140))


def group_drift_figure(audit: CompressionAudit, label: str) -> go.Figure:
    """Per class: 1 − Spearman's ρ between fp32's and the variant's mean explanation (longest bar = drifted most)."""
    frame = audit.group_drift[label].frame
    fig = go.Figure(go.Bar(y=frame["class"][::-1], x=frame["drift"][::-1], orientation="h", marker_color=POSITIVE,
                           customdata=np.stack([frame["samples"][::-1], frame["mean top-k overlap"][::-1]], axis=1),
                           hovertemplate="%{y}: drift %{x:.3f} (%{customdata[0]} samples, mean overlap "
                                         "%{customdata[1]:.3f})<extra></extra>"))
    fig.update_xaxes(title="1 − rank correlation of the class's mean explanation")
    return styled(fig, f"Which classes' explanations drift most under {label}?", height=max(260, 34 * len(frame) + 120))


def group_maps_figure(audit: CompressionAudit, label: str, class_name: str, shape_image: np.ndarray,
                      colormap: str = "Inferno") -> go.Figure:
    """fp32's and the variant's mean map for one class, on a grey canvas (maps are means over images)."""
    a, b = audit.group_drift[label].means[class_name]
    canvas = np.full_like(shape_image, 128)
    return overlay_grid_figure([canvas, canvas], [a, b], [False, False], [f"fp32 · mean {class_name}",
                                                                          f"{label} · mean {class_name}"],
                               colormap, 0.9, columns=2)

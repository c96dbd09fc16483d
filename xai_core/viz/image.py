"""Figures for image explanations: heatmap overlays, method grids, galleries, probabilities, trust metrics."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale, sample_colorscale
from plotly.subplots import make_subplots

from xai_core.metrics import FaithfulnessCurves, SanityCheck
from xai_core.viz import ATTRIBUTION_COLORSCALE, POSITIVE, image_trace, montage_height, styled

COLORMAPS = ("Inferno", "Jet", "Viridis", "Hot")  # for unsigned maps; signed maps use the house diverging scale


def _lut(scale) -> np.ndarray:
    key = repr(scale)
    if key not in _LUTS:  # sampling a colour scale 256 times takes ~5 ms; every overlay needs one
        _LUTS[key] = _sample_lut(scale)
    return _LUTS[key]


_LUTS: dict[str, np.ndarray] = {}


def _sample_lut(scale) -> np.ndarray:
    colors = sample_colorscale(scale, np.linspace(0, 1, 256), colortype="tuple")
    return (np.array(colors) * (255 if max(max(c) for c in colors) <= 1 else 1)).clip(0, 255).astype(np.uint8)


def overlay(image: np.ndarray, attribution: np.ndarray, signed: bool = False, colormap: str = "Inferno",
            opacity: float = 0.6) -> np.ndarray:
    """Blend a heatmap over the image (uint8 (H, W, 3) out). Where attribution is near zero the image shows through.

    Unsigned maps: 0 → max on `colormap`. Signed maps: the house diverging scale, blue negative, red positive,
    symmetric around zero.
    """
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    a = np.asarray(attribution, dtype=np.float64)
    if signed:
        scale = np.abs(a).max() or 1.0
        normalized = a / scale  # [-1, 1]
        index = ((normalized + 1) / 2 * 255).round().astype(int)
        lut = _lut(ATTRIBUTION_COLORSCALE)
        weight = np.abs(normalized)
    else:
        a = np.clip(a, 0, None)
        scale = a.max() or 1.0
        normalized = a / scale
        index = (normalized * 255).round().astype(int)
        lut = _lut(get_colorscale(colormap))
        weight = normalized
    heat = lut[index]
    alpha = (opacity * np.sqrt(weight))[..., None]
    return (rgb * (1 - alpha) + heat * alpha).round().clip(0, 255).astype(np.uint8)


def overlay_figure(image: np.ndarray, attribution: np.ndarray, signed: bool, title: str, colormap: str = "Inferno",
                   opacity: float = 0.6, height: int = 460) -> go.Figure:
    fig = go.Figure(image_trace(overlay(image, attribution, signed, colormap, opacity)))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return styled(fig, title, height=height)


def image_figure(image: np.ndarray, title: str, height: int = 300) -> go.Figure:
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    fig = go.Figure(image_trace(rgb))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return styled(fig, title, height=height)


def overlay_grid_figure(images: list[np.ndarray], maps: list[np.ndarray], signed: list[bool], titles: list[str],
                        colormap: str = "Inferno", opacity: float = 0.6, columns: int = 4, title: str | None = None,
                        red_titles: list[bool] | None = None) -> go.Figure:
    """Many overlays as one montage (fast to render), each with its title above it."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    h, w = images[0].shape[:2]
    gap, title_gap = max(2, w // 16), max(8, h // 5)
    montage = np.full((rows * (h + title_gap), columns * (w + gap), 3), 255, dtype=np.uint8)
    fig = go.Figure()
    for i in range(n):
        top, left = (i // columns) * (h + title_gap) + title_gap, (i % columns) * (w + gap)
        montage[top: top + h, left: left + w] = overlay(images[i], maps[i], signed[i], colormap, opacity)
        wrong = bool(red_titles and red_titles[i])
        fig.add_annotation(x=left + w / 2, y=top - 1, text=titles[i], showarrow=False, yanchor="bottom",
                           font=dict(size=12, color=POSITIVE if wrong else "#1f2933"))
    fig.add_trace(image_trace(montage))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[montage.shape[0], 0])
    return styled(fig, title, height=montage_height(montage.shape, columns, margins=60))


def probabilities_figure(probabilities: np.ndarray, class_names, k: int = 5, highlight: int | None = None) -> go.Figure:
    """The k most probable classes, largest on top; the explained class highlighted."""
    order = np.argsort(-probabilities)[:k]
    colors = [POSITIVE if j == highlight else "#9aa5b1" for j in order]
    fig = go.Figure(go.Bar(x=probabilities[order][::-1], y=[class_names[j] for j in order][::-1], orientation="h",
                           marker_color=colors[::-1], text=[f"{p:.1%}" for p in probabilities[order][::-1]],
                           textposition="auto", hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    return styled(fig, f"Top-{min(k, len(order))} probabilities", height=60 + 36 * len(order))


def faithfulness_figure(curves: dict[str, FaithfulnessCurves]) -> go.Figure:
    """Deletion (lower AUC is better) and insertion (higher is better) curves, one line per method."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Deletion: remove the top pixels first (lower = better)",
                                                        "Insertion: add the top pixels first (higher = better)"))
    for i, (name, c) in enumerate(curves.items()):
        color = fig.layout.template.layout.colorway[i % 8] if fig.layout.template.layout.colorway else None
        fig.add_trace(go.Scatter(x=c.fractions, y=c.deletion.mean(axis=0), name=f"{name} (AUC {c.deletion_auc:.3f})",
                                 mode="lines", legendgroup=name, line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=c.fractions, y=c.insertion.mean(axis=0), name=f"{name} (AUC {c.insertion_auc:.3f})",
                                 mode="lines", legendgroup=name, line=dict(color=color, dash="dot")), row=1, col=2)
    fig.update_xaxes(title="fraction of pixels", tickformat=".0%")
    fig.update_yaxes(title="probability of the class", range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    styled(fig, None, height=420)
    return fig


def sanity_figure(check: SanityCheck) -> go.Figure:
    """Rank correlation with the original map as more layers (from the output down) get random weights."""
    fig = go.Figure(go.Scatter(x=list(range(1, len(check.layers) + 1)), y=check.correlations, mode="lines+markers",
                               text=[f"random down to {name}" for name in check.layers],
                               hovertemplate="%{text}<br>Spearman ρ %{y:.3f}<extra></extra>", line=dict(color=POSITIVE)))
    fig.add_hline(y=0.5, line_dash="dash", line_color="#9aa5b1", annotation_text="a faithful map falls below this")
    fig.update_xaxes(title="layers randomised (from the output down)", tickvals=list(range(1, len(check.layers) + 1)),
                     ticktext=check.layers)
    fig.update_yaxes(title="Spearman ρ with the original map", range=[-1, 1.05])
    return styled(fig, f"Sanity check: does {check.method} depend on the weights?", height=380)

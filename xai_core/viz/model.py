"""Figures for the model & data page: confusion matrix, image grid, predictions vs truth, architecture."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from xai_core.datasets import ImageSet
from xai_core.evaluation import Evaluation, ModelSummary
from xai_core.viz import NEGATIVE, POSITIVE, SEQUENTIAL_COLORSCALE, image_trace, montage_height, styled


def confusion_matrix_figure(evaluation: Evaluation, normalize: bool = False) -> go.Figure:
    """Heatmap: rows are true classes, columns predicted; counts (and row shares) in each cell."""
    if evaluation.confusion is None:
        raise ValueError("This evaluation has no labels, so no confusion matrix.")
    counts = evaluation.confusion
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    z = shares if normalize else counts
    names = list(evaluation.class_names)
    text = [[f"{counts[i, j]}<br>{shares[i, j]:.0%}" for j in range(len(names))] for i in range(len(names))]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale=SEQUENTIAL_COLORSCALE,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>", showscale=False,
    ))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="bottom")
    size = max(320, 60 * len(names) + 140)
    return styled(fig, "Confusion matrix", height=size)


def predicted_vs_true_figure(evaluation: Evaluation, target_name: str = "target") -> go.Figure:
    """Regression: predicted against true values, with the identity line."""
    if evaluation.labels is None:
        raise ValueError("This evaluation has no labels.")
    y, p = evaluation.labels, evaluation.predictions
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    fig = go.Figure([
        go.Scatter(x=y, y=p, mode="markers", marker=dict(size=7, opacity=0.7, color=POSITIVE), name="rows",
                   hovertemplate="true %{x:.3g}<br>predicted %{y:.3g}<extra></extra>"),
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color=NEGATIVE), name="perfect"),
    ])
    fig.update_xaxes(title=f"true {target_name}")
    fig.update_yaxes(title=f"predicted {target_name}")
    return styled(fig, "Predicted vs true", height=420)


def image_grid_figure(data: ImageSet, class_names=(), predictions=None, max_images: int = 24, columns: int = 8) -> go.Figure:
    """A grid of images titled with their label and, when given, the model's prediction (✓ / ✗).

    Drawn as one montage image with text labels, which the browser renders far faster than one subplot per image.
    """
    n = min(len(data), max_images)
    columns = max(1, min(columns, n))
    rows = max(1, int(np.ceil(n / columns)))
    height, width = data.images.shape[1:3]
    gap, title_gap = max(2, width // 16), max(6, height // 4)  # room above each image for its title
    montage = np.full((rows * (height + title_gap), columns * (width + gap), 3), 255, dtype=np.uint8)
    fig = go.Figure()
    for i in range(n):
        image = data.images[i]
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        top, left = (i // columns) * (height + title_gap) + title_gap, (i % columns) * (width + gap)
        montage[top: top + height, left: left + width] = image
        parts = []
        if data.labels is not None and len(class_names):
            parts.append(str(class_names[data.labels[i]]))
        if predictions is not None and len(class_names):
            mark = "" if data.labels is None else (" ✓" if predictions[i] == data.labels[i] else " ✗")
            parts.append(f"→ {class_names[predictions[i]]}{mark}")
        title = " ".join(parts) or data.names[i].rsplit("/", 1)[-1][:16]
        wrong = data.labels is not None and predictions is not None and predictions[i] != data.labels[i]
        fig.add_annotation(x=left + width / 2, y=top - 1, text=title, showarrow=False, yanchor="bottom",
                           font=dict(size=11, color=POSITIVE if wrong else "#1f2933"))
    fig.add_trace(image_trace(montage))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[montage.shape[0], 0])
    fig.update_layout(margin=dict(l=0, r=0, t=24, b=0))
    return styled(fig, None, height=montage_height(montage.shape, columns, margins=40))


def architecture_figure(summary: ModelSummary) -> go.Figure:
    """Icicle of the module tree, sized by parameter count: where the model's weights live."""
    layers = summary.layers
    ids = ["(model)" if name == "(model)" else name for name in layers["layer"]]
    parents = ["" if name == "(model)" else (name.rsplit(".", 1)[0] if "." in name else "(model)") for name in ids]
    labels = [f"{name.rsplit('.', 1)[-1]} · {typ}" for name, typ in zip(ids, layers["type"])]
    values = [max(int(v), 0) for v in layers["parameters"]]
    fig = go.Figure(go.Icicle(
        ids=ids, parents=parents, labels=labels, values=values, branchvalues="total",
        customdata=np.stack([layers["output shape"], layers["parameters"]], axis=1),
        hovertemplate="%{id}<br>%{label}<br>parameters %{customdata[1]:,}<br>output %{customdata[0]}<extra></extra>",
        tiling=dict(orientation="v"), root_color="#eef2f7", maxdepth=3,
    ))
    return styled(fig, "Architecture (box size = parameters; click to zoom)", height=460)


def model_input_figure(images: np.ndarray, info, max_images: int = 4, bins: int = 60) -> go.Figure:
    """What the model sees: the first images as they enter it (resized), and the distribution of its input values per
    channel after normalisation — centred near 0 with spread near 1 when the normalisation fits the data.

    The distribution is counted here (one set of `bins` bins for all channels, overlaid) and sent as bars: the raw
    values of 64 shapes images are 786,432 numbers (5.6 MB to every session), their counts 60 per channel.
    """
    from plotly.subplots import make_subplots

    from xai_core.datasets import images_to_tensor

    n = min(len(images), max_images)
    shown = images[:n]
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    gap = max(2, shown.shape[2] // 16)
    montage = np.full((shown.shape[1], n * (shown.shape[2] + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        left = i * (shown.shape[2] + gap)
        montage[:, left: left + shown.shape[2]] = shown[i]
    x = images_to_tensor(images[: min(len(images), 64)], info).numpy()
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.08,
                        subplot_titles=(f"Input images, {info.image_size[0]}×{info.image_size[1]} ({info.resize})",
                                        "Input values after normalisation"))
    fig.add_trace(image_trace(montage), row=1, col=1)
    names = ("red", "green", "blue") if x.shape[1] == 3 else ("grey",)
    colors = ("#d7301f", "#17a398", "#2b6cb0") if x.shape[1] == 3 else ("#52606d",)
    edges = np.histogram_bin_edges(x[:, : len(names)].astype(float).ravel(), bins=bins)
    for c, (name, color) in enumerate(zip(names, colors)):
        values = x[:, c].ravel()
        counts, _ = np.histogram(values.astype(float), bins=edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=float(edges[1] - edges[0]),
                             name=f"{name}: mean {values.mean():.2f}, std {values.std():.2f}",
                             marker=dict(color=color), opacity=0.55,
                             hovertemplate="value %{x:.3g}: %{y} inputs<extra>%{fullData.name}</extra>"), row=1, col=2)
    fig.update_layout(barmode="overlay", bargap=0, legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_xaxes(title="value fed to the model", row=1, col=2)
    return styled(fig, None, height=330)


def preprocessing_check_figure(check) -> go.Figure:
    """Accuracy under each preprocessing convention tried, with 95% intervals; the one in use highlighted."""
    scores = check.scores[::-1]
    fig = go.Figure(go.Bar(
        x=[s.accuracy for s in scores], y=[s.label + ("  (in use)" if s.current else "") for s in scores],
        orientation="h", marker_color=[NEGATIVE if s.current else POSITIVE if s is check.better else "#9aa5b1"
                                       for s in scores],
        error_x=dict(type="data", symmetric=False, array=[s.interval[1] - s.accuracy for s in scores],
                     arrayminus=[s.accuracy - s.interval[0] for s in scores]),
        hovertemplate="%{y}: accuracy %{x:.3f}<extra></extra>"))
    fig.update_xaxes(title="accuracy on your labelled images", range=[0, 1.02])
    return styled(fig, None, height=max(200, 44 * len(scores) + 90))

"""Figures for surrogate models: the tree as a node-link diagram, fidelity by depth, local (LIME) coefficients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xai_core.surrogate import LocalSurrogate, SurrogateTree
from xai_core.viz import NEGATIVE, NEUTRAL, POSITIVE, styled


def _layout(tree) -> tuple[np.ndarray, np.ndarray]:
    """x: depth (root on the left); y: leaves one row apart top to bottom, inner nodes centred on their children."""
    t = tree.tree_
    x, y = np.zeros(t.node_count), np.zeros(t.node_count)
    next_leaf = [0]

    def place(node: int, depth: int) -> float:
        x[node] = depth
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            y[node] = next_leaf[0]
            next_leaf[0] += 1
        else:
            y[node] = (place(left, depth + 1) + place(right, depth + 1)) / 2
        return y[node]

    place(0, 0)
    return x, y


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


ROW_PX = 34  # vertical room per leaf: one line of node text never meets the next


def tree_figure(result: SurrogateTree, path: list[int] | None = None) -> go.Figure:
    """The tree drawn left to right, one row per leaf, so labels stay readable at any depth: each node's split rule (or
    its prediction at a leaf) beside it, samples and class shares or mean on hover; a row's path in red."""
    t = result.tree.tree_
    x, y = _layout(result.tree)
    on_path = set(path or [])
    edge_x, edge_y, path_x, path_y = [], [], [], []
    for node in range(t.node_count):
        for child in (t.children_left[node], t.children_right[node]):
            if child != -1:
                target_x, target_y = (path_x, path_y) if node in on_path and child in on_path else (edge_x, edge_y)
                # elbow connectors: across to the middle of the gap, to the child's row, then into the child
                target_x += [x[node], x[node] + 0.5, x[node] + 0.5, x[child], None]
                target_y += [y[node], y[node], y[child], y[child], None]
    labels, hovers, colors = [], [], []
    total = t.n_node_samples[0]
    # A rule's text fits in one and a half columns (the figure is about 1,000 px wide, 6.6 px per character at 11 px):
    # the node it would run into is its grandparent, at least a row away.
    column_chars = int(1.5 * 1000 / (x.max() + 1.9) / 6.6) - 1
    for node in range(t.node_count):
        value = t.value[node][0]
        if result.task == "classification":
            shares = value / value.sum()
            best = int(shares.argmax())
            outcome = f"{result.class_names[best]} ({shares[best]:.0%})"
            detail = "<br>".join(f"{name}: {s:.0%}" for name, s in zip(result.class_names, shares))
        else:
            outcome = f"{value[0]:.3g}"
            detail = f"mean model output {value[0]:.4g}"
        if t.children_left[node] == -1:
            labels.append(f"<b>{_short(outcome, 30)}</b> · {t.n_node_samples[node]}")
            rule = "leaf"
        else:
            name = result.feature_names[t.feature[node]]
            rule = f"{name} ≤ {t.threshold[node]:.4g}"
            bound = f" ≤ {t.threshold[node]:.3g}"
            labels.append(_short(name, max(4, min(26, column_chars - len(bound)))) + bound)
        hovers.append(f"{rule}<br>{t.n_node_samples[node]} samples ({t.n_node_samples[node] / total:.0%})<br>{detail}")
        colors.append(POSITIVE if node in on_path else ("#3366cc" if t.children_left[node] != -1 else "#17a398"))
    inner = t.children_left != -1
    leaf = ~inner
    root = np.arange(t.node_count) == 0
    # Labels sit where no other node's can: a leaf's outcome to its right (no node is right of a leaf on its row); an
    # inner node's rule above the line that leads into it (its parent is half a row or more away); the root's to its
    # right (nothing leads into it).
    groups = [(inner & ~root, "top left"), (root, "top right"), (leaf, "middle right")]
    fig = go.Figure([
        go.Scatter(x=edge_x, y=edge_y, mode="lines", line=dict(color=NEUTRAL, width=1.5), hoverinfo="skip", showlegend=False),
        go.Scatter(x=path_x, y=path_y, mode="lines", line=dict(color=POSITIVE, width=4), hoverinfo="skip", showlegend=False),
        *[go.Scatter(x=x[mask], y=y[mask], mode="markers+text", text=np.array(labels, dtype=object)[mask],
                     textposition=position, hovertext=np.array(hovers, dtype=object)[mask], hoverinfo="text",
                     marker=dict(size=13, color=np.array(colors, dtype=object)[mask], line=dict(color="white", width=2)),
                     textfont=dict(size=11), showlegend=False, cliponaxis=False)
          for mask, position in groups if mask.any()],
    ])
    n_leaves = int(leaf.sum())
    fig.update_xaxes(visible=False, range=[-0.3, x.max() + 1.6])
    fig.update_yaxes(visible=False, range=[n_leaves - 0.3, -0.9])
    fig.add_annotation(x=0, y=1.0, xref="paper", yref="paper", showarrow=False, xanchor="left", yanchor="bottom",
                       text="upper branch: rule true · lower branch: rule false · leaf: prediction · samples",
                       font=dict(size=11, color="#52606d"))
    return styled(fig, None, height=int(ROW_PX * max(n_leaves, 4) + 110))


def fidelity_curve_figure(curve: pd.DataFrame, fidelity_name: str) -> go.Figure:
    """Held-out fidelity against tree depth, plain fit and augmented, with 95% intervals."""
    fig = go.Figure()
    for (fit, part), color in zip(curve.groupby("fit"), (POSITIVE, NEGATIVE)):
        fig.add_trace(go.Scatter(x=part["depth"], y=part["fidelity"], mode="lines+markers", name=fit, line=dict(color=color),
                                 error_y=dict(type="data", symmetric=False, array=part["high"] - part["fidelity"],
                                              arrayminus=part["fidelity"] - part["low"]),
                                 customdata=part["leaves"],
                                 hovertemplate="depth %{x}: %{y:.3f} (%{customdata} leaves)<extra>" + fit + "</extra>"))
    fig.update_xaxes(title="tree depth", dtick=1)
    fig.update_yaxes(title=f"held-out {fidelity_name}")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return styled(fig, "How deep must the tree be to mimic the model?", height=380)


def local_coefficients_figure(local: LocalSurrogate, shap_row: np.ndarray | None = None, top_k: int = 12) -> go.Figure:
    """LIME coefficients (per standard deviation of each feature), largest magnitude on top; SHAP beside them if given."""
    order = np.argsort(-np.abs(local.coefficients))[:top_k][::-1]
    names = [local.feature_names[i] for i in order]
    fig = go.Figure(go.Bar(x=local.coefficients[order], y=names, orientation="h", name="LIME (per 1 std)",
                           marker_color=[POSITIVE if c > 0 else NEGATIVE for c in local.coefficients[order]]))
    if shap_row is not None:
        fig.add_trace(go.Bar(x=np.asarray(shap_row)[order], y=names, orientation="h", name="SHAP value",
                             marker_color="#9aa5b1"))
        fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title=f"effect on {local.output_name}")
    return styled(fig, "Local linear surrogate (LIME)", height=max(320, 30 * len(names) + 120))

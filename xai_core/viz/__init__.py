"""Plotly figure builders: pure functions from result objects to `go.Figure`. No Streamlit here.

One look for every page: `TEMPLATE` (applied per figure, never globally) and one diverging colour
scale for attributions, negative blue / positive red, centred on zero.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

# plotly_white, less its defaults for 3-D, geographic, polar, ternary and carpet traces and subplots: none of these
# figures has them, yet they were copied and validated into every figure (~6 ms each) and sent in its JSON (3 kB).
_TRACE_DEFAULTS = ("bar", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "contour", "scatter", "scattergl")
_UNUSED_SUBPLOTS = ("geo", "polar", "ternary", "scene", "mapbox", "map")
TEMPLATE = go.layout.Template(layout={k: v for k, v in pio.templates["plotly_white"].layout.to_plotly_json().items()
                                      if k not in _UNUSED_SUBPLOTS},
                              data={k: v for k, v in pio.templates["plotly_white"].data.to_plotly_json().items()
                                    if k in _TRACE_DEFAULTS})
TEMPLATE.layout.font = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13, color="#1f2933")
TEMPLATE.layout.title = dict(font=dict(size=16), x=0, xanchor="left")
TEMPLATE.layout.margin = dict(l=10, r=10, t=48, b=10)
TEMPLATE.layout.colorway = ["#3366cc", "#e4572e", "#17a398", "#f3a712", "#8e5572", "#4c6085", "#a8c256", "#29335c"]

POSITIVE = "#d7301f"
NEGATIVE = "#2b6cb0"
NEUTRAL = "#9aa5b1"
# Diverging attribution scale: negative → blue, zero → white, positive → red.
ATTRIBUTION_COLORSCALE = [[0.0, "#2b6cb0"], [0.25, "#90b4dd"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
SEQUENTIAL_COLORSCALE = "Blues"


def styled(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the house template (and optionally a title and height) to one figure."""
    fig.update_layout(template=TEMPLATE)
    if title is not None:
        fig.update_layout(title_text=title)
    if height is not None:
        fig.update_layout(height=height)
    return fig


def montage_height(montage_shape: tuple, columns: int, margins: int, max_height: int = 2400) -> int:
    """Figure height at which a montage of `columns` images fills the page's width without empty bands above and below.

    Plotly keeps image pixels square, so a figure taller than the montage drawn at the page's width shows white bands.
    The height is computed for the main column of a 1440-px-wide window (about 900 px), each image at most 360 px
    wide: in a wider window the montage is centred with white at its sides instead.
    """
    width = min(900, 360 * columns)
    return int(min(montage_shape[0] * width / montage_shape[1], max_height) + margins)


def image_trace(rgb: np.ndarray, **kwargs) -> go.Image:
    """An RGB uint8 image as a Plotly image trace carrying one PNG (`source`), drawn pixel for pixel like `z=rgb`.

    `z` would send every pixel value as JSON text (a 240×544 montage: 1.2 MB, parsed and drawn by the browser on every
    page visit); the PNG of the same pixels is a few tens of kB.
    """
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"Expected an (height, width, 3) uint8 RGB image, got shape {rgb.shape} of {rgb.dtype}.")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=False, compress_level=6)
    kwargs.setdefault("hoverinfo", "skip")
    return go.Image(source="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), **kwargs)

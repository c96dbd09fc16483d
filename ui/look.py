"""The common look of every page: header with the question it answers, errors, downloads."""

from __future__ import annotations

import contextlib
import functools
import html
import io

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from xai_core import XaiError

# Material icons come with Streamlit's own font, so they render where no emoji font is installed.
ICON_INFO = ":material/info:"
ICON_WARNING = ":material/warning:"
ICON_SLOW = ":material/hourglass_bottom:"
ICON_DOWNLOAD = ":material/download:"


def page_header(title: str, question: str) -> None:
    st.title(title)
    st.markdown(f"<p style='font-size:1.1rem;color:#52606d;margin-top:-0.6rem'>{question}</p>", unsafe_allow_html=True)


def card(title: str, question: str | None = None) -> None:
    st.subheader(title)
    if question:
        st.caption(question)


@contextlib.contextmanager
def user_errors():
    """Show a user-caused `XaiError` as a red box; the rest of the page keeps running."""
    try:
        yield
    except XaiError as exc:
        st.error(str(exc), icon=ICON_WARNING)


def offline_figure_html(fig: go.Figure) -> str:
    """The figure as one HTML page that opens with no network: plotly.js (about 4.8 MB) inlined, no CDN."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def figure(fig: go.Figure, how_to_read: str | None = None, key: str | None = None, download_name: str | None = None) -> None:
    """A full-width Plotly figure, a line on how to read it, and a download of it as an offline HTML page.

    The page is built only when the button is clicked (Streamlit calls `data` then, on its own thread), so a rerun
    never serialises the figure or copies plotly.js.
    """
    st.plotly_chart(fig, width="stretch", theme=None, key=key, config={"displaylogo": False})
    cols = st.columns([5, 1], vertical_alignment="center")
    if how_to_read:
        cols[0].caption(how_to_read)
    if download_name:
        cols[1].download_button("HTML", functools.partial(offline_figure_html, fig),
                                file_name=f"{download_name}.html", mime="text/html", key=f"dl-{key or download_name}",
                                icon=ICON_DOWNLOAD)


def table_download(frame: pd.DataFrame, name: str, label: str = "CSV") -> None:
    st.download_button(label, frame.to_csv(index=False).encode(), file_name=f"{name}.csv", mime="text/csv",
                       key=f"dl-{name}", icon=ICON_DOWNLOAD)


def facts(items: dict[str, str]) -> None:
    """Key facts in a row that wraps instead of cutting values short (st.metric truncates long values)."""
    cells = "".join(
        f"<div style='min-width:8rem'><div style='font-size:0.85rem;color:#52606d'>{html.escape(k)}</div>"
        f"<div style='font-size:1.35rem;line-height:1.4;overflow-wrap:anywhere'>{html.escape(v)}</div></div>"
        for k, v in items.items())
    st.markdown(f"<div style='display:flex;flex-wrap:wrap;gap:0.4rem 2.6rem;margin:0.2rem 0 0.8rem'>{cells}</div>",
                unsafe_allow_html=True)


def png_bytes(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()

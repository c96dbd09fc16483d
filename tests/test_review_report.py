"""report.html: one self-contained file (plotly.js inlined once, no network), every user string escaped."""

import re
from pathlib import Path

import pytest

from xai_core.demo import ASSETS, demo_model_bytes
from xai_core.data_loading import load_data
from xai_core.quantization import VariantSpec
from xai_core.report import render_report, write_report
from xai_core.review import ModelSource, ReviewSettings, load_review, run_review

HOSTILE_CLASS = "<script>alert(1)</script>"
HOSTILE_FILE = "<b>evil</b>.pt2"


def hostile_wine_review(out: Path):
    """The wine demo with a class named like a script and a file name with markup; every table analysis."""
    model_bytes, sidecar = demo_model_bytes("wine")
    source = ModelSource(model_bytes, HOSTILE_FILE, sidecar,
                         overrides={"class_names": [HOSTILE_CLASS, "class_1", "class_2"]})
    model = source.load()
    table = (ASSETS / "wine_test.csv").read_text().replace("class_0", HOSTILE_CLASS)
    train = (ASSETS / "wine_train.csv").read_text().replace("class_0", HOSTILE_CLASS)
    data = load_data([("wine_test.csv", table.encode())], model.info)
    background = load_data([("wine_train.csv", train.encode())], model.info)
    settings = ReviewSettings(shard_size=16, quantization=(VariantSpec("weights", 4),))
    review = run_review(model, data, out, settings, background=background, source=source)
    write_report(review, out / "report.html")
    return review


def shapes_review(out: Path):
    model_bytes, sidecar = demo_model_bytes("shapes")
    source = ModelSource(model_bytes, "shapes.pt2", sidecar)
    model = source.load()
    data = load_data([("shapes_test.zip", (ASSETS / "shapes_test.zip").read_bytes())], model.info)
    review = run_review(model, data, out, ReviewSettings(analyses=("images",), shard_size=8, max_rows=16), source=source)
    write_report(review, out / "report.html")
    return review


@pytest.fixture(scope="module")
def wine_html(tmp_path_factory):
    review = hostile_wine_review(tmp_path_factory.mktemp("wine"))
    return review, (review.path / "report.html").read_text()


def test_report_is_self_contained(wine_html):
    from plotly.offline import get_plotlyjs

    review, html = wine_html
    plotly_js = get_plotlyjs()
    assert html.count(plotly_js[:2000]) == 1  # inlined once, not per figure
    assert html.count("class=\"plotly-graph-div\"") >= 5  # confusion, bar, beeswarm, waterfall, tree
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert not re.search(r"<link\b", html, re.I)
    assert not re.search(r"<img[^>]*src\s*=\s*['\"](?!data:)", html, re.I)
    rest = html.replace(plotly_js, "")  # plotly.js itself names URLs it never fetches unless asked (topojson)
    assert "cdn.plot.ly" not in rest and "@import" not in rest and "fonts.googleapis" not in rest
    assert len(html.encode()) < 6_000_000


def test_every_user_string_is_escaped(wine_html):
    review, html = wine_html
    assert HOSTILE_CLASS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the model card, tables and rules as text
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;.pt2" in html
    scripts = re.findall(r"<script\b", html, re.I)
    assert len(scripts) == 1 + html.count("class=\"plotly-graph-div\"")  # plotly.js + one per figure, nothing else


def test_report_holds_every_section(wine_html):
    review, html = wine_html
    for heading in ("Model card", "How well does it do?", "Which features drive the model?",
                    "Which simple rules reproduce its decisions?", "What changes with fewer bits?",
                    "Explanation drift", "Manifest"):
        assert f">{heading}<" in html
    ev = review.evaluation
    assert f"{ev.score:.3f}" in html and f"{ev.score_interval[0]:.3f} – {ev.score_interval[1]:.3f}" in html
    assert f"{review.surrogate.fidelity:.3f}" in html
    assert "w4 per-channel" in html and review.manifest["data_sha256"] in html
    assert review.manifest["environment"]["cpu"] in html


def test_image_review_report_has_the_gallery(tmp_path):
    review = shapes_review(tmp_path)
    html = render_report(load_review(tmp_path))
    assert html.count("src='data:image/png;base64,") == 16
    assert "Grad-CAM" in html and ">Where does the model look?<" in html

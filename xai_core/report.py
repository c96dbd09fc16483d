"""report.html: one self-contained file of a stored review that opens with no network; report.pdf printed from it.

plotly.js is inlined once in the head; each figure is a `<div>` drawn by it. Images are PNG data URIs. No CDN, no
external font, script or stylesheet. Every string that came from a user (file, feature, class names, notes) is
escaped with `html.escape`.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xai_core.errors import XaiError
from xai_core.review.store import Review, atomic_write

GALLERY_IMAGES = 24
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2933;margin:2rem auto;
max-width:1200px;padding:0 1.5rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.4rem;border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
.question{color:#52606d;margin-top:0}.facts{display:flex;flex-wrap:wrap;gap:.4rem 2.6rem;margin:.4rem 0 1rem}
.facts div div:first-child{font-size:.85rem;color:#52606d}.facts div div:last-child{font-size:1.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}td,th{border:1px solid #d9e2ec;padding:.25rem .5rem;
text-align:left;vertical-align:top}pre{background:#f5f7fa;padding:.8rem;overflow-x:auto;font-size:.8rem}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:.6rem}
.gallery figure{margin:0}.gallery img{width:100%;image-rendering:pixelated}.gallery figcaption{font-size:.75rem}
.wrong{color:#c0392b}.caption{font-size:.85rem;color:#52606d}.figure{page-break-inside:avoid}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def render_report(review: Review) -> str:
    """The report of a stored review as one HTML string."""
    from plotly.offline import get_plotlyjs

    manifest = review.manifest
    model = manifest["model"]
    body = [f"<h1>Review of {esc(model['file'])}</h1>",
            f"<p class='question'>{esc(manifest['data']['n_items'])} {esc(manifest['data']['kind'])} items, written "
            f"{esc(_when(manifest))}. Every number below was computed by xai_core with the settings in the manifest.</p>"]
    if review.missing:
        body.append(f"<p class='wrong'>Unfinished parts (rerun the same command to finish them): "
                    f"{esc(', '.join(review.missing))}.</p>")
    body += _model_card(manifest)
    body += _evaluation(review)
    body += _gallery(review)
    body += _shap(review)
    body += _surrogate(review)
    body += _quantization(review)
    body += ["<h2>Manifest</h2>", "<p class='question'>Model and data SHA-256, every setting and seed, library "
             "versions, CPU and timings.</p>", f"<pre>{esc(json.dumps(manifest, indent=2))}</pre>"]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Review of {esc(model['file'])}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>" + "\n".join(body)
            + "</body></html>")


def write_report(review: Review, path) -> Path:
    path = Path(path)
    atomic_write(path, render_report(review).encode("utf-8"))
    return path


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def write_pdf(html_path, pdf_path) -> Path:
    """Print report.html to PDF with Debian's headless Chromium (Playwright), with every network request refused."""
    executable = chromium_path()
    if executable is None:
        raise XaiError("Printing the PDF needs Chromium: apt-get install -y chromium (or set CHROMIUM=/path).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise XaiError("Printing the PDF needs Playwright: pip install playwright.") from None
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            page.goto(html_path.as_uri(), wait_until="load")
            page.wait_for_function("() => Array.from(document.querySelectorAll('.plotly-graph-div'))"
                                   ".every(d => d.querySelector('.main-svg'))")
            data = page.pdf(format="A4", print_background=True, margin={"top": "12mm", "bottom": "12mm",
                                                                         "left": "10mm", "right": "10mm"})
        finally:
            browser.close()
    atomic_write(pdf_path, data)
    return pdf_path


# ---------------------------------------------------------------------------------------- sections


def _when(manifest: dict) -> str:
    created = manifest.get("created_unix")
    if not created:
        return "at an unknown time"
    return datetime.datetime.fromtimestamp(created, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figure(fig: go.Figure, how_to_read: str) -> str:
    return (f"<div class='figure'>{fig.to_html(full_html=False, include_plotlyjs=False)}"
            f"<p class='caption'>{esc(how_to_read)}</p></div>")


def _facts(items: dict) -> str:
    cells = "".join(f"<div><div>{esc(k)}</div><div>{esc(v)}</div></div>" for k, v in items.items())
    return f"<div class='facts'>{cells}</div>"


def _table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return frame.to_html(index=False, escape=True, na_rep="", border=0,
                         float_format=lambda v: float_format.format(v))


def _model_card(manifest: dict) -> list[str]:
    model = manifest["model"]
    info = model["info"]
    rows = [(k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in info.items() if v not in (None, "")]
    parts = ["<h2>Model card</h2>", "<p class='question'>What model is this, and what did the dashboard have to "
             "assume about it?</p>",
             _facts({"file": model["file"], "format": model["format"], "size": f"{model['size_bytes'] / 1e6:.2f} MB",
                     "parameters": f"{model['n_parameters']:,}", "task": info.get("task"),
                     "input": info.get("input_kind")}),
             _table(pd.DataFrame(rows, columns=["field", "value"]))]
    if model.get("assumed"):
        parts.append("<p><b>Assumed, not declared</b> (check these against how the model was trained):</p>")
        parts.append(_table(pd.DataFrame(list(model["assumed"].items()), columns=["field", "why it is a guess"])))
    else:
        parts.append("<p>Nothing was assumed: every preprocessing value was declared in the sidecar or the file.</p>")
    parts += [f"<p class='caption'>{esc(note)}</p>" for note in model.get("notes", [])]
    return parts


def _evaluation(review: Review) -> list[str]:
    from xai_core.viz.model import confusion_matrix_figure, predicted_vs_true_figure

    ev = review.evaluation
    parts = ["<h2>How well does it do?</h2>"]
    if ev is None:
        return parts + ["<p>Not computed yet.</p>"]
    if ev.score is None:
        return parts + [f"<p>The data carry no labels: {ev.n_rows} predictions, no score.</p>"]
    low, high = ev.score_interval
    facts = {ev.score_name: f"{ev.score:.3f}", "95% interval": f"{low:.3f} – {high:.3f}", "items": f"{ev.n_rows}"}
    if "mae" in ev.extra:
        facts["MAE"] = f"{ev.extra['mae']:.4g}"
    parts.append(_facts(facts))
    settings = review.manifest["settings"]
    how = (f"Interval: percentile bootstrap over the items ({settings['n_bootstrap']} resamples, seed "
           f"{settings['seed']}).")
    if ev.confusion is not None:
        parts.append(_figure(confusion_matrix_figure(ev), "Rows are the true class, columns the predicted one; the "
                             "diagonal holds the right answers. " + how))
    else:
        parts.append(_figure(predicted_vs_true_figure(ev, review.manifest["model"]["info"].get("target_name")
                                                      or "target"), "Each dot is one row; on the line = exact. " + how))
    return parts


def _png_uri(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gallery(review: Review) -> list[str]:
    from xai_core.viz.image import overlay

    if review.images is None:
        return []
    images = review.images
    class_names = review.manifest["model"]["info"].get("class_names") or []
    name_of = (lambda j: class_names[int(j)] if 0 <= int(j) < len(class_names) else str(j))
    table = images.table
    n = min(GALLERY_IMAGES, len(table))
    parts = ["<h2>Where does the model look?</h2>",
             f"<p class='question'>The first {n} of {len(table)} images, each with its map for the predicted class "
             "(title: true → predicted; red = wrong). All maps are stored in the review's shards.</p>"]
    for method, explanation in images.explanations.items():
        cells = []
        for i in range(n):
            predicted = name_of(table["prediction"].iloc[i])
            truth = name_of(table["label"].iloc[i]) if "label" in table else None
            wrong = truth is not None and truth != predicted
            title = f"{truth} → {predicted}" if truth is not None else predicted
            cells.append(f"<figure><img alt='{esc(table['name'].iloc[i])}' "
                         f"src='{_png_uri(overlay(images.images[i], explanation.maps[i], explanation.signed))}'>"
                         f"<figcaption class='{'wrong' if wrong else ''}'>{esc(title)}<br>{esc(table['name'].iloc[i])}"
                         "</figcaption></figure>")
        layer = f" (layer {explanation.layer})" if explanation.layer else ""
        parts += [f"<h3>{esc(explanation.method_name)}{esc(layer)}</h3>", f"<div class='gallery'>{''.join(cells)}</div>"]
        parts += [f"<p class='caption'>{esc(note)}</p>" for note in explanation.notes]
    return parts


def _shap(review: Review) -> list[str]:
    from xai_core.viz.importance import beeswarm_figure, shap_bar_figure, waterfall_figure

    result = review.shap
    if result is None:
        return []
    output = 1 if len(result.output_names) == 2 else 0
    method = ("exact Shapley values (all 2^d coalitions)" if result.is_exact else
              f"sampled Shapley values (antithetic permutations, at most {result.settings.n_permutations} per row, "
              f"until the relative standard error is {result.settings.target_relative_se:.1%}; error bars = "
              "standard error)")
    baseline = {"mean": "the mean row", "kmeans": "k-means background rows", "random": "random background rows",
                "given": "the given rows"}.get(result.background.kind, result.background.kind)
    source = "the training rows" if review.manifest["data"].get("background_rows") else "the reviewed rows"
    assumes = f"Absent features take the values of {baseline} of {source}. Method: {method}."
    gap = result.efficiency_gap
    top = result.global_importance(output).head(15)
    return [
        "<h2>Which features drive the model?</h2>",
        f"<p class='question'>Over all {len(result.rows)} reviewed rows, for {esc(result.output_names[output])}.</p>",
        _figure(shap_bar_figure(result, output), "Longer bar = the feature moves this output more on average. " + assumes),
        _figure(beeswarm_figure(result, output), "Each dot is one row. Right of the line = the feature pushed this "
                "output up; colour is the feature's value (red high, blue low)."),
        f"<p class='caption'>Efficiency check: base value + sum of SHAP values = f(x) for every row, largest gap "
        f"{gap:.2e}.</p>",
        _table(top),
        "<h3>One row: the first reviewed row</h3>",
        _figure(waterfall_figure(result, 0, output), "Start from the base value (the average output over the "
                "baseline), add each feature's SHAP value, and arrive at the model's output for this row."),
    ] + [f"<p class='caption'>{esc(note)}</p>" for note in result.notes]


def _surrogate(review: Review) -> list[str]:
    from xai_core.viz.tree import tree_figure

    result = review.surrogate
    if result is None:
        return []
    low, high = result.fidelity_interval
    facts = {"fidelity": f"{result.fidelity:.3f}", "95% interval": f"{low:.3f} – {high:.3f}",
             "held-out rows": f"{len(result.holdout_index)}", "leaves": f"{result.tree.get_n_leaves()}"}
    if result.model_score is not None:
        facts[f"model {result.score_name}"] = f"{result.model_score:.3f}"
        facts[f"tree {result.score_name}"] = f"{result.tree_score:.3f}"
    s = result.settings
    return ["<h2>Which simple rules reproduce its decisions?</h2>",
            f"<p class='question'>A depth-{s.max_depth} decision tree fitted on the model's own answers; fidelity = "
            f"{esc(result.fidelity_name)} on held-out real rows.</p>", _facts(facts),
            _figure(tree_figure(result), "Read from the left: at each node take the upper branch if the rule holds, "
                    f"the lower one if not. Fitted on {len(result.fit_index)} real rows + {result.n_synthetic} synthetic "
                    f"points (noise {s.noise} std, min {s.min_samples_leaf} samples per leaf, seed {s.seed})."),
            "<h3>The rules as text</h3>", f"<pre>{esc(result.rules)}</pre>"] + [
        f"<p class='caption'>{esc(note)}</p>" for note in result.notes]


def _quantization(review: Review) -> list[str]:
    frame = review.quantization
    if frame is None:
        return []
    facts = review.quantization_facts
    parts = ["<h2>What changes with fewer bits?</h2>",
             f"<p class='question'>Each variant against fp32 on the same {esc(facts.get('n_rows'))} items, timed in "
             "the same run.</p>", _table(frame)]
    known = ("variant", "drift method", "Δ ", "agreement", "mean KL", "MSE", "size", "ms /", "fp32 ms", "speedup")
    score_name = facts.get("score_name")
    drift = [c for c in frame.columns if not str(c).startswith(known) and c != score_name]
    if drift:
        summary = frame[["variant", *drift] + (["drift method"] if "drift method" in frame else [])]
        parts += ["<h3>Explanation drift</h3>", "<p class='question'>How far each variant's explanations move from "
                  "fp32's (1 = identical).</p>", _table(summary)]
    for label, why in (facts.get("errors") or {}).items():
        parts.append(f"<p class='wrong'>{esc(label)} could not be built: {esc(why)}</p>")
    return parts + _flip_sets(review.audit)


def _flip_sets(audit: pd.DataFrame | None, top: int = 20) -> list[str]:
    """The compression audit's flip sets: per variant, the samples to review first (flips, then moved explanations)."""
    if audit is None or audit.empty:
        return []
    parts = ["<h3>Flip sets: the samples to review</h3>", "<p class='question'>Per variant, the samples whose prediction "
             "flips, then those whose explanation moved most (top-k overlap with fp32's), ranked (Hooker et al. 2020: "
             "a compressed model's errors concentrate on a few samples).</p>"]
    for variant, rows in audit.groupby("variant", sort=False):
        chosen = rows[rows["in_audit_set"]]
        parts.append(f"<p><b>{esc(variant)}</b>: {int(rows['flipped'].sum())} flipped, "
                     f"{int((rows['reason'] == 'explanation moved').sum())} of {int(rows['explained'].sum())} explained "
                     f"samples moved ({esc(rows['method'].iloc[0])}).</p>")
        if len(chosen):
            columns = ["rank", "sample", "class", "fp32 prediction", "variant prediction", "reason", "score drop",
                       "top-k overlap", "rank correlation"]
            parts.append(_table(chosen[columns].head(top)))
    return parts

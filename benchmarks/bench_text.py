"""Text explanations on the text demos: milliseconds per document per method, the share of planted evidence words
recovered, faithfulness (AOPC), and agreement between Integrated Gradients, leave-one-word-out and Shapley values.

Run: `python benchmarks/bench_text.py [n_documents]` (default 60 held-out documents per demo).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_section  # noqa: E402
from xai_core.attribution.text import METHODS, IntegratedGradientsTextSettings, ShapleyTextSettings, explain_text  # noqa: E402
from xai_core.demo import load_demo  # noqa: E402
from xai_core.text.evaluation import aopc, evidence_share, rank_agreement  # noqa: E402

SETTINGS = {"integrated_gradients": IntegratedGradientsTextSettings(n_steps=32),
            "shapley": ShapleyTextSettings(n_permutations=256, target_relative_se=0.05)}


def main(n_docs: int = 60) -> None:
    import torch

    torch.set_num_threads(2)
    lines = ["## Text explanations (`benchmarks/bench_text.py`)", "", f"Machine: {machine()}", "",
             f"First {n_docs} held-out documents of the planted-evidence corpus (8–32 words, 1–3 planted words each), "
             "each explained for its predicted class in probability space. Evidence share: of a document's m planted "
             "words, the share among its m top-ranked words (goal ≥ 0.9). AOPC over the top 10/20/30/50 % of words "
             "(comprehensiveness: higher is better, a random order in brackets; sufficiency: lower is better). "
             "Shapley: exact up to 14 words, else antithetic sampling (≤ 256 permutations, stop at 5 % relative SE). "
             "Wall-clock times on a shared machine (load average 7–12 on 2 cores during this run, so absolute times are several times what an idle machine gives): compare methods within one run.", "",
             "| demo | method | ms / document | evidence share | comprehensiveness (random) | sufficiency |",
             "|---|---|---|---|---|---|"]
    agreement_lines = ["", "Agreement (Spearman rank correlation of word values per document, mean ± SE):", "",
                       "| demo | IG vs leave-one-out | IG vs Shapley | leave-one-out vs Shapley |", "|---|---|---|---|"]
    for key in ("text_bilstm", "text_transformer"):
        model, data = load_demo(key)
        subset = data.subset(range(min(n_docs, len(data))))
        results = {}
        for method in METHODS:
            start = time.perf_counter()
            result = explain_text(model, subset, method, SETTINGS.get(method))
            ms = 1000 * (time.perf_counter() - start) / len(subset)
            results[method] = result
            share = np.nanmean(evidence_share(result, subset.evidence))
            faith = aopc(model, result).summary()
            lines.append(f"| {key} | {result.method} | {ms:.1f} | {share:.3f} | {faith['comprehensiveness']:.3f} "
                         f"({faith['random_comprehensiveness']:.3f}) | {faith['sufficiency']:.3f} |")
            print(lines[-1], flush=True)
        cells = []
        for a, b in (("integrated_gradients", "occlusion"), ("integrated_gradients", "shapley"), ("occlusion", "shapley")):
            rho = rank_agreement(results[a], results[b])
            rho = rho[np.isfinite(rho)]
            cells.append(f"{rho.mean():.3f} ± {rho.std(ddof=1) / np.sqrt(len(rho)):.3f}")
        agreement_lines.append(f"| {key} | " + " | ".join(cells) + " |")
    write_section("text", "\n".join(lines + agreement_lines))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("documents", type=int, nargs="?", default=60, help="documents per demo (default 60)")
    main(parser.parse_args().documents)

"""Compression audit: hand-made flip sets, closed-form agreement, bootstrap intervals against scipy, the verdict's
definition of "holds", and a planted corner-mark shortcut on the shapes demo that the audit must rank first."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from xai_core import XaiError
from xai_core.datasets import ImageSet, TableSet
from xai_core.demo import load_demo_data, load_demo_model
from xai_core.evaluation import model_inputs
from xai_core.model import LoadedModel, ModelInfo
from xai_core.quantization import ComparisonSettings, Variant, VariantSpec, prepare_comparison
from xai_core.quantization.audit import (AuditExplainer, AuditSettings, BitsAudit, audit_built_variants,
                                         audit_variants, flip_set, group_drift, leave_one_feature_out, lowest_holding,
                                         mean_with_interval)


def one_hot(classes, k=3, p=0.8):
    out = np.full((len(classes), k), (1 - p) / (k - 1))
    out[np.arange(len(classes)), classes] = p
    return out


# ---------------------------------------------------------------------------------------- the flip set by hand


def test_hand_made_flip_set_ranks_flips_then_moved_explanations():
    names = ["a", "b", "c"]
    fp32 = one_hot([0, 1, 2, 0, 1, 2], p=0.9)
    variant = fp32.copy()
    variant[1] = [0.6, 0.3, 0.1]  # flips 1 → 0, p(fp32's class) 0.9 → 0.3: drop 0.6
    variant[4] = [0.05, 0.45, 0.5]  # flips 1 → 2, drop 0.45
    labels = np.array([0, 1, 2, 0, 1, 1])
    explained = np.array([0, 1, 2, 3])
    rho = np.array([0.9, 0.1, 0.2, 0.95])
    overlap = np.array([0.9, 0.2, 0.3, 0.4])  # sample 2: moved (0.3 < 0.5); sample 3: moved (0.4)
    fs = flip_set("v", ["s0", "s1", "s2", "s3", "s4", "s5"], fp32, variant, labels, names, explained, rho, overlap,
                  moved_overlap=0.5)
    # flips by drop (s1 0.6, s4 0.45), then explained unflipped by overlap: s2 0.3, s3 0.4, s0 0.9; s5 is neither
    assert list(fs.frame["sample"]) == ["s1", "s4", "s2", "s3", "s0"]
    assert list(fs.frame["rank"]) == [1, 2, 3, 4, 5]
    assert list(fs.frame["reason"]) == ["prediction flips", "prediction flips", "explanation moved",
                                        "explanation moved", ""]
    assert list(fs.audit_set["sample"]) == ["s1", "s4", "s2", "s3"]
    assert fs.n_flipped == 2 and fs.n_moved == 2 and fs.share == pytest.approx(2 / 6)
    assert fs.frame.loc[0, "score drop"] == pytest.approx(0.6)
    assert fs.frame.loc[0, "variant prediction"] == "a"
    per_class = fs.per_class.set_index("class")
    assert per_class.loc["b", "samples"] == 3 and per_class.loc["b", "flipped"] == 2  # labels: s1, s4, s5
    assert per_class.loc["b", "flipped share"] == pytest.approx(2 / 3)
    assert per_class.loc["c", "explanation moved"] == 1 and per_class.loc["c", "moved share"] == pytest.approx(1.0)
    assert per_class.loc["a", "moved share"] == pytest.approx(1 / 2)  # s0 kept, s3 moved
    assert per_class.index[0] == "b"  # the class with the largest flipped share first


def test_no_flips_and_identical_explanations_give_an_empty_audit_set():
    fp32 = one_hot([0, 1, 2])
    fs = flip_set("v", ["x", "y", "z"], fp32, fp32.copy(), np.array([0, 1, 2]), ["a", "b", "c"], np.arange(3),
                  np.ones(3), np.ones(3))
    assert fs.n_flipped == 0 and fs.n_moved == 0 and fs.audit_set.empty
    assert len(fs.frame) == 3  # explained samples are still listed, with their scores


def test_flip_set_refuses_mismatched_rows():
    with pytest.raises(XaiError, match="one row per sample"):
        flip_set("v", ["x"], one_hot([0, 1]), one_hot([0, 1]), np.array([0, 1]), ["a", "b", "c"])


# ---------------------------------------------------------------------------------------- closed-form agreement


def test_agreement_matches_closed_form_spearman_and_top_k():
    explainer = AuditExplainer("tabular", "perturbation", "leave-one-feature-out", top_k=2)
    a = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    b = np.array([[2.0, 1.0, 3.0, 5.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    rho, overlap = explainer.agreement(a, b)
    # ρ = 1 − 6 Σd² / (n(n² − 1)): d = (1, 1, 0, 1, 1) → 1 − 24/120 = 0.8; reversed ranks → −1
    assert rho == pytest.approx([0.8, -1.0])
    # top-2 of |a| = {4, 3} (indices), of |b| = {3, 4} → 1; reversed: {0, 1} vs {3, 4} → 0
    assert overlap == pytest.approx([1.0, 0.0])
    # tables compare magnitudes: a sign flip keeps the top-k
    _, overlap = explainer.agreement(a[:1], -a[:1])
    assert overlap == pytest.approx([1.0])


def test_image_top_share_overlap_on_a_known_map():
    explainer = AuditExplainer("image", "gradient", "Grad-CAM", top_k=0.25)
    a = np.arange(16, dtype=float).reshape(1, 4, 4)  # top 25% = the last 4 pixels
    b = a.copy()
    b[0, 3, :2] = -1  # two of them pushed to the bottom; pixels 10, 11 enter the top 4
    _, overlap = explainer.agreement(a, b)
    assert overlap == pytest.approx([0.5])


# ---------------------------------------------------------------------------------------- intervals and verdicts


def test_bootstrap_interval_agrees_with_scipy():
    values = np.random.default_rng(3).beta(2, 5, size=60)
    mean, low, high = mean_with_interval(values, n_bootstrap=5000, seed=0)
    ref = stats.bootstrap((values,), np.mean, n_resamples=5000, method="percentile", confidence_level=0.95,
                          random_state=1).confidence_interval
    assert mean == pytest.approx(values.mean())
    assert low == pytest.approx(ref.low, abs=0.006) and high == pytest.approx(ref.high, abs=0.006)
    assert low < mean < high


def test_lowest_holding_is_the_lowest_of_an_unbroken_run_from_the_top():
    assert lowest_holding([8, 6, 4, 3, 2], [True, True, False, True, False]) == 6  # 3 holds, but 4 broke first
    assert lowest_holding([8, 6, 4], [True, True, True]) == 4
    assert lowest_holding([8, 6, 4], [False, True, True]) is None


def _bits(acc, expl):
    frame = pd.DataFrame({"bits": [8, 6, 4], "accuracy holds": acc, "explanations hold": expl})
    return BitsAudit(frame, "accuracy", "Grad-CAM", "top-10% pixel overlap", AuditSettings(),
                     lowest_holding([8, 6, 4], acc), lowest_holding([8, 6, 4], expl))


def test_verdict_warns_when_explanations_drift_before_accuracy():
    bits = _bits([True, True, True], [True, False, False])
    assert "accuracy holds down to 4 bits" in bits.verdict()
    assert "Grad-CAM explanations hold down to 8 bits" in bits.verdict()
    assert bits.warning().startswith("Explanations drift before accuracy does: at 4 bits")
    assert _bits([True, True, False], [True, True, False]).warning() is None


def test_bits_figure_draws_score_and_both_agreements_with_bands():
    from xai_core.quantization.audit import _bits_row
    from xai_core.viz.audit import audit_bits_figure

    reference = one_hot([0] * 20 + [1] * 20, k=2)
    labels = np.array([0] * 20 + [1] * 20)
    rows = [_bits_row(b, "classification", reference, reference, labels, np.ones(8), np.ones(8),
                      AuditSettings(n_bootstrap=50)) for b in (8, 4)]
    bits = BitsAudit(pd.DataFrame(rows), "accuracy", "Grad-CAM", "top-10% pixel overlap", AuditSettings(), 4, 4)
    names = [t.name for t in audit_bits_figure(bits).data if t.showlegend is not False]
    assert names == ["accuracy", "Grad-CAM: top-10% pixel overlap", "Grad-CAM: rank correlation"]


def test_bits_row_holds_by_the_interval_definition():
    from xai_core.quantization.audit import _bits_row

    reference = one_hot([0] * 100 + [1] * 100, k=2, p=0.9)
    labels = np.array([0] * 100 + [1] * 100)
    out = reference.copy()
    out[:1] = [0.1, 0.9]  # one correct answer lost: drop 0.005, its 95% upper bound 0.015 > 0.01
    row = _bits_row(4, "classification", reference, out, labels, np.ones(10), np.full(10, 0.85), AuditSettings())
    assert row["score drop"] == pytest.approx(0.005)
    assert row["drop high"] > 0.01 and not row["accuracy holds"]
    assert row["explanations hold"]  # every overlap 0.85 ≥ 0.8, every ρ 1
    row = _bits_row(4, "classification", reference, reference, labels, np.ones(10), np.full(10, 0.79), AuditSettings())
    assert row["accuracy holds"] and not row["explanations hold"]


# ---------------------------------------------------------------------------------------- methods with known answers


def _linear_regressor(w, b=0.5):
    module = nn.Linear(len(w), 1)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([w], dtype=torch.float32))
        module.bias.fill_(b)
    info = ModelInfo(name="lin", task="regression", input_kind="tabular", input_shape=(len(w),),
                     feature_names=tuple(f"f{i}" for i in range(len(w))))
    return LoadedModel(module.eval(), info, "pt2", "lin", 0)


def test_leave_one_feature_out_of_a_linear_model_is_w_times_x_minus_baseline():
    w = np.array([2.0, -1.0, 0.5])
    model = _linear_regressor(list(w))
    rows = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype=np.float32)
    baseline = np.array([0.5, 0.5, 0.5])
    values = leave_one_feature_out(model, rows, baseline, np.zeros(2, dtype=int))
    assert values == pytest.approx(w * (rows - baseline), abs=1e-5)


def test_regression_audit_has_no_flips_and_ranks_by_explanation():
    model = _linear_regressor([2.0, -1.0, 0.5])
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["f0", "f1", "f2"])
    data = TableSet(X, pd.Series(X.to_numpy() @ [2.0, -1.0, 0.5] + 0.5), "y")
    context = prepare_comparison(model, data, ComparisonSettings(n_drift=0, batch_sizes=(1,)))
    audit = audit_variants(context, [VariantSpec("weights", 2, per_channel=False)],
                           AuditSettings(method="perturbation", n_explain=10, top_k=1, n_bootstrap=200))
    fs = audit.flip_sets["w2 per-tensor"]
    assert fs.n_flipped == 0 and fs.n_explained == 10
    assert audit.bits is not None and list(audit.bits.frame["bits"]) == [8, 6, 4, 3, 2]
    assert set(audit.to_frame()["variant"]) == {"w2 per-tensor"}


def test_gradient_audit_of_a_real_int8_variant_uses_its_twin_and_perturbation_the_real_model():
    model = load_demo_model("breast_cancer")
    data = load_demo_data("breast_cancer", model)
    context = prepare_comparison(model, data, ComparisonSettings(n_drift=0, batch_sizes=(1,), max_rows=60))
    spec = VariantSpec("int8-dynamic")
    for method, said in (("gradient", "fake-quant twin"), ("perturbation", "real int8 model")):
        audit = audit_variants(context, [spec], AuditSettings(method=method, n_explain=8, n_bootstrap=100),
                               bits_curve=False)
        assert said in audit.flip_sets[spec.label].method, audit.flip_sets[spec.label].method
        assert audit.flip_sets[spec.label].frame["rank correlation"].dropna().min() > 0.5


def test_unknown_audit_method_is_refused_with_the_choices():
    with pytest.raises(XaiError, match="'gradient' or 'perturbation'"):
        AuditSettings(method="shap")


# ---------------------------------------------------------------------------------------- a planted shortcut


class CornerShortcut(nn.Module):
    """The shapes CNN plus a shortcut: a bright top-left corner pushes the logits towards class `to`."""

    def __init__(self, base: nn.Module, to: int, threshold: float):
        super().__init__()
        self.base, self.to, self.threshold = base, to, threshold

    def forward(self, x):
        logits = self.base(x)
        corner = x[:, :, :8, :8].mean(dim=(1, 2, 3))
        push = 30.0 * torch.sigmoid(20.0 * (corner - self.threshold))
        return logits + push[:, None] * nn.functional.one_hot(torch.tensor(self.to), logits.shape[1]).to(logits)


@pytest.mark.slow
def test_planted_corner_shortcut_is_ranked_first_by_flip_set_and_group_drift():
    model = load_demo_model("shapes")
    data = load_demo_data("shapes", model)
    names = list(model.info.class_names)
    source, to = names.index("circle"), names.index("square")
    predicted = model.predict_proba(model_inputs(model, data)).argmax(axis=1)
    circles = np.flatnonzero(predicted == source)
    stamped = data.images[circles].copy()
    stamped[:, :8, :8, :] = 255
    still = model.predict_proba(model_inputs(model, ImageSet(stamped, [""] * len(circles)))).argmax(axis=1) == source
    circles = circles[still][:5]  # circles fp32 still calls circles with the mark: the mark alone does not fool fp32
    others = np.flatnonzero(predicted != source)[:11]
    chosen = np.concatenate([circles, others])
    images = data.images[chosen].copy()
    images[:5, :8, :8, :] = 255  # the mark, on five images fp32 calls a circle
    marked = ImageSet(images, [f"img{i}{'-marked' if i < 5 else ''}" for i in range(len(chosen))],
                      data.labels[chosen], None)
    x = model_inputs(model, marked)
    corner = x[:, :, :8, :8].mean(dim=(1, 2, 3))
    threshold = float((corner[:5].min() + corner[5:].max()) / 2)
    assert corner[:5].min() > corner[5:].max()  # the mark is what separates them
    shortcut = dataclasses.replace(model, module=CornerShortcut(model.module, to, threshold).eval(),
                                   sha256="shortcut")
    variant = Variant(VariantSpec("weights", 8), shortcut, 0, "packed")
    context = prepare_comparison(model, marked, ComparisonSettings(n_drift=0, batch_sizes=(1,), max_rows=100))
    assert [n.endswith("-marked") for n in context.data.names[:5]] == [True] * 5  # the sample keeps the order
    audit = audit_built_variants(context, iter([("shortcut", variant)]), 1,
                                 AuditSettings(method="perturbation", n_explain=16, n_bootstrap=100), bits_curve=False)
    fs = audit.flip_sets["shortcut"]
    top = list(fs.frame["sample"][:5])
    assert all(n.endswith("-marked") for n in top), fs.frame[["sample", "reason", "top-k overlap"]]
    assert fs.n_flipped == 5 and set(fs.audit_set["sample"]) == {n for n in marked.names if n.endswith("-marked")}
    assert (fs.frame["top-k overlap"][5:] == 1.0).all()  # unmarked images: explained exactly as fp32
    groups = audit.group_drift["shortcut"].frame
    assert groups.loc[0, "class"] == "circle" and groups.loc[0, "drift"] > groups["drift"][1:].max()
    from xai_core.viz.audit import flip_pairs_figure, group_drift_figure, group_maps_figure

    pairs = flip_pairs_figure(audit, "shortcut", context.data.images, top[:2])
    assert [a.text for a in pairs.layout.annotations] == [f"fp32 · {top[0]}", f"shortcut · {top[0]}",
                                                          f"fp32 · {top[1]}", f"shortcut · {top[1]}"]
    assert group_drift_figure(audit, "shortcut").data[0].y[-1] == "circle"  # drawn bottom-up: the top bar
    assert len(group_maps_figure(audit, "shortcut", "circle", context.data.images[0]).layout.annotations) == 2


# ---------------------------------------------------------------------------------------- the faithfulness scorecard


def test_sparseness_is_the_gini_index():
    from xai_core.quantization.scorecard import sparseness

    assert sparseness(np.ones(10)) == pytest.approx(0.0)
    assert sparseness(np.eye(1, 10)[0]) == pytest.approx(0.9)  # (n − 1) / n for one non-zero entry of n
    assert sparseness(np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(
        sum(abs(a - b) for a in range(4) for b in range(4)) / (2 * 4 * 4 * 1.5))  # mean-difference form


def test_road_imputation_fills_a_linear_ramp_exactly():
    from xai_core.quantization.scorecard import road_impute

    ramp = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 2, 16, 16) * 0.1
    ramp = ramp + torch.arange(16, dtype=torch.float32).view(1, 1, 16, 1) * 0.05  # a plane: harmonic
    removed = torch.zeros(1, 16, 16, dtype=torch.bool)
    removed[0, 5:9, 6:10] = True
    filled = road_impute(ramp, removed, iterations=400)
    assert torch.allclose(filled, ramp, atol=1e-3)
    assert torch.equal(filled[:, :, ~removed[0]], ramp[:, :, ~removed[0]])  # pixels kept are untouched


def test_scorecard_on_a_table_says_which_method_is_most_faithful():
    from xai_core.quantization.scorecard import faithfulness_scorecard

    model = load_demo_model("breast_cancer")
    data = load_demo_data("breast_cancer", model)
    context = prepare_comparison(model, data, ComparisonSettings(n_drift=0, batch_sizes=(1,), max_rows=40))
    card = faithfulness_scorecard(context, [VariantSpec("int8-dynamic")], n_samples=3, heavy=True)
    frame = card.frame.set_index(["variant", "method"])
    assert frame.loc[("int8 dynamic", "integrated_gradients"), "explained with"] == "fake-quant twin"
    assert frame.loc[("int8 dynamic", "leave_one_feature_out"), "explained with"] == "real int8 model"
    assert frame["completeness error"].dropna().max() < 0.05  # integrated gradients: Σφ = f(x) − f(baseline)
    assert frame["infidelity"].notna().all()
    assert card.verdict().startswith("**") and "most faithful" in card.verdict()
    with pytest.raises(XaiError, match="does not know"):
        faithfulness_scorecard(context, [], methods=["lime"])

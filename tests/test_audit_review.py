"""The compression audit in a review: flip sets written next to the quantization table, read back by load_review, and
shown (escaped) in report.html."""

from xai_core.data_loading import load_data
from xai_core.demo import ASSETS, demo_model_bytes
from xai_core.quantization import VariantSpec
from xai_core.report import write_report
from xai_core.review import ModelSource, ReviewSettings, load_review, run_review

HOSTILE_CLASS = "<script>alert(1)</script>"


def test_review_report_carries_the_flip_sets_escaped(tmp_path):
    model_bytes, sidecar = demo_model_bytes("wine")
    source = ModelSource(model_bytes, "wine.pt2", sidecar, overrides={"class_names": [HOSTILE_CLASS, "class_1", "class_2"]})
    model = source.load()
    table = (ASSETS / "wine_test.csv").read_text().replace("class_0", HOSTILE_CLASS)
    data = load_data([("wine_test.csv", table.encode())], model.info)
    spec = VariantSpec("weights", 2, per_channel=False)  # 2 bits: some answers flip
    review = run_review(model, data, tmp_path, ReviewSettings(analyses=("quantization",), quantization=(spec,)),
                        source=source)
    stored = load_review(tmp_path)
    assert stored.audit is not None and set(stored.audit["variant"]) == {spec.label}
    flips = stored.audit[stored.audit["flipped"]]
    assert len(flips) > 0 and flips["rank"].tolist() == list(range(1, len(flips) + 1))
    html = write_report(review, tmp_path / "report.html").read_text()
    assert "Flip sets: the samples to review" in html
    assert f"{len(flips)} flipped" in html
    assert HOSTILE_CLASS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

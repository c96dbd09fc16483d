"""Review shards on a local Ray cluster (2 CPUs) give the same results as in-process; the module never travels."""

import json

import numpy as np
import pytest
from torch import nn

ray = pytest.importorskip("ray", reason="ray is not installed here (pip install 'ray[data]', in requirements-dev.txt)")

from xai_core.demo import demo_model_bytes, load_demo_data  # noqa: E402
from xai_core.review import ModelSource, ReviewSettings, run_review  # noqa: E402

# One worker runs them in file order: the CLI test starts its own local Ray before the module's cluster exists, and
# `--ray auto` must not find another worker's cluster.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


def test_cli_on_ray_starts_a_local_cluster_and_equals_in_process(tmp_path):
    """First in this file, before the module's cluster exists: the CLI starts (and stops) its own local Ray."""
    import subprocess
    import sys
    from pathlib import Path

    from xai_core.review import load_review

    root = Path(__file__).resolve().parents[1]
    common = ["review", "--model", "assets/wine.pt2", "--data", "assets/wine_test.csv", "--background",
              "assets/wine_train.csv", "--analyses", "shap", "--shard-size", "16", "--no-report", "-q"]
    for out, extra in ((tmp_path / "ray", ["--ray", "auto", "--ray-workers", "2"]), (tmp_path / "local", [])):
        result = subprocess.run([sys.executable, "-m", "xai_core", *common, "--out", str(out), *extra], cwd=root,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    on_ray, local = load_review(tmp_path / "ray"), load_review(tmp_path / "local")
    np.testing.assert_array_equal(on_ray.shap.values, local.shap.values)
    run = on_ray.manifest["runs"][-1]
    assert run["runner"] == "ray (auto)" and run["ray"]["workers"] == 2


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def source_and_model(key):
    model_bytes, sidecar = demo_model_bytes(key)
    source = ModelSource(model_bytes, f"{key}.pt2", sidecar)
    return source, source.load()


def refuse_pickling_modules(monkeypatch):
    """Any nn.Module pickled by the driver (ray.put, actor arguments) would raise here."""
    def refuse(self, protocol):
        raise AssertionError(f"a {type(self).__name__} module was pickled")

    monkeypatch.setattr(nn.Module, "__reduce_ex__", refuse)


def test_shapley_on_ray_equals_in_process(cluster, tmp_path, monkeypatch):
    source, model = source_and_model("wine")
    data, background = load_demo_data("wine", model), load_demo_data("wine", model, split="train")
    settings = ReviewSettings(analyses=("shap",), shard_size=8)
    local = run_review(model, data, tmp_path / "local", settings, background=background, source=source)
    with monkeypatch.context() as patch:
        refuse_pickling_modules(patch)
        on_ray = run_review(model, data, tmp_path / "ray", settings, background=background, source=source,
                            ray_address="auto", ray_workers=2)
    assert on_ray.complete
    np.testing.assert_array_equal(on_ray.shap.values, local.shap.values)
    np.testing.assert_array_equal(on_ray.shap.outputs, local.shap.outputs)
    assert on_ray.evaluation.score == local.evaluation.score
    run = json.loads((tmp_path / "ray" / "manifest.json").read_text())["runs"][-1]
    assert run["runner"] == "ray (auto)" and run["ray"]["workers"] == 2
    assert sorted(run["computed"]) == ["evaluation"] + [f"shap-{i:05d}" for i in range(6)]


def test_grad_cam_on_ray_equals_in_process_and_resumes(cluster, tmp_path):
    source, model = source_and_model("shapes")
    data = load_demo_data("shapes", model)
    settings = ReviewSettings(analyses=("images",), shard_size=8, max_rows=24)
    local = run_review(model, data, tmp_path / "local", settings, source=source)
    stopped = []

    def stop_after_first(name, index):
        stopped.append(index)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_review(model, data, tmp_path / "ray", settings, source=source, on_shard=stop_after_first)
    on_ray = run_review(model, data, tmp_path / "ray", settings, source=source, ray_address="auto", ray_workers=2)
    got, want = on_ray.images.explanations["grad_cam"], local.images.explanations["grad_cam"]
    np.testing.assert_allclose(got.maps, want.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.predicted, want.predicted)
    run = json.loads((tmp_path / "ray" / "manifest.json").read_text())["runs"][-1]
    assert sorted(run["computed"]) == [f"images-{i:05d}" for i in range(3) if i not in stopped]


def test_sampled_shapley_on_ray_equals_the_page_for_every_row(cluster, tmp_path):
    """Breast cancer (30 features: the sampler) on 2 Ray workers with one torch thread each: every row's values are
    the page's call on the first rows (rows seeded by their index in the data, not by their place in a shard)."""
    from xai_core.attribution.shapley import ShapleySettings
    from xai_core.attribution.tabular import explain_table

    source, model = source_and_model("breast_cancer")
    data, background = load_demo_data("breast_cancer", model), load_demo_data("breast_cancer", model, split="train")
    page = explain_table(model, data.X.iloc[:6], "shapley", ShapleySettings(), background=background.X)
    for shard_size in (4, 5):
        settings = ReviewSettings(analyses=("shap",), shard_size=shard_size, max_rows=6)
        on_ray = run_review(model, data, tmp_path / f"ray{shard_size}", settings, background=background,
                            source=source, ray_address="auto", ray_workers=2)
        assert on_ray.complete and on_ray.shap.method == "antithetic permutation sampling"
        assert on_ray.manifest["runs"][-1]["runner"] == "ray (auto)"
        np.testing.assert_array_equal(on_ray.shap.n_permutations_used, page.n_permutations_used)
        np.testing.assert_allclose(on_ray.shap.values, page.values, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(on_ray.shap.standard_errors, page.standard_errors, rtol=1e-5, atol=1e-9)

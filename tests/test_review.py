"""Review jobs: the numbers equal the pages' own calls, shards resume after an exception or a crash, the manifest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xai_core import XaiError
from xai_core.attribution.image import explain_batch
from xai_core.attribution.shapley import ShapleySettings
from xai_core.attribution.tabular import explain_table
from xai_core.demo import ASSETS, demo_model_bytes, load_demo_data, load_demo_model
from xai_core.evaluation import evaluate
from xai_core.review import ModelSource, ReviewSettings, data_sha256, load_review, run_review, surrogate_rows
from xai_core.review.store import atomic_write, shard_paths
from xai_core.surrogate import SurrogateSettings, fit_surrogate

ROOT = Path(__file__).resolve().parents[1]
TABLE_ONLY = ("shap", "surrogate")


def demo(key):
    model = load_demo_model(key)
    data = load_demo_data(key, model)
    background = load_demo_data(key, model, split="train") if key not in ("shapes", "digits") else None
    model_bytes, sidecar = demo_model_bytes(key)
    return model, data, background, ModelSource(model_bytes, f"{key}.pt2", sidecar)


@pytest.fixture(scope="module")
def wine_review(tmp_path_factory):
    model, data, background, source = demo("wine")
    out = tmp_path_factory.mktemp("wine")
    review = run_review(model, data, out, ReviewSettings(analyses=TABLE_ONLY, shard_size=16), background=background,
                        source=source)
    return model, data, background, review


def test_wine_numbers_equal_the_pages_calls(wine_review):
    model, data, background, review = wine_review
    assert review.complete, review.missing
    page = evaluate(model, data)  # Model & data page
    assert review.evaluation.score == page.score
    assert review.evaluation.score_interval == page.score_interval
    np.testing.assert_array_equal(review.evaluation.confusion, page.confusion)
    np.testing.assert_array_equal(review.evaluation.predictions, page.predictions)

    # Feature importance page: explain_table(model, rows, "shapley", settings, background=training rows)
    shap = explain_table(model, data.X.iloc[:20], "shapley", ShapleySettings(), background=background.X)
    assert review.shap.values.shape == (len(data), 13, 3)
    np.testing.assert_array_equal(review.shap.values[:20], shap.values)
    np.testing.assert_array_equal(review.shap.base_values, shap.base_values)
    np.testing.assert_array_equal(review.shap.outputs[:20], shap.outputs)
    assert review.shap.settings == shap.settings and review.shap.method == shap.method == "exact"
    assert review.shap.feature_names == shap.feature_names and review.shap.output_names == shap.output_names
    pd.testing.assert_frame_equal(review.shap.rows.reset_index(drop=True), data.X.reset_index(drop=True),
                                  check_dtype=False)
    assert review.shap.efficiency_gap < 1e-6

    # Surrogate tree page: training and test rows together, SurrogateSettings()
    tree = fit_surrogate(model, surrogate_rows(data, background), SurrogateSettings())
    assert review.surrogate.fidelity == tree.fidelity
    assert review.surrogate.fidelity_interval == tree.fidelity_interval
    assert review.surrogate.rules == tree.rules
    assert (review.surrogate.model_score, review.surrogate.tree_score) == (tree.model_score, tree.tree_score)
    X = data.X.to_numpy()
    np.testing.assert_array_equal(review.surrogate.tree.predict(X), tree.tree.predict(X))


@pytest.mark.parametrize("shard_size", [3, 4])
def test_sampled_shapley_values_equal_the_page_for_every_row_whatever_the_shards(tmp_path, shard_size):
    """Breast cancer (30 features: the sampler). Each shard passes its first row's index, so every row of every
    shard has exactly the page's values (one call on the first rows), for any shard size."""
    model, data, background, source = demo("breast_cancer")
    review = run_review(model, data, tmp_path, ReviewSettings(analyses=("shap",), shard_size=shard_size, max_rows=7),
                        background=background, source=source)
    page = explain_table(model, data.X.iloc[:7], "shapley", ShapleySettings(), background=background.X)
    assert review.shap.method == page.method == "antithetic permutation sampling"
    assert review.manifest["plan"]["shap"]["n_shards"] == -(-7 // shard_size)
    np.testing.assert_array_equal(review.shap.values, page.values)
    np.testing.assert_array_equal(review.shap.standard_errors, page.standard_errors)
    np.testing.assert_array_equal(review.shap.n_permutations_used, page.n_permutations_used)
    np.testing.assert_allclose(review.shap.outputs, page.outputs, rtol=1e-5, atol=1e-12)  # batched 3 vs 7 rows
    # Row 5 explained on its own with its index equals the page's row 5 (and is another sample without it).
    alone = explain_table(model, data.X.iloc[5:6], "shapley", ShapleySettings(), background=background.X,
                          row_offset=5)
    np.testing.assert_array_equal(alone.values[0], page.values[5])
    as_first = explain_table(model, data.X.iloc[5:6], "shapley", ShapleySettings(), background=background.X)
    assert not np.array_equal(as_first.values[0], page.values[5])
    assert review.shap.has_standard_errors
    assert review.evaluation.n_rows == 7


def test_a_review_of_the_earlier_format_is_not_resumed(tmp_path):
    model, data, background, source = demo("wine")
    settings = ReviewSettings(analyses=("surrogate",))
    run_review(model, data, tmp_path, settings, background=background)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format_version"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(XaiError, match="earlier version .*seeded by their place in the shard"):
        run_review(model, data, tmp_path, settings, background=background)
    assert load_review(tmp_path).surrogate is not None  # it still opens


def test_image_maps_equal_the_gallery_call(tmp_path):
    model, data, _, source = demo("shapes")
    review = run_review(model, data, tmp_path, ReviewSettings(analyses=("images",), shard_size=8, max_rows=20),
                        source=source)
    page = explain_batch(model, data.images[:20], "grad_cam", batch_size=16)  # Image explanations gallery
    got = review.images.explanations["grad_cam"]
    np.testing.assert_allclose(got.maps, page.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.predicted, page.predicted)
    np.testing.assert_array_equal(got.targets, page.targets)
    assert got.layer == page.layer and got.method_name == page.method_name
    np.testing.assert_array_equal(review.images.images, data.images[:20])
    assert list(review.images.table["name"]) == data.names[:20]
    assert review.images.table["item"].tolist() == list(range(20))
    table, arrays = shard_paths(tmp_path, "images", 2)
    assert table.exists() and arrays.exists() and not shard_paths(tmp_path, "images", 3)[0].exists()
    with np.load(arrays, allow_pickle=False) as stored:
        assert stored["maps_grad_cam"].shape == (4, 64, 64)


def test_a_review_explains_images_with_the_pages_default_method(tmp_path):
    """No methods given: those the Image explanations page opens on, named in the manifest (so a rerun resumes)."""
    for key, method in (("shapes_vit", "gradient_rollout"), ("shapes", "grad_cam")):
        model, data, _, source = demo(key)
        settings = ReviewSettings(analyses=("images",), shard_size=8, max_rows=4)
        review = run_review(model, data, tmp_path / key, settings, source=source)
        assert list(review.images.explanations) == [method]
        manifest = json.loads((tmp_path / key / "manifest.json").read_text())
        assert manifest["settings"]["image_methods"] == [method]
        again = run_review(model, data, tmp_path / key, settings, source=source)  # resumed, not refused
        np.testing.assert_array_equal(again.images.explanations[method].maps, review.images.explanations[method].maps)


def test_grad_cam_on_the_exported_tree_running_generated_code_equals_the_interpreted_tree(monkeypatch):
    """Loading switches the unflattened .pt2 tree to generated code (faster); Grad-CAM's hooks on it give the maps
    torch.fx.Interpreter gives (the default before), and no graph is walked node by node."""
    import copy
    import dataclasses

    import torch

    model, data, _, _ = demo("shapes")
    slow_module = copy.deepcopy(model.module)
    for sub in slow_module.modules():
        if hasattr(sub, "_run_with_interpreter"):
            sub._run_with_interpreter = True
    slow = dataclasses.replace(model, module=slow_module)
    walked = []
    original = torch.fx.Interpreter.run
    monkeypatch.setattr(torch.fx.Interpreter, "run", lambda self, *a, **k: walked.append(1) or original(self, *a, **k))
    fast = explain_batch(model, data.images[:6], "grad_cam", batch_size=4)
    assert walked == []
    ref = explain_batch(slow, data.images[:6], "grad_cam", batch_size=4)
    assert walked and fast.layer == ref.layer
    np.testing.assert_allclose(fast.maps, ref.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fast.predicted, ref.predicted)


def test_manifest_names_inputs_settings_and_machine(wine_review):
    model, data, background, review = wine_review
    manifest = json.loads((review.path / "manifest.json").read_text())
    import hashlib

    assert manifest["model_file_sha256"] == hashlib.sha256((ASSETS / "wine.pt2").read_bytes()).hexdigest()
    assert manifest["model_sha256"] == model.sha256
    assert manifest["data_sha256"] == data_sha256(data)
    assert manifest["background_sha256"] == data_sha256(background)
    assert manifest["settings"]["shapley"] == {"baseline": "mean", "n_background": 10, "estimator": "auto",
                                               "n_permutations": 1536, "target_relative_se": 0.01, "seed": 0,
                                               "chunk_size": 65536}
    assert manifest["settings"]["surrogate"]["seed"] == 0 and manifest["settings"]["seed"] == 0
    env = manifest["environment"]
    assert env["versions"]["torch"] and env["versions"]["numpy"] and env["cpu"] and env["torch_threads"] >= 1
    assert manifest["timings"]["surrogate"] >= 0 and manifest["timings"]["shap_shard_seconds"] > 0
    assert manifest["model"]["info"]["class_names"] == list(model.info.class_names)
    assert manifest["plan"]["shap"]["n_shards"] == 3 and manifest["skipped"] == {}


def test_resume_after_an_exception_computes_only_the_missing_shards(tmp_path):
    model, data, background, source = demo("wine")
    settings = ReviewSettings(analyses=("shap",), shard_size=8)

    def stop_after_two(name, index):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_review(model, data, tmp_path, settings, background=background, source=source, on_shard=stop_after_two)
    partial = load_review(tmp_path)
    assert partial.missing == [f"shap shard {i}" for i in range(2, 6)]
    assert len(partial.shap.rows) == 16
    first = shard_paths(tmp_path, "shap", 0)[0].stat().st_mtime_ns
    seen = []
    review = run_review(model, data, tmp_path, settings, background=background, source=source,
                        on_shard=lambda name, index: seen.append(index))
    assert seen == [2, 3, 4, 5]
    assert shard_paths(tmp_path, "shap", 0)[0].stat().st_mtime_ns == first
    assert review.complete and len(review.shap.rows) == len(data)
    assert list(review.shap.rows.index) == list(range(len(data)))
    whole = explain_table(model, data.X, "shapley", ShapleySettings(), background=background.X)
    np.testing.assert_array_equal(review.shap.values, whole.values)
    runs = json.loads((tmp_path / "manifest.json").read_text())["runs"]
    assert runs[-1]["computed"] == [f"shap-{i:05d}" for i in range(2, 6)] and runs[-1]["skipped"] == 3


def test_other_settings_in_the_same_folder_are_refused(wine_review, tmp_path):
    model, data, background, source = demo("wine")
    run_review(model, data, tmp_path, ReviewSettings(analyses=("surrogate",)), background=background)
    with pytest.raises(XaiError, match="another model, data or settings"):
        run_review(model, data, tmp_path, ReviewSettings(analyses=("surrogate",), seed=1), background=background)


def test_plan_checks(tmp_path):
    model, data, background, _ = demo("wine")
    with pytest.raises(XaiError, match="Unknown analyses"):
        run_review(model, data, tmp_path, ReviewSettings(analyses=("shapp",)))
    images_model = load_demo_model("shapes")
    with pytest.raises(XaiError, match="takes images"):
        run_review(images_model, data, tmp_path / "x", ReviewSettings(analyses=("images",)))
    review = run_review(model, data, tmp_path / "y", ReviewSettings(analyses=("images", "surrogate")))
    assert review.manifest["skipped"] == {"images": "not for tabular models"} and review.complete


def test_load_review_of_a_folder_without_a_review(tmp_path):
    with pytest.raises(XaiError, match="holds no review"):
        load_review(tmp_path)


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- the command line


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, **kwargs)


def wine_command(out) -> list[str]:
    return ["review", "--model", str(ASSETS / "wine.pt2"), "--data", str(ASSETS / "wine_test.csv"), "--background",
            str(ASSETS / "wine_train.csv"), "--analyses", "shap", "--shard-size", "8", "--out", str(out)]


@pytest.mark.slow
def test_cli_resumes_after_a_hard_crash(tmp_path):
    out = tmp_path / "review"
    crashed = cli(*wine_command(out), "--crash-after-shards", "2", "--no-report")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert shard_paths(out, "shap", 1)[0].exists() and not shard_paths(out, "shap", 2)[0].exists()
    first = shard_paths(out, "shap", 0)[0].stat().st_mtime_ns
    done = cli(*wine_command(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"review written to {out}"
    assert "6/6" in done.stderr  # the progress bar counted every unit
    assert shard_paths(out, "shap", 0)[0].stat().st_mtime_ns == first
    review = load_review(out)
    assert review.complete and list(review.shap.rows.index) == list(range(45))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"][-1]["computed"] == [f"shap-{i:05d}" for i in range(2, 6)]
    assert not list(out.rglob("*.tmp"))
    assert (out / "report.html").stat().st_size > 3_000_000


@pytest.mark.slow
def test_cli_resumes_after_ctrl_c(tmp_path):
    out = tmp_path / "review"
    process = subprocess.Popen([sys.executable, "-m", "xai_core", *wine_command(out), "--shard-size", "4",
                                "--no-report"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_shard = shard_paths(out, "shap", 0)[0]
    deadline = time.monotonic() + 600
    while not first_shard.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    if process.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert process.returncode == 130, stderr[-2000:]
    assert "rerun the same command to resume" in stderr
    before = load_review(out)
    assert before.missing
    done = cli(*wine_command(out), "--shard-size", "4", "--no-report")
    assert done.returncode == 0, done.stderr[-2000:]
    review = load_review(out)
    assert review.complete and list(review.shap.rows.index) == list(range(45))


def test_cli_on_images_writes_maps_and_the_gallery(tmp_path):
    out = tmp_path / "shapes"
    result = cli("review", "--model", "assets/shapes.pt2", "--data", "assets/shapes_test.zip", "--analyses",
                 "images,shap", "--image-methods", "grad_cam,saliency", "--rows", "12", "--shard-size", "8",
                 "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    review = load_review(out)
    assert set(review.images.explanations) == {"grad_cam", "saliency"} and len(review.images.table) == 12
    assert review.manifest["skipped"] == {"shap": "not for image models"}
    html = (out / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 24  # 12 images × 2 methods


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.pt2", "--data", "assets/wine_test.csv"], "error: The model file 'missing.pt2' does not exist."),
    (["--model", "assets/wine.pt2", "--data", "nothing.csv"], "error: The data file 'nothing.csv' does not exist."),
    (["--model", "assets/shapes.pt2", "--data", "assets/wine_test.csv"], "error: This model takes images, not a table."),
    (["--model", "assets/wine.pt2", "--data", "assets/wine_test.csv", "--analyses", "shap,magic"],
     "error: Unknown analyses ['magic']"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    result = cli("review", *args, "--out", str(tmp_path / "out"), "-q")
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_help():
    result = cli("review", "--help")
    assert result.returncode == 0
    for option in ("--model", "--sidecar", "--data", "--analyses", "--out", "--ray", "--pdf", "--shard-size"):
        assert option in result.stdout
    assert "--crash-after-shards" not in result.stdout


def test_progress_line_without_tqdm(monkeypatch, capsys):
    from xai_core.__main__ import ProgressBar

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    bar = ProgressBar(enabled=True)
    for done in range(1, 5):
        bar(done, 4, f"shap shard {done}/4")
    bar.close()
    err = capsys.readouterr().err
    assert "\r1/4 units, ETA" in err and "\r4/4 units, ETA" in err and "shap shard 4/4" in err and err.endswith("\n")


def test_cli_makes_openmp_threads_sleep_while_waiting_before_torch_loads():
    """OMP_WAIT_POLICY is read once, when torch loads: the command line sets PASSIVE before it (a value the user set
    is kept), so waiting threads do not spin on cores that other work needs."""
    probe = ("import os, sys; import xai_core.__main__; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.stdout.split() == ["PASSIVE", "False"], result.stderr[-2000:]
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                            env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, timeout=300)
    assert result.stdout.split() == ["ACTIVE", "False"], result.stderr[-2000:]

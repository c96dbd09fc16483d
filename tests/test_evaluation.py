"""evaluate() on hand-made models whose every prediction is known: accuracy, interval, confusion orientation, R², MAE."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from xai_core import XaiError
from xai_core.datasets import ImageSet, TableSet
from xai_core.evaluation import evaluate, summarize
from xai_core.model import LoadedModel, ModelInfo


class PredictsColumnZero(nn.Module):
    """Classifier whose predicted class is the value of feature 0 (logits: 5 for that class, 0 elsewhere)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        return 5.0 * nn.functional.one_hot(x[:, 0].round().long(), self.k).float()


class Identity0(nn.Module):
    """Regression: the prediction is feature 0."""

    def forward(self, x):
        return x[:, :1]


def classifier(k=3) -> LoadedModel:
    info = ModelInfo(task="classification", input_kind="tabular", input_shape=(2,), class_names=tuple("abcdefg"[:k]),
                     feature_names=("p", "noise"))
    return LoadedModel(PredictsColumnZero(k).eval(), info, "state_dict", "sha", 0)


def regressor() -> LoadedModel:
    info = ModelInfo(task="regression", input_kind="tabular", input_shape=(2,), feature_names=("p", "noise"),
                     target_name="y")
    return LoadedModel(Identity0().eval(), info, "state_dict", "sha", 0)


def rows(predicted, labels=None) -> TableSet:
    X = pd.DataFrame({"p": np.asarray(predicted, dtype=float), "noise": np.linspace(-1, 1, len(predicted))})
    return TableSet(X, None if labels is None else pd.Series(labels, name="y"), "y")


def own_bootstrap(correct: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(n_bootstrap)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_accuracy_predictions_and_probabilities_are_the_known_ones():
    predicted = [0, 1, 2, 2, 1, 0, 0, 2]
    labels = [0, 1, 2, 1, 1, 2, 0, 2]  # rows 3 and 5 wrong
    result = evaluate(classifier(), rows(predicted, labels), n_bootstrap=200)
    assert result.task == "classification" and result.n_rows == 8
    assert result.predictions.tolist() == predicted
    assert result.score == 0.75 and result.score_name == "accuracy"
    expected_p = np.exp(5) / (np.exp(5) + 2)
    np.testing.assert_allclose(result.probabilities.max(axis=1), expected_p, rtol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert result.class_names == ("a", "b", "c")


def test_interval_is_an_independent_bootstrap_of_the_correct_rows():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    predicted = np.where(rng.random(50) < 0.7, labels, (labels + 1) % 3)
    result = evaluate(classifier(), rows(predicted, labels), n_bootstrap=300, seed=9)
    assert result.score == pytest.approx(np.mean(predicted == labels))
    assert result.score_interval == pytest.approx(own_bootstrap(predicted == labels, 300, 9), abs=1e-12)
    low, high = result.score_interval
    assert low < result.score < high


def test_all_correct_has_the_interval_one_one():
    labels = [0, 1, 2, 1, 0]
    result = evaluate(classifier(), rows(labels, labels), n_bootstrap=100)
    assert result.score == 1.0 and result.score_interval == (1.0, 1.0)


def test_confusion_rows_are_true_classes_and_columns_predictions():
    # Every true 'a' is predicted 'b'; nothing true 'b' is predicted 'a': a transposed matrix would show the opposite.
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [1, 1, 1, 1, 2, 2]
    result = evaluate(classifier(), rows(predicted, labels), n_bootstrap=50)
    assert result.confusion.tolist() == [[0, 3, 0],
                                         [0, 1, 1],
                                         [0, 0, 1]]
    np.testing.assert_array_equal(result.confusion, skm.confusion_matrix(labels, predicted, labels=[0, 1, 2]))


def test_confusion_has_a_row_and_column_for_classes_never_seen():
    result = evaluate(classifier(k=4), rows([0, 0], [0, 1]), n_bootstrap=20)
    assert result.confusion.shape == (4, 4) and result.confusion.sum() == 2 and result.confusion[1, 0] == 1


def test_a_label_equal_to_the_number_of_classes_is_an_error_not_a_matrix():
    with pytest.raises(XaiError, match="labels hold class indices outside 0…2"):
        evaluate(classifier(), rows([0, 1], [0, 3]), n_bootstrap=20)


def test_unlabelled_data_gives_predictions_only():
    result = evaluate(classifier(), rows([2, 0, 1]))
    assert result.predictions.tolist() == [2, 0, 1]
    assert result.labels is None and result.score is None and result.confusion is None and result.score_interval is None


def test_regression_r2_and_mae_against_scikit_learn():
    y = np.array([3.0, -1.0, 2.0, 7.0, 0.5, 4.0])
    pred = np.array([2.5, 0.0, 2.0, 8.0, -0.5, 3.0])
    result = evaluate(regressor(), rows(pred, y), n_bootstrap=200)
    assert result.score_name == "R²"
    assert result.score == pytest.approx(skm.r2_score(y, pred), abs=1e-6)
    assert result.extra["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-6)
    assert result.extra["mae"] == pytest.approx(np.mean([0.5, 1.0, 0.0, 1.0, 1.0, 1.0]), abs=1e-6)  # by hand
    np.testing.assert_allclose(result.predictions, pred, rtol=1e-6)
    assert result.confusion is None and result.class_names == ()
    low, high = result.score_interval
    assert low <= result.score <= high


def test_image_set_labels_are_scored():
    class Brightness(nn.Module):
        """Class 1 when the mean pixel is bright, else class 0."""

        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([-m, m], dim=1) * 10

    info = ModelInfo(input_kind="image", input_shape=(1, 4, 4), class_names=("dark", "bright"), mean=(0.5,), std=(0.5,))
    model = LoadedModel(Brightness().eval(), info, "state_dict", "sha", 0)
    values = [10, 250, 240, 20]  # predicted dark, bright, bright, dark
    images = np.stack([np.full((4, 4, 1), v, np.uint8) for v in values])
    result = evaluate(model, ImageSet(images, list("abcd"), labels=np.array([0, 1, 0, 0])), n_bootstrap=50)
    assert result.predictions.tolist() == [0, 1, 1, 0]
    assert result.score == 0.75
    assert result.confusion.tolist() == [[2, 1], [0, 1]]  # the dark image predicted bright: row dark, column bright


def test_summary_counts_parameters_and_shapes():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    info = ModelInfo(input_kind="tabular", input_shape=(4,), class_names=("x", "y"))
    summary = summarize(LoadedModel(net.eval(), info, "state_dict", "sha", 123))
    assert summary.n_parameters == 4 * 3 + 3 + 3 * 2 + 2
    layers = summary.layers.set_index("layer")
    assert layers.loc["0", "parameters"] == 15 and layers.loc["2", "parameters"] == 8
    assert layers.loc["0", "output shape"] == "3" and layers.loc["2", "output shape"] == "2"
    assert summary.output_shape == (2,) and summary.size_bytes == 123
    assert all(not m._forward_hooks for m in net.modules())

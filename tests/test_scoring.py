"""xai_core.scoring against independent answers: scikit-learn, hand counts, and a bootstrap written out here in numpy."""

import numpy as np
import pytest
from sklearn import metrics as skm

from xai_core import XaiError
from xai_core import scoring


def numpy_bootstrap(statistic, n, n_bootstrap, seed, level=0.95):
    """The percentile bootstrap written out independently: same generator, same draws, NaN resamples left out."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        index = rng.integers(0, n, n)
        values.append(statistic(index))
    values = np.array(values, dtype=float)
    values = values[~np.isnan(values)]
    tail = (1 - level) / 2
    return np.quantile(values, tail), np.quantile(values, 1 - tail)


# ---------------------------------------------------------------------------------------- predictions and scores


def test_predictions_are_the_argmax_or_the_first_column():
    outputs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.0, 0.1, 0.9]])
    assert scoring.predictions("classification", outputs).tolist() == [1, 0, 2]
    assert scoring.predictions("regression", np.array([[1.5], [-2.0]])).tolist() == [1.5, -2.0]
    assert scoring.predictions("regression", np.array([3.0, 4.0])).tolist() == [3.0, 4.0]


def test_accuracy_known_values():
    assert scoring.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert scoring.accuracy([1, 1, 1], [0, 0, 0]) == 0.0
    assert scoring.accuracy([2], [2]) == 1.0
    rng = np.random.default_rng(0)
    pred, labels = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert scoring.accuracy(pred, labels) == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-12)


def test_accuracy_refuses_mismatched_lengths_and_is_nan_when_empty():
    with pytest.raises(XaiError, match=r"3 predictions for 2 labels"):
        scoring.accuracy([0, 1, 1], [0, 1])
    assert np.isnan(scoring.accuracy([], []))


def test_r2_matches_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    for pred in (y + rng.normal(scale=0.3, size=50), -y, np.full(50, y.mean()), y):
        assert scoring.r2_score(y, pred) == pytest.approx(skm.r2_score(y, pred), abs=1e-12)
    assert scoring.r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert scoring.r2_score([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == 0.0  # predicting the mean


def test_r2_is_nan_when_every_label_is_equal():
    assert np.isnan(scoring.r2_score([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
    assert np.isnan(scoring.r2_score([], []))


def test_score_of_raw_outputs():
    outputs = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.2, 0.1]])
    assert scoring.score("classification", outputs, np.array([0, 1, 1, 1])) == 0.5
    assert scoring.score("classification", outputs, None) is None
    y = np.array([1.0, 2.0, 4.0])
    out = np.array([[1.5], [2.0], [3.0]])
    assert scoring.score("regression", out, y) == pytest.approx(skm.r2_score(y, out[:, 0]))
    assert scoring.score_name("classification") == "accuracy" and scoring.score_name("regression") == "R²"


def test_agreement_counts_rows_whose_top_class_is_the_same():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    other = np.array([[0.6, 0.4], [0.9, 0.1], [0.1, 0.9], [0.4, 0.6]])
    assert scoring.agreement(reference, other) == 0.5
    assert scoring.agreement(reference, reference) == 1.0


# ---------------------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    labels = np.array([0, 0, 0, 1, 2, 2])
    predicted = np.array([1, 1, 0, 1, 0, 2])
    cm = scoring.confusion_matrix(labels, predicted, 3)
    # Two rows of true class 0 were predicted as 1 → row 0, column 1; nothing of true class 1 was predicted 0.
    assert cm.tolist() == [[1, 2, 0],
                           [0, 1, 0],
                           [1, 0, 1]]
    assert cm[0, 1] == 2 and cm[1, 0] == 0
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, predicted, labels=[0, 1, 2]))
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(labels, minlength=3))  # row sums: true counts
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(predicted, minlength=3))  # column sums: predictions


def test_confusion_matrix_against_scikit_learn_on_random_labels():
    rng = np.random.default_rng(2)
    labels, predicted = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    np.testing.assert_array_equal(scoring.confusion_matrix(labels, predicted, 5),
                                  skm.confusion_matrix(labels, predicted, labels=range(5)))


def test_confusion_matrix_has_a_row_for_every_class_even_unseen_ones():
    assert scoring.confusion_matrix([0], [0], 4).shape == (4, 4)
    assert scoring.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("labels, predicted, message", [
    ([0, 3], [0, 1], r"labels hold class indices outside 0…2"),  # label = number of classes
    ([0, -1], [0, 1], r"labels hold class indices outside 0…2"),
    ([0, 1], [0, 3], r"predictions hold class indices outside 0…2"),
])
def test_confusion_matrix_refuses_indices_outside_the_classes(labels, predicted, message):
    with pytest.raises(XaiError, match=message):
        scoring.confusion_matrix(labels, predicted, 3)


def test_confusion_matrix_accepts_the_last_class():
    assert scoring.confusion_matrix([2, 2], [2, 0], 3)[2].tolist() == [1, 0, 1]


# ---------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_matches_an_independent_numpy_bootstrap():
    rng = np.random.default_rng(3)
    correct = rng.random(80) < 0.7
    statistic = lambda i: float(correct[i].mean())
    got = scoring.bootstrap_interval(statistic, 80, n_bootstrap=500, seed=11)
    assert got == pytest.approx(numpy_bootstrap(statistic, 80, 500, 11), abs=1e-12)


def test_score_with_interval_matches_an_independent_bootstrap_for_accuracy_and_r2():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 60)
    predicted = np.where(rng.random(60) < 0.8, labels, (labels + 1) % 3)
    point, (low, high) = scoring.score_with_interval("classification", predicted, labels, n_bootstrap=400, seed=5)
    assert point == pytest.approx(np.mean(predicted == labels))
    expected = numpy_bootstrap(lambda i: np.mean(predicted[i] == labels[i]), 60, 400, 5)
    assert (low, high) == pytest.approx(expected, abs=1e-12)
    assert low <= point <= high and low < high

    y = rng.normal(size=40)
    pred = y + rng.normal(scale=0.5, size=40)
    point, interval = scoring.score_with_interval("regression", pred, y, n_bootstrap=300, seed=6)
    assert point == pytest.approx(skm.r2_score(y, pred))
    assert interval == pytest.approx(numpy_bootstrap(lambda i: skm.r2_score(y[i], pred[i]), 40, 300, 6), abs=1e-9)


def test_all_correct_gives_the_interval_1_1_and_all_wrong_0_0():
    labels = np.array([0, 1, 2, 1, 0])
    assert scoring.score_with_interval("classification", labels, labels, n_bootstrap=50) == (1.0, (1.0, 1.0))
    assert scoring.score_with_interval("classification", (labels + 1) % 3, labels, n_bootstrap=50) == (0.0, (0.0, 0.0))


def test_the_interval_shrinks_as_rows_grow():
    widths = []
    for n in (40, 400, 4000):
        correct = np.arange(n) % 4 != 0  # accuracy exactly 0.75 at every n
        low, high = scoring.bootstrap_interval(lambda i: float(correct[i].mean()), n, n_bootstrap=300, seed=0)
        assert low <= 0.75 <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # Roughly the normal approximation 2·1.96·sqrt(p(1−p)/n).
    assert widths[1] == pytest.approx(2 * 1.96 * np.sqrt(0.75 * 0.25 / 400), rel=0.25)


def test_the_bootstrap_level_sets_the_percentiles():
    values = np.arange(100, dtype=float)
    narrow = scoring.bootstrap_interval(lambda i: float(values[i].mean()), 100, 300, seed=1, level=0.5)
    wide = scoring.bootstrap_interval(lambda i: float(values[i].mean()), 100, 300, seed=1, level=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert narrow == pytest.approx(numpy_bootstrap(lambda i: values[i].mean(), 100, 300, 1, level=0.5), abs=1e-12)


def test_undefined_resamples_are_left_out_and_no_rows_give_nan():
    y = np.array([1.0, 1.0, 1.0, 1.0, 5.0])  # resamples without the 5 have an undefined R²
    pred = np.array([1.1, 0.9, 1.0, 1.2, 4.0])
    statistic = lambda i: scoring.r2_score(y[i], pred[i])
    low, high = scoring.bootstrap_interval(statistic, 5, n_bootstrap=200, seed=0)
    assert np.isfinite(low) and np.isfinite(high)
    assert (low, high) == pytest.approx(numpy_bootstrap(statistic, 5, 200, 0), abs=1e-12)
    assert all(np.isnan(v) for v in scoring.bootstrap_interval(lambda i: 1.0, 0))
    assert all(np.isnan(v) for v in scoring.bootstrap_interval(lambda i: float("nan"), 5, n_bootstrap=10))


# ---------------------------------------------------------------------------------------- per-row drop


def test_per_row_accuracy_drop_averages_to_the_accuracy_drop():
    labels = np.array([0, 1, 2, 1])
    base = np.eye(3)[[0, 1, 2, 0]]  # 3 of 4 right
    new = np.eye(3)[[0, 2, 2, 1]]  # 3 of 4 right, other rows
    drop = scoring.per_row_score_drop("classification", base, new, labels)
    assert drop.tolist() == [0.0, 1.0, 0.0, -1.0]
    assert drop.mean() == pytest.approx(scoring.score("classification", base, labels)
                                        - scoring.score("classification", new, labels))


def test_per_row_r2_drop_averages_to_the_r2_drop():
    rng = np.random.default_rng(7)
    y = rng.normal(size=30)
    base, new = (y + rng.normal(scale=0.2, size=30))[:, None], (y + rng.normal(scale=0.8, size=30))[:, None]
    drop = scoring.per_row_score_drop("regression", base, new, y)
    assert drop.mean() == pytest.approx(skm.r2_score(y, base[:, 0]) - skm.r2_score(y, new[:, 0]), abs=1e-12)


def test_per_row_drop_without_labels_is_the_mean_absolute_change():
    base = np.array([[0.2, 0.8], [0.5, 0.5]])
    new = np.array([[0.6, 0.4], [0.5, 0.5]])
    assert scoring.per_row_score_drop("classification", base, new, None).tolist() == pytest.approx([0.4, 0.0])


def test_per_row_r2_drop_refuses_constant_labels():
    with pytest.raises(XaiError, match="All labels are equal"):
        scoring.per_row_score_drop("regression", np.ones((3, 1)), np.zeros((3, 1)), np.array([2.0, 2.0, 2.0]))

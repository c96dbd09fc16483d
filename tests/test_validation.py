"""xai_core.validation: labels → class indices at every boundary, table checks, column matching, suggestions."""

import numpy as np
import pandas as pd
import pytest

from xai_core import XaiError
from xai_core.validation import check_same_columns, check_table, class_indices, did_you_mean

CLASSES = ("cat", "dog", "fox")


# ---------------------------------------------------------------------------------------- class_indices


def test_names_become_their_positions():
    assert class_indices(["fox", "cat", "dog", "cat"], CLASSES).tolist() == [2, 0, 1, 0]
    assert class_indices(pd.Series([" dog ", "fox"], index=[7, 3]), CLASSES).tolist() == [1, 2]  # stripped, reindexed


def test_indices_stay_indices():
    result = class_indices([2, 0, 1], CLASSES)
    assert result.tolist() == [2, 0, 1] and result.dtype == np.int64
    assert class_indices(np.array([0.0, 2.0]), CLASSES).tolist() == [0, 2]  # whole floats (a CSV column read as float)
    assert class_indices(["0", "2"], CLASSES).tolist() == [0, 2]  # index text (folder names)


def test_the_last_class_index_is_accepted():
    assert class_indices([2], CLASSES).tolist() == [2]
    assert class_indices(["2"], CLASSES).tolist() == [2]


@pytest.mark.parametrize("values, shown", [
    ([0, 3], r"\['3'\]"),  # label = number of classes
    (["3"], r"\['3'\]"),
    ([0, -1], r"\['-1'\]"),
    ([0.5, 1], r"\['0.5'\]"),
    ([1.0000001], r"\['1.0000001'\]"),
    (["cow", "cat"], r"\['cow'\]"),
    ([10**9], r"\['1000000000'\]"),
])
def test_values_that_are_neither_names_nor_indices_are_refused_by_name(values, shown):
    with pytest.raises(XaiError, match=shown + r" are neither classes of this model \(cat, dog, fox\) nor class "
                                              r"indices 0…2"):
        class_indices(values, CLASSES)


def test_label_equal_to_the_number_of_classes_is_refused_for_two_classes():
    assert class_indices([0, 1], ("no", "yes")).tolist() == [0, 1]
    with pytest.raises(XaiError, match=r"\['2'\].*indices 0…1"):
        class_indices([0, 1, 2], ("no", "yes"))


def test_names_win_over_indices_for_classes_named_by_numbers():
    numbered = ("1", "2", "3")
    assert class_indices(["1", "2", "3"], numbered).tolist() == [0, 1, 2]
    assert class_indices([1, 3], numbered).tolist() == [0, 2]  # numbers that are names read as names
    assert class_indices(["3", "3"], numbered).tolist() == [2, 2]
    # '0' is no class name, so the column is read as indices; 3 is then one past the last.
    assert class_indices(["0", "1", "2"], numbered).tolist() == [0, 1, 2]
    with pytest.raises(XaiError, match=r"mix class names \(\['3'\]\) and class indices \(\['0'\]\)"):
        class_indices(["0", "3"], numbered)  # '0' only an index, '3' only a name: no single reading fits


def test_labels_mixing_names_and_indices_are_named_in_the_message():
    with pytest.raises(XaiError, match=r"'0'.*'3'|'3'.*'0'"):
        class_indices(["0", "3"], ("1", "2", "3"))


def test_missing_labels_and_missing_classes_are_refused():
    with pytest.raises(XaiError, match=r"Labels: 1 value\(s\) are missing"):
        class_indices(pd.Series(["cat", None, "dog"]), CLASSES)
    with pytest.raises(XaiError, match=r"2 value\(s\) are missing"):
        class_indices(np.array([0.0, np.nan, np.nan]), CLASSES)
    with pytest.raises(XaiError, match="no class names"):
        class_indices([0], ())


def test_the_message_names_what_was_checked_and_the_hint():
    with pytest.raises(XaiError, match=r"^Target values in 'y' \['7'\] .* 0…2\. Pick the label column\.$"):
        class_indices([7], CLASSES, "Target values in 'y'", " Pick the label column.")


def test_many_classes_are_shown_shortened():
    names = tuple(f"c{i}" for i in range(12))
    with pytest.raises(XaiError, match=r"\(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 …\) nor class indices 0…11"):
        class_indices([12], names)
    assert class_indices([11], names).tolist() == [11]


# ---------------------------------------------------------------------------------------- check_table


def test_a_numeric_frame_passes_with_its_names():
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, -1.0]})
    array, names = check_table(frame, "rows")
    assert array.dtype == np.float64 and array.tolist() == [[1.0, 0.5], [2.0, -1.0]] and names == ["a", "b"]
    array, names = check_table([[1, 2], [3, 4]], "rows")
    assert array.tolist() == [[1.0, 2.0], [3.0, 4.0]] and names is None


@pytest.mark.parametrize("data, message", [
    (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), r"The rows have non-numeric columns \['b'\]"),
    ([["a", "b"]], r"The rows must be numeric"),
    (np.zeros(3), r"must be 2-D .*got 1-D.*reshape\(1, -1\)"),
    (np.zeros((2, 2, 2)), r"must be 2-D .*got shape \(2, 2, 2\)"),
    (np.zeros((0, 3)), r"are empty \(shape \(0, 3\)\)"),
    (np.zeros((3, 0)), r"are empty \(shape \(3, 0\)\)"),
    (pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [np.inf, 1.0, 2.0]}),
     r"missing \(NaN\) or infinite values: \{'a': 1, 'b': 1\} \(rows \[1, 2\]"),
    (np.array([[1.0, 2.0], [3.0, -np.inf]]), r"\{'column 1': 1\} \(rows \[2\]"),
])
def test_table_problems_are_named(data, message):
    with pytest.raises(XaiError, match=message):
        check_table(data, "rows")


def test_a_single_finite_cell_passes():
    assert check_table(np.array([[0.0]]), "rows")[0].shape == (1, 1)


# ---------------------------------------------------------------------------------------- columns


def test_same_columns_pass_and_unnamed_tables_are_not_compared():
    check_same_columns(["a", "b"], ["a", "b"], "background", "data")
    check_same_columns(None, ["a", "b"], "background", "data")
    check_same_columns(["x"], None, "background", "data")


def test_reordered_columns_are_refused_as_reordered():
    with pytest.raises(XaiError, match="same columns as the data but in another order"):
        check_same_columns(["b", "a"], ["a", "b"], "background", "data")


def test_different_columns_name_the_missing_and_extra_ones():
    with pytest.raises(XaiError, match=r"background's columns do not match the data's \(missing \['b'\], extra \['z'\]\)"):
        check_same_columns(["a", "z"], ["a", "b"], "background", "data")
    with pytest.raises(XaiError, match=r"missing \[\], extra \['c'\]"):
        check_same_columns(["a", "b", "c"], ["a", "b"], "background", "data")


def test_did_you_mean_suggests_the_closest_name_or_nothing():
    assert did_you_mean("alcohl", ["alcohol", "ash", "hue"]) == " Did you mean 'alcohol'?"
    assert did_you_mean("zzz", ["alcohol", "ash", "hue"]) == ""
    assert did_you_mean("x", []) == ""

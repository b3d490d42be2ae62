"""Accuracy, sensitivity, specificity and balanced accuracy against hand counts and sklearn."""

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from evaluation.classification import (
    accuracy,
    balanced_accuracy,
    binary_report,
    confusion_counts,
    sensitivity,
    specificity,
)

# (y_true, y_pred, tp, fp, tn, fn), positive class 1
CASES = [
    ([1, 1, 0, 0], [1, 0, 0, 1], 1, 1, 1, 1),
    ([1, 1, 1, 0, 0], [1, 1, 1, 1, 0], 3, 1, 1, 0),
    ([0, 0, 0], [0, 1, 0], 0, 1, 2, 0),
]


@pytest.mark.parametrize("y_true, y_pred, tp, fp, tn, fn", CASES)
def test_counts_by_hand(y_true, y_pred, tp, fp, tn, fn):
    assert confusion_counts(y_true, y_pred) == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    report = binary_report(y_true, y_pred)
    assert report["acc"] == pytest.approx((tp + tn) / len(y_true))
    assert report["sp"] == pytest.approx(tn / (tn + fp))


def test_against_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 101)
    y_pred = rng.integers(0, 2, 101)
    assert accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert sensitivity(y_true, y_pred) == pytest.approx(recall_score(y_true, y_pred, pos_label=1))
    assert specificity(y_true, y_pred) == pytest.approx(recall_score(y_true, y_pred, pos_label=0))
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    # Swapping the positive class swaps sensitivity and specificity.
    assert sensitivity(y_true, y_pred, positive=0) == pytest.approx(specificity(y_true, y_pred))


def test_probabilities_are_turned_into_labels():
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    assert confusion_counts([1, 0, 0], probs) == {"tp": 1, "fp": 1, "tn": 1, "fn": 0}


def test_undefined_rate_is_nan_and_mismatch_is_an_error():
    assert math.isnan(sensitivity([0, 0], [0, 1]))
    with pytest.raises(ValueError, match="one label per sample; received 3 and 2"):
        accuracy([0, 1, 1], [0, 1])

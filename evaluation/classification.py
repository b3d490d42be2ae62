"""Binary classification metrics with an explicit positive class (e.g. malignant = 1).

Formula (counts over the samples, positive class P):
    accuracy          = (TP + TN) / N
    sensitivity       = TP / (TP + FN)      (recall of the positive class)
    specificity       = TN / (TN + FP)      (recall of the negative class)
    balanced accuracy = (sensitivity + specificity) / 2

A rate whose denominator is 0 (no positive or no negative sample) is NaN, not 0 or 1:
it is undefined, and a mean over runs should show that.
"""

from __future__ import annotations

import numpy as np


def _as_labels(values, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] > 1:  # probabilities or one-hot -> class index
        a = np.argmax(a, axis=1)
    a = a.reshape(-1)
    if a.size and not np.all(np.isfinite(a.astype(float))):
        raise ValueError(f"`{name}` holds non-finite values")
    return a


def confusion_counts(y_true, y_pred, positive: int = 1) -> dict:
    """TP, FP, TN, FN counts. ``y_pred`` may be labels or (n, C) probabilities."""
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"`y_true` and `y_pred` must hold one label per sample; received {t.shape[0]} and {p.shape[0]} labels"
        )
    t_pos, p_pos = t == positive, p == positive
    return {
        "tp": int(np.sum(t_pos & p_pos)),
        "fp": int(np.sum(~t_pos & p_pos)),
        "tn": int(np.sum(~t_pos & ~p_pos)),
        "fn": int(np.sum(t_pos & ~p_pos)),
    }


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def accuracy(y_true, y_pred) -> float:
    c = confusion_counts(y_true, y_pred)
    return _ratio(c["tp"] + c["tn"], sum(c.values()))


def sensitivity(y_true, y_pred, positive: int = 1) -> float:
    c = confusion_counts(y_true, y_pred, positive)
    return _ratio(c["tp"], c["tp"] + c["fn"])


def specificity(y_true, y_pred, positive: int = 1) -> float:
    c = confusion_counts(y_true, y_pred, positive)
    return _ratio(c["tn"], c["tn"] + c["fp"])


def balanced_accuracy(y_true, y_pred, positive: int = 1) -> float:
    return 0.5 * (sensitivity(y_true, y_pred, positive) + specificity(y_true, y_pred, positive))


def binary_report(y_true, y_pred, positive: int = 1) -> dict:
    """All of the above in one dict: acc, se, sp, balanced_acc, and the counts."""
    c = confusion_counts(y_true, y_pred, positive)
    se = _ratio(c["tp"], c["tp"] + c["fn"])
    sp = _ratio(c["tn"], c["tn"] + c["fp"])
    return {
        "acc": _ratio(c["tp"] + c["tn"], sum(c.values())),
        "se": se,
        "sp": sp,
        "balanced_acc": 0.5 * (se + sp),
        **c,
    }

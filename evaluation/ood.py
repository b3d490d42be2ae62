"""Out-of-distribution detection metrics (Hendrycks and Gimpel 2017; Liang et al. 2018, ODIN).

Convention: in-distribution samples are the positives and a HIGHER score means "more
in-distribution" (e.g. the maximum softmax probability). Every function takes the scores of
the in-distribution samples and of the OOD samples as two 1-D arrays.

scikit-learn computes the ROC curve, the AUROC and the average precision; only what it lacks is
written here:

    fpr_at_tpr        FPR of OOD samples at the highest threshold where >= 95 % of in-dist pass
    detection_error   min over thresholds of 0.5 (1 - TPR) + 0.5 FPR
    auroc             sklearn.metrics.roc_auc_score (ties count one half)
    aupr_in / aupr_out  sklearn.metrics.average_precision_score, in-dist / OOD as positives
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)


def _labelled(in_scores, out_scores):
    """(y, s): label 1 for in-distribution, 0 for OOD, and the concatenated scores."""
    a = np.asarray(in_scores, np.float64).ravel()
    b = np.asarray(out_scores, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(
            f"OOD metrics need in- and out-of-distribution scores; received {a.size} and {b.size}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("OOD metrics: scores must be finite")
    return np.r_[np.ones(a.size), np.zeros(b.size)], np.r_[a, b]


def roc_points(in_scores, out_scores):
    """(tpr, fpr) at every distinct threshold, from (0, 0) to (1, 1); in-dist when score >= t."""
    y, s = _labelled(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return tpr, fpr


def fpr_at_tpr(in_scores, out_scores, tpr: float = 0.95) -> float:
    """FPR at the highest threshold whose TPR is at least ``tpr`` (scikit-learn has no such function)."""
    t, f = roc_points(in_scores, out_scores)
    return float(f[np.argmax(t >= tpr - 1e-12)])


def detection_error(in_scores, out_scores) -> float:
    """min over thresholds of 0.5 (1 - TPR) + 0.5 FPR (equal priors, as in ODIN's paper)."""
    t, f = roc_points(in_scores, out_scores)
    return float(np.min(0.5 * (1 - t) + 0.5 * f))


def auroc(in_scores, out_scores) -> float:
    y, s = _labelled(in_scores, out_scores)
    return float(roc_auc_score(y, s))


def aupr_in(in_scores, out_scores) -> float:
    y, s = _labelled(in_scores, out_scores)
    return float(average_precision_score(y, s))


def aupr_out(in_scores, out_scores) -> float:
    y, s = _labelled(in_scores, out_scores)
    return float(average_precision_score(1 - y, -s))


def ood_metrics(in_scores, out_scores, tpr: float = 0.95) -> dict:
    """All five metrics in percent, as in the paper's Table 1."""
    return {
        "fpr_at_95_tpr": 100 * fpr_at_tpr(in_scores, out_scores, tpr),
        "detection_error": 100 * detection_error(in_scores, out_scores),
        "auroc": 100 * auroc(in_scores, out_scores),
        "aupr_in": 100 * aupr_in(in_scores, out_scores),
        "aupr_out": 100 * aupr_out(in_scores, out_scores),
        "n_in": int(np.size(in_scores)),
        "n_out": int(np.size(out_scores)),
    }


def per_class_sensitivity(y_true, y_pred, num_classes: int) -> list[float]:
    """Recall of each class 0..num_classes-1 (NaN for a class absent from ``y_true``)."""
    values = recall_score(
        y_true, y_pred, labels=list(range(num_classes)), average=None, zero_division=np.nan
    )
    return [float(v) for v in values]


def balanced_accuracy(y_true, y_pred, num_classes: int | None = None) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn ``balanced_accuracy_score``).

    ``num_classes`` is accepted for symmetry with :func:`per_class_sensitivity` and unused.
    """
    import warnings

    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected here
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(np.asarray(y_true), np.asarray(y_pred)))

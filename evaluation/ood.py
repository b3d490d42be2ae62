"""Out-of-distribution detection metrics (Hendrycks and Gimpel 2017; Liang et al. 2018, ODIN).

Convention: in-distribution samples are the positives and a HIGHER score means "more
in-distribution" (e.g. the maximum softmax probability). Every function takes the scores of
the in-distribution samples and of the OOD samples as two 1-D arrays.

    fpr_at_tpr        FPR of OOD samples at the threshold where 95 % of in-dist pass
    detection_error   min over thresholds of 0.5 (1 - TPR) + 0.5 FPR
    auroc             area under the ROC curve (ties count one half)
    aupr_in / aupr_out  average precision with in-dist / OOD as the positive class
"""

from __future__ import annotations

import numpy as np


def _check(in_scores, out_scores):
    a = np.asarray(in_scores, np.float64).ravel()
    b = np.asarray(out_scores, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(
            f"OOD metrics need in- and out-of-distribution scores; received {a.size} and {b.size}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("OOD metrics: scores must be finite")
    return a, b


def roc_points(in_scores, out_scores):
    """(tpr, fpr) at every distinct threshold, from (0, 0) to (1, 1); predicted in-dist when score >= t."""
    a, b = _check(in_scores, out_scores)
    thresholds = np.unique(np.concatenate([a, b]))[::-1]  # descending
    tpr = np.searchsorted(np.sort(-a), -thresholds, side="right") / a.size  # mean(a >= t)
    fpr = np.searchsorted(np.sort(-b), -thresholds, side="right") / b.size
    return np.concatenate([[0.0], tpr]), np.concatenate([[0.0], fpr])


def fpr_at_tpr(in_scores, out_scores, tpr: float = 0.95) -> float:
    """FPR at the highest threshold whose TPR is at least ``tpr``."""
    t, f = roc_points(in_scores, out_scores)
    return float(f[np.argmax(t >= tpr - 1e-12)])


def detection_error(in_scores, out_scores) -> float:
    """min over thresholds of 0.5 (1 - TPR) + 0.5 FPR."""
    t, f = roc_points(in_scores, out_scores)
    return float(np.min(0.5 * (1 - t) + 0.5 * f))


def auroc(in_scores, out_scores) -> float:
    """P(score_in > score_out) + 0.5 P(equal) (Mann-Whitney U / (n_in n_out))."""
    a, b = _check(in_scores, out_scores)
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[: a.size].sum() - a.size * (a.size + 1) / 2) / (a.size * b.size))


def average_precision(pos_scores, neg_scores) -> float:
    """sum_k (R_k - R_{k-1}) P_k over distinct descending thresholds (as scikit-learn)."""
    a, b = _check(pos_scores, neg_scores)
    thresholds = np.unique(np.concatenate([a, b]))[::-1]
    tp = np.searchsorted(np.sort(-a), -thresholds, side="right").astype(float)
    fp = np.searchsorted(np.sort(-b), -thresholds, side="right").astype(float)
    precision = tp / (tp + fp)
    recall = tp / a.size
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def aupr_in(in_scores, out_scores) -> float:
    return average_precision(in_scores, out_scores)


def aupr_out(in_scores, out_scores) -> float:
    return average_precision(-np.asarray(out_scores, float), -np.asarray(in_scores, float))


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
    """Recall of each class (NaN for a class absent from ``y_true``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = []
    for c in range(num_classes):
        n = np.sum(y_true == c)
        out.append(float(np.sum((y_true == c) & (y_pred == c)) / n) if n else float("nan"))
    return out


def balanced_accuracy(y_true, y_pred, num_classes: int) -> float:
    """Mean of the per-class sensitivities over the classes present in ``y_true``."""
    return float(np.nanmean(per_class_sensitivity(y_true, y_pred, num_classes)))

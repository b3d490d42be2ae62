"""OOD metrics against independent brute-force computations, ODIN against hand computations,
the OOD image sets."""

import numpy as np
import pytest

from evaluation import ood


def _scores(seed, ties=False):
    rng = np.random.default_rng(seed)
    a = rng.normal(1.0, 1.0, 57)
    b = rng.normal(0.0, 1.0, 43)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


def _brute_force(a, b):
    """Every metric by definition, over every candidate threshold (no sklearn)."""
    thresholds = np.r_[np.inf, np.sort(np.unique(np.r_[a, b]))[::-1]]
    tpr = np.array([np.mean(a >= t) for t in thresholds])
    fpr = np.array([np.mean(b >= t) for t in thresholds])
    pairs = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])

    def ap(pos, neg):  # sum over distinct thresholds of (recall step) x precision
        out, prev = 0.0, 0.0
        for t in np.sort(np.unique(np.r_[pos, neg]))[::-1]:
            tp, fp = np.sum(pos >= t), np.sum(neg >= t)
            out += (tp / pos.size - prev) * tp / (tp + fp)
            prev = tp / pos.size
        return out

    return {
        "auroc": pairs.mean(),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
        "dterr": np.min(0.5 * (1 - tpr) + 0.5 * fpr),
        "aupr_in": ap(a, b),
        "aupr_out": ap(-b, -a),
    }


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_metrics_match_brute_force(seed, ties):
    a, b = _scores(seed, ties)
    ref = _brute_force(a, b)
    assert ood.auroc(a, b) == pytest.approx(ref["auroc"])
    assert ood.aupr_in(a, b) == pytest.approx(ref["aupr_in"])
    assert ood.aupr_out(a, b) == pytest.approx(ref["aupr_out"])
    assert ood.fpr_at_tpr(a, b, 0.95) == pytest.approx(ref["fpr95"])
    assert ood.detection_error(a, b) == pytest.approx(ref["dterr"])


def test_metrics_hand_computed():
    # in: 0.9 0.8 0.7 0.6, out: 0.75 0.1 -> pairs in>out: 2 (vs 0.75) + 4 (vs 0.1) = 6 of 8
    a, b = [0.9, 0.8, 0.7, 0.6], [0.75, 0.1]
    assert ood.auroc(a, b) == pytest.approx(6 / 8)
    # TPR >= 0.95 needs threshold 0.6: out above it: 0.75 -> FPR 1/2
    assert ood.fpr_at_tpr(a, b) == pytest.approx(0.5)
    # threshold 0.8: TPR 1/2, FPR 0 -> 0.25; threshold 0.6: TPR 1, FPR 1/2 -> 0.25
    assert ood.detection_error(a, b) == pytest.approx(0.25)
    m = ood.ood_metrics(np.ones(5), np.zeros(3))
    assert (m["auroc"], m["fpr_at_95_tpr"], m["detection_error"], m["aupr_in"], m["aupr_out"]) == (
        100,
        0,
        0,
        100,
        100,
    )


def test_metrics_reject_empty():
    with pytest.raises(ValueError, match="in- and out-of-distribution"):
        ood.auroc([], [0.1])


def test_sensitivity_and_balanced_accuracy_hand_computed():
    # shape: (8,) labels; class 3 is never true (NaN recall), class 2 is predicted but absent
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 2, 1, 1, 2, 0])
    sens = ood.per_class_sensitivity(y, p, 4)
    assert sens[:3] == pytest.approx([2 / 4, 2 / 2, 1 / 2]) and np.isnan(sens[3])
    assert ood.balanced_accuracy(y, p) == pytest.approx((0.5 + 1.0 + 0.5) / 3)


# ---------------------------------------------------------------------------- ODIN
def _linear_logit_model(w, b):
    import keras

    inp = keras.Input((2, 2, 1))
    x = keras.layers.Flatten()(inp)
    dense = keras.layers.Dense(w.shape[1])
    out = dense(x)
    dense.set_weights([w, b])
    return keras.Model(inp, out)


def test_odin_matches_numpy():
    from evaluation.odin import gradient_signs, odin_scores

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    model = _linear_logit_model(w, b)
    x = rng.uniform(0, 1, (5, 2, 2, 1)).astype("float32")
    T, eps, rng_px = 10.0, 0.01, 1.0

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    flat = x.reshape(5, 4)
    z = flat @ w + b
    s = softmax(z / T)
    k = z.argmax(1)
    # d(-log S_k)/dx = -(w[:, k] - sum_j S_j w[:, j]) / T
    grad = -(w[:, k].T - s @ w.T) / T
    # The signs are compared exactly: valid because no component lies within float32 rounding
    # of zero (TensorFlow and NumPy sum the gradient in different orders).
    assert np.abs(grad).min() > 1e-4
    x_tilde = flat - eps * np.sign(grad)
    expected = softmax((x_tilde @ w + b) / T).max(1)
    np.testing.assert_array_equal(
        gradient_signs(model, x, T).reshape(5, 4), np.sign(grad).astype(np.int8)
    )
    np.testing.assert_allclose(
        odin_scores(model, x, T, eps, pixel_range=rng_px), expected, rtol=1e-5
    )
    np.testing.assert_allclose(odin_scores(model, x, 1.0, 0.0), softmax(z).max(1), rtol=1e-5)
    # the perturbation raises the max-softmax score
    assert np.all(
        odin_scores(model, x, T, eps, pixel_range=rng_px) >= odin_scores(model, x, T, 0.0) - 1e-7
    )


def test_tune_odin_picks_the_grid_minimum():
    from evaluation.odin import tune_odin

    rng = np.random.default_rng(1)
    model = _linear_logit_model(
        rng.normal(size=(4, 3)).astype("float32") * 3, np.zeros(3, "float32")
    )
    xi = rng.uniform(0, 1, (20, 2, 2, 1)).astype("float32")
    xo = rng.uniform(0, 0.3, (20, 2, 2, 1)).astype("float32")
    t, e, table = tune_odin(
        model, xi, xo, (1.0, 100.0), (0.0, 0.01), pixel_range=1.0, verbose=False
    )
    assert len(table) == 4
    best = min(r["fpr_at_95_tpr"] for r in table)
    assert [r for r in table if r["temperature"] == t and r["epsilon"] == e][0][
        "fpr_at_95_tpr"
    ] == best

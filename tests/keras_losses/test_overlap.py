"""GLF and its special cases: exact values, equivalences, edge cases, properties."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import keras_losses as kl


def as_batch(rows):
    """Nested lists (batch, h, w) -> float32 array (batch, h, w, 1)."""
    return np.asarray(rows, dtype="float32")[..., None]


# One table of tiny hand-computable cases. Each mask has shape (1, 2, 2, 1) unless noted.
Y1 = as_batch([[[1, 0], [0, 0]]])
P_HIT_FP = as_batch([[[1, 1], [0, 0]]])  # TP=1, FP=1, FN=0
P_HALF = as_batch([[[0.5, 0], [0, 0.5]]])  # TP=0.5, FP=0.5, FN=0.5
Y2 = as_batch([[[1, 1], [0, 0]]])
P_MISS = as_batch([[[1, 0], [0, 0]]])  # vs Y2: TP=1, FP=0, FN=1

CASES = [
    # (loss, y_true, y_pred, expected)
    (kl.DiceLoss(smooth=0), Y1, P_HIT_FP, 1 - 2 / 3),  # 1 - 2TP/(2TP+FP+FN)
    (kl.DiceLoss(smooth=0), Y1, P_HALF, 1 - 1 / 2),
    (kl.DiceLoss(smooth=0), Y2, P_MISS, 1 - 2 / 3),
    (kl.GeneralizedLoss(2.0, 1.0, 1.0, smooth=0), Y1, P_HIT_FP, 1 - 2 / 4),  # 2TP/(2TP+2FP)
    (kl.GeneralizedLoss(1.0, 3.0, 1.0, smooth=0), Y2, P_MISS, 1 - 2 / 5),  # 2/(2+3*1)
    (kl.GeneralizedLoss(1.0, 1.0, 4.0, smooth=0), Y2, P_MISS, 1 - 5 / 9),  # 5TP/(5TP+FP+4FN)
    (kl.GeneralizedLoss(0.5, 2.0, 3.0, smooth=0), Y1, P_HALF, 1 - 2 / (2 + 0.25 + 3.0)),
    (kl.EffectivenessLoss(beta2=4.0, smooth=0), Y1, P_HIT_FP, 1 - 5 / 6),
    (kl.TverskyLoss(alpha=0.3, beta=0.7, smooth=0), Y2, P_MISS, 1 - 1 / 1.7),
    (kl.TverskyLoss(alpha=0.3, beta=0.7, smooth=0), Y1, P_HIT_FP, 1 - 1 / 1.3),
    (kl.SquaredDiceLoss(smooth=0), Y1, P_HALF, 1 - 1 / 1.5),  # 2*0.5 / (0.5 + 1)
    (kl.SquaredDiceLoss(smooth=0), Y2, P_MISS, 1 - 2 / 3),
]


@pytest.mark.parametrize("loss, y_true, y_pred, expected", CASES, ids=lambda v: type(v).__name__ if isinstance(v, keras.losses.Loss) else "")
def test_exact_values(loss, y_true, y_pred, expected):
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, abs=1e-6)


def test_formula_in_precision_recall_form():
    """L = 1 - (1+b2) / (1/P_ap + b2/R_an), the paper's eq. (1), on random soft masks."""
    rng = np.random.default_rng(0)
    y = (rng.random((3, 8, 8, 1)) > 0.7).astype("float32")
    p = rng.random((3, 8, 8, 1)).astype("float32")
    ap, an, b2 = 0.7, 1.8, 2.5
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    precision, recall = tp / (tp + ap * fp), tp / (tp + an * fn)
    expected = 1 - (1 + b2) / (1 / precision + b2 / recall)
    got = float(kl.GeneralizedLoss(ap, an, b2, smooth=0)(y, p))
    assert got == pytest.approx(expected, rel=1e-5)


def random_pair(seed, shape=(4, 8, 8, 1)):
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) > 0.6).astype("float32")
    p = rng.random(shape).astype("float32")
    return y, p


def textbook(y, p, per_image, formula):
    """``formula(TP, FP, FN)`` on soft counts (numpy, float64), per image and averaged, or pooled."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    axes = (1, 2, 3) if per_image else (0, 1, 2, 3)
    tp, fp, fn = (p * y).sum(axes), (p * (1 - y)).sum(axes), ((1 - p) * y).sum(axes)
    return float(np.mean(formula(tp, fp, fn)))


@pytest.mark.parametrize("per_image", [False, True])
def test_special_cases_match_their_textbook_formulas(per_image):
    """Dice, effectiveness (F-beta) and Tversky, each against its own formula written here,
    not against the GLF they are built on (which would compare the GLF with itself)."""
    y, p = random_pair(1)
    dice = textbook(y, p, per_image, lambda tp, fp, fn: 1 - 2 * tp / (2 * tp + fp + fn))
    assert float(kl.DiceLoss(per_image=per_image, smooth=0)(y, p)) == pytest.approx(dice, rel=1e-6)
    b2 = 2.5
    f_beta = textbook(y, p, per_image, lambda tp, fp, fn: 1 - (1 + b2) * tp / ((1 + b2) * tp + fp + b2 * fn))
    got = float(kl.EffectivenessLoss(b2, per_image=per_image, smooth=0)(y, p))
    assert got == pytest.approx(f_beta, rel=1e-6)
    a, b = 0.3, 0.7  # Tversky: a weighs false positives, b false negatives
    tversky = textbook(y, p, per_image, lambda tp, fp, fn: 1 - tp / (tp + a * fp + b * fn))
    got = float(kl.TverskyLoss(a, b, per_image=per_image, smooth=0)(y, p))
    assert got == pytest.approx(tversky, rel=1e-6)


def test_glf_is_tversky_with_mapped_coefficients():
    """GLF(ap, an, b2) == Tversky(a = ap/(1+b2), b = b2 an/(1+b2)), smoothing aside."""
    y, p = random_pair(2)
    ap, an, b2 = 1.3, 0.6, 3.0
    glf = float(kl.GeneralizedLoss(ap, an, b2, smooth=0)(y, p))
    tv = float(kl.TverskyLoss(ap / (1 + b2), b2 * an / (1 + b2), smooth=0)(y, p))
    assert glf == pytest.approx(tv, abs=1e-6)


def keras_tversky_applies_alpha_to_false_positives() -> bool:
    """Probe keras.losses.Tversky: up to Keras 3.15 its alpha weighs false NEGATIVES."""
    y = np.array([[1.0, 0.0]], dtype="float32")
    p = np.array([[1.0, 1.0]], dtype="float32")  # one TP, one FP, no FN
    return float(keras.losses.Tversky(alpha=1.0, beta=0.0)(y, p)) > 0.25


def test_matches_keras_tversky_on_either_convention():
    y, p = random_pair(3)
    alpha, beta = 0.2, 0.8  # ours: alpha on FP, beta on FN
    if keras_tversky_applies_alpha_to_false_positives():
        reference = keras.losses.Tversky(alpha=alpha, beta=beta)
    else:  # Keras <= 3.15: swapped
        reference = keras.losses.Tversky(alpha=beta, beta=alpha)
    ours = kl.TverskyLoss(alpha, beta, smooth=0)
    assert float(ours(y, p)) == pytest.approx(float(reference(y, p)), abs=1e-6)
    ap, an, b2 = 0.9, 1.7, 2.0
    a, b = ap / (1 + b2), b2 * an / (1 + b2)
    reference = keras.losses.Tversky(alpha=a, beta=b) if keras_tversky_applies_alpha_to_false_positives() else keras.losses.Tversky(alpha=b, beta=a)
    assert float(kl.GeneralizedLoss(ap, an, b2, smooth=0)(y, p)) == pytest.approx(float(reference(y, p)), abs=1e-6)


def test_per_image_averages_per_image_losses():
    y, p = random_pair(4)
    loss = kl.GeneralizedLoss(0.8, 1.2, 2.0, per_image=True)
    expected = np.mean([float(kl.GeneralizedLoss(0.8, 1.2, 2.0)(y[i : i + 1], p[i : i + 1])) for i in range(len(y))])
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-6)


def test_counts_variable_holds_last_batch_counts():
    y, p = random_pair(5)
    loss = kl.GeneralizedLoss()
    loss.state.update_state(y, p)  # the loss's state metric records a batch, not the loss
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.state.counts), [tp, fp, fn], rtol=1e-5)


# ---------------------------------------------------------------- edge cases
OVERLAP_LOSSES = [
    lambda: kl.GeneralizedLoss(0.7, 1.5, 2.0),
    lambda: kl.GeneralizedLoss(0.7, 1.5, 2.0, per_image=True),
    lambda: kl.DiceLoss(),
    lambda: kl.EffectivenessLoss(3.0),
    lambda: kl.TverskyLoss(0.3, 0.7),
    lambda: kl.SquaredDiceLoss(),
    lambda: kl.SquaredDiceLoss(per_image=False),
]
ZEROS = np.zeros((2, 4, 4, 1), "float32")
ONES = np.ones((2, 4, 4, 1), "float32")


@pytest.mark.parametrize("make", OVERLAP_LOSSES)
def test_empty_vs_empty_is_zero_and_full_vs_full_is_zero(make):
    loss = make()
    assert float(loss(ZEROS, ZEROS)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(ONES, ONES)) == pytest.approx(0.0, abs=1e-6)


def disjoint_denominator(loss) -> float:
    """The loss's denominator at TP = 0, FP = FN = 8 (squared Dice: sum(p^2) + sum(y^2) = 16)."""
    if isinstance(loss, kl.GeneralizedLoss):
        c = loss.coefficients
        return 8 * c["alpha_p"] + 8 * c["beta2"] * c["alpha_n"]
    if isinstance(loss, kl.TverskyLoss):
        return 8 * loss.alpha + 8 * loss.beta
    if isinstance(loss, kl.EffectivenessLoss):
        return 8 + 8 * loss.beta2
    return 16.0  # Dice, squared Dice


@pytest.mark.parametrize("make", OVERLAP_LOSSES)
def test_disjoint_hard_masks_give_one_up_to_smoothing(make):
    loss = make()
    y = np.zeros((1, 4, 4, 1), "float32")
    y[0, :2] = 1
    # 8 FP and 8 FN, TP = 0: the smoothing constant s leaves 1 - s / (den + s).
    value = float(loss(y, 1 - y))
    den = disjoint_denominator(loss)
    assert value == pytest.approx(1 - loss.smooth / (den + loss.smooth), abs=1e-6)
    config = loss.get_config()
    config.update({key: 0.0 for key in ("smooth", "smooth_nr", "smooth_dr") if key in config})
    unsmoothed = type(loss).from_config(config)
    assert float(unsmoothed(y, 1 - y)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("make", OVERLAP_LOSSES + [lambda: kl.BinaryFocalLoss(), lambda: kl.CombinedLoss([keras.losses.BinaryCrossentropy(), kl.SquaredDiceLoss(), kl.BinaryFocalLoss()])])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", ["empty", "full", "hard_wrong", "hard_right"])
def test_finite_loss_and_gradients(make, dtype, case, grad_of):
    y = {"empty": ZEROS, "full": ONES, "hard_wrong": ONES, "hard_right": ZEROS}[case]
    p0 = {"empty": ZEROS, "full": ONES, "hard_wrong": ZEROS, "hard_right": ZEROS}[case]
    value, grad = grad_of(make(), y, p0, dtype)
    assert np.isfinite(value)
    assert grad is not None and np.isfinite(grad).all()


# ---------------------------------------------------------------- properties
masks = arrays("float32", (3, 5, 5, 1), elements=st.floats(0, 1, width=32))
coef = st.floats(0.05, 20.0)


@settings(max_examples=40, deadline=None)
@given(y=masks, p=masks, ap=coef, an=coef, b2=coef, per_image=st.booleans())
def test_overlap_losses_lie_in_unit_interval(y, p, ap, an, b2, per_image):
    for loss in (kl.GeneralizedLoss(ap, an, b2, per_image=per_image), kl.SquaredDiceLoss(per_image=per_image)):
        value = float(loss(y, p))
        assert -1e-6 <= value <= 1 + 1e-6


@settings(max_examples=30, deadline=None)
@given(y=masks, p=masks, ap=coef, an=coef, b2=coef, perm=st.permutations([0, 1, 2]))
def test_pooled_mode_is_invariant_to_batch_order(y, p, ap, an, b2, perm):
    loss = kl.GeneralizedLoss(ap, an, b2)
    assert float(loss(y[list(perm)], p[list(perm)])) == pytest.approx(float(loss(y, p)), rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: kl.GeneralizedLoss(alpha_p=0.0), r"`alpha_p` must be a positive number; received 0.0"),
        (lambda: kl.GeneralizedLoss(alpha_n=-1), r"`alpha_n` must be a positive number; received -1"),
        (lambda: kl.GeneralizedLoss(beta2=float("nan")), r"`beta2` must be a positive number; received nan"),
        (lambda: kl.GeneralizedLoss(beta2="big"), r"`beta2` must be a positive number; received 'big'"),
        (lambda: kl.EffectivenessLoss(beta2=0), r"`beta2`.*received 0"),
        (lambda: kl.TverskyLoss(alpha=-0.1), r"`alpha`.*received -0.1"),
        (lambda: kl.BinaryFocalLoss(gamma=-2), r"`gamma`.*received -2"),
        (lambda: kl.ContrastiveLoss(margin=0), r"`margin`.*received 0"),
        (lambda: kl.CombinedLoss([kl.DiceLoss()], weights=[1, 2]), r"`weights` must have one entry per loss \(1\); received 2"),
        (lambda: kl.ClassWeightedCategoricalCrossentropy([1.0, -0.5]), r"`class_weights\[1\]`.*received -0.5"),
        (lambda: kl.ClassWeightedCategoricalCrossentropy([0.0, 0.0]), r"`class_weights` must hold at least one weight > 0"),
    ],
)
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_set_coefficients_validates():
    loss = kl.GeneralizedLoss()
    with pytest.raises(ValueError, match=r"`alpha_n` must be a positive number; received -3"):
        loss.set_coefficients(alpha_n=-3)
    loss.set_coefficients(alpha_p=2.0)
    assert loss.coefficients == {"alpha_p": 2.0, "alpha_n": 1.0, "beta2": 1.0}


@pytest.mark.parametrize("make", OVERLAP_LOSSES + [lambda: kl.BinaryFocalLoss()])
def test_shape_mismatch_names_both_shapes(make):
    # (labels of one channel with a two-class prediction are an integer label map, not a mismatch)
    with pytest.raises(ValueError, match=r"same shape; received y_true.shape=\(2, 4, 4, 3\) and y_pred.shape=\(2, 4, 4, 2\)"):
        make()(np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 4, 4, 2), "float32"))


@pytest.mark.parametrize("make", OVERLAP_LOSSES + [lambda: kl.BinaryFocalLoss()])
def test_labels_outside_unit_interval_are_refused(make):
    y = ZEROS.copy()
    y[0, 0, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"`y_true` must hold values in \[0, 1\]; received values in \[0, 2\]"):
        make()(y, ZEROS)

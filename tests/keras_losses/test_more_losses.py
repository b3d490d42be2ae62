"""The losses beyond the four studies, each against a numpy reference written from its formula.

Generalized Dice, Jaccard, focal Tversky, exponential logarithmic, Combo, the unified focal
family, Dice + CE, Dice + focal, and the cross-entropy family (logits, pos_weight, class
weights, categorical focal).
"""

import keras
import numpy as np
import pytest

import keras_losses as kl

EPS = 1e-7
RNG = np.random.default_rng(7)
LABELS = RNG.integers(0, 3, size=(2, 5, 4))  # shape: (2, 5, 4), 3 classes
LOGITS = (RNG.normal(size=(2, 5, 4, 3)) * 2).astype("float32")
Y = np.eye(3)[LABELS]
Z = LOGITS.astype(np.float64)
P = np.exp(Z - Z.max(-1, keepdims=True))
P /= P.sum(-1, keepdims=True)
P32 = P.astype("float32")
Y1 = (RNG.random((3, 6, 6, 1)) > 0.6).astype("float32")  # one channel
Z1 = (RNG.normal(size=(3, 6, 6, 1)) * 2).astype("float32")
P1 = (1 / (1 + np.exp(-Z1.astype(np.float64)))).astype("float32")
MASK = (RNG.random((2, 5, 4)) > 0.3).astype("float32")


def counts(y, p, per_image=False, w=None):
    w = np.ones(y.shape[:-1] + (1,)) if w is None else w
    axes = tuple(range(1, y.ndim - 1)) if per_image else tuple(range(y.ndim - 1))
    return (w * p * y).sum(axes), (w * p * (1 - y)).sum(axes), (w * (1 - p) * y).sum(axes)


# ---------------------------------------------------------------- overlap losses
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weighting", ["square", "simple", "uniform"])
def test_generalized_dice(per_image, weighting):
    y = Y.copy()
    y[0, ..., 2] = 0  # class 2 absent from image 0: its weight is the largest present one
    y[0, ..., 0] = 1 - y[0, ..., 1]
    tp, fp, fn = counts(y, P, per_image)
    r = tp + fn
    with np.errstate(divide="ignore"):
        w = {"square": 1 / r**2, "simple": 1 / r, "uniform": np.ones_like(r)}[weighting]
    w = np.where(np.isinf(w), np.max(np.where(np.isinf(w), 0, w), axis=-1, keepdims=True), w)
    expected = np.mean(
        1 - (2 * (w * tp).sum(-1) + 1e-5) / ((w * (2 * tp + fp + fn)).sum(-1) + 1e-5)
    )
    got = kl.GeneralizedDiceLoss(weighting=weighting, per_image=per_image)(y, P32)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_generalized_dice_is_not_the_glf():
    assert kl.GeneralizedDiceLoss.__doc__.count("Not the generalized loss function (GLF)") == 1


@pytest.mark.parametrize("per_image", [False, True])
def test_jaccard(per_image):
    tp, fp, fn = counts(Y, P, per_image)
    expected = np.mean(1 - (tp + 0.5) / (tp + fp + fn + 2.0))
    got = kl.JaccardLoss(per_image=per_image, smooth_nr=0.5, smooth_dr=2.0)(Y, P32)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    same = kl.TverskyLoss(1.0, 1.0, per_image=per_image, smooth_nr=0.5, smooth_dr=2.0)(Y, P32)
    assert float(got) == pytest.approx(float(same), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.75, 1.0, 2.0])
def test_focal_tversky(gamma):
    tp, fp, fn = counts(Y, P)
    ti = (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)  # alpha on FP, beta on FN
    expected = np.mean((1 - ti) ** gamma)
    assert float(kl.FocalTverskyLoss(gamma=gamma)(Y, P32)) == pytest.approx(expected, rel=1e-5)
    if gamma == 1.0:
        assert float(kl.FocalTverskyLoss(gamma=1.0)(Y, P32)) == pytest.approx(
            float(kl.TverskyLoss(0.3, 0.7, smooth=1.0)(Y, P32)), rel=1e-6
        )


def test_dice_matches_keras_dice_on_one_channel():
    assert float(kl.DiceLoss(smooth=0)(Y1, P1)) == pytest.approx(
        float(keras.losses.Dice()(Y1, P1)), abs=1e-6
    )


# ---------------------------------------------------------------- compound losses
def test_exp_log_multiclass():
    tp, fp, fn = counts(Y, P)
    dice = (2 * tp + 1) / (2 * tp + fp + fn + 1)
    l_dice = np.mean((-np.log(dice)) ** 0.3)
    lw = np.array([0.5, 1.0, 2.0])
    l_ce = np.mean(((-np.log(P)) ** 0.3 * Y * lw).sum(-1))
    expected = 0.8 * l_dice + 0.2 * l_ce
    assert float(kl.ExpLogLoss(label_weights=lw)(Y, P32)) == pytest.approx(expected, rel=1e-5)
    assert float(
        kl.ExpLogLoss(label_weights=lw, from_logits=True)(LABELS, LOGITS)
    ) == pytest.approx(expected, rel=1e-5)


def test_exp_log_one_channel_uses_background_and_foreground():
    y, p = Y1.astype(np.float64), P1.astype(np.float64)
    tp, fp, fn = counts(y, p)
    l_dice = ((-np.log((2 * tp + 1) / (2 * tp + fp + fn + 1))) ** 0.3).mean()
    pt = np.clip(np.where(y == 1, p, 1 - p), EPS, 1 - EPS)
    expected = 0.8 * l_dice + 0.2 * np.mean((-np.log(pt)) ** 0.3)
    assert float(kl.ExpLogLoss()(Y1, P1)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha, beta", [(0.5, 0.5), (0.3, 0.8)])
def test_combo(alpha, beta):
    y, p = Y1.astype(np.float64), P1.astype(np.float64)
    tp, fp, fn = counts(y, p)
    dsc = ((2 * tp + 1) / (2 * tp + fp + fn + 1)).mean()
    pc = np.clip(p, EPS, 1 - EPS)
    mbce = -np.mean(beta * y * np.log(pc) + (1 - beta) * (1 - y) * np.log(1 - pc))
    expected = alpha * mbce - (1 - alpha) * dsc
    assert float(kl.ComboLoss(alpha, beta)(Y1, P1)) == pytest.approx(expected, rel=1e-5)
    assert float(kl.ComboLoss(alpha, beta, from_logits=True)(Y1, Z1)) == pytest.approx(
        expected, rel=1e-4
    )


def test_dice_ce_multiclass_and_binary():
    tp, fp, fn = counts(Y, P)
    dice = np.mean(1 - (2 * tp + 1) / (2 * tp + fp + fn + 1))
    ce = np.mean(-(Y * np.log(P)).sum(-1))
    got = kl.DiceCELoss(lambda_dice=0.7, lambda_ce=1.3, from_logits=True)(LABELS, LOGITS)
    assert float(got) == pytest.approx(0.7 * dice + 1.3 * ce, rel=1e-5)
    y, p = Y1.astype(np.float64), P1.astype(np.float64)
    tp, fp, fn = counts(y, p)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = (1 - (2 * tp + 1) / (2 * tp + fp + fn + 1)).mean() + bce
    assert float(kl.DiceCELoss(from_logits=True)(Y1, Z1)) == pytest.approx(expected, rel=1e-5)


def test_dice_focal():
    tp, fp, fn = counts(Y, P)
    dice = np.mean(1 - (2 * tp + 1) / (2 * tp + fp + fn + 1))
    alpha = np.array([0.2, 0.5, 1.0])
    focal = np.mean((-alpha * (1 - P) ** 2 * Y * np.log(P)).sum(-1))
    got = kl.DiceFocalLoss(alpha=list(alpha), from_logits=True)(Y, LOGITS)
    assert float(got) == pytest.approx(dice + focal, rel=1e-5)


# ---------------------------------------------------------------- unified focal family
def two_class(y, p):
    return np.concatenate([1 - y, y], -1), np.concatenate([1 - p, p], -1)


def np_unified(y, p, delta, gamma, kind, s=1e-6, weight=0.5):
    """The family from Yeung et al.'s equations (channel 0 = background)."""
    d = np.full(y.shape[-1], delta)
    d[0] = 1 - delta
    ce = -y * np.log(np.clip(p, EPS, 1 - EPS))
    mod = (1 - p) ** gamma
    if kind in ("asym_focal", "asym_unified"):
        mod[..., 1:] = 1.0
    focal = np.mean((d * mod * ce).sum(-1))
    tp, fp, fn = counts(y, p)
    mti = (tp + s) / (tp + delta * fn + (1 - delta) * fp + s)
    ftl = (1 - mti) ** (1 - gamma)
    if kind in ("asym_ftl", "asym_unified"):
        ftl[0] = 1 - mti[0]
    ftl = ftl.mean()
    return {
        "sym_focal": focal,
        "asym_focal": focal,
        "sym_ftl": ftl,
        "asym_ftl": ftl,
        "sym_unified": weight * focal + (1 - weight) * ftl,
        "asym_unified": weight * focal + (1 - weight) * ftl,
    }[kind]


FAMILY = {
    "sym_focal": lambda: kl.SymmetricFocalLoss(delta=0.7, gamma=2.0),
    "asym_focal": lambda: kl.AsymmetricFocalLoss(delta=0.7, gamma=2.0),
    "sym_ftl": lambda: kl.SymmetricFocalTverskyLoss(delta=0.7, gamma=0.75),
    "asym_ftl": lambda: kl.AsymmetricFocalTverskyLoss(delta=0.7, gamma=0.75),
    "sym_unified": lambda: kl.UnifiedFocalLoss(weight=0.3, delta=0.6, gamma=0.5, asymmetric=False),
    "asym_unified": lambda: kl.UnifiedFocalLoss(weight=0.3, delta=0.6, gamma=0.5),
}


@pytest.mark.parametrize("kind", FAMILY)
@pytest.mark.parametrize("channels", [1, 3])
def test_unified_focal_family(kind, channels):
    loss = FAMILY[kind]()
    weight = getattr(loss, "weight", 0.5)
    if channels == 1:
        y, p = two_class(Y1.astype(np.float64), P1.astype(np.float64))
        got, expected = loss(Y1, P1), np_unified(y, p, loss.delta, loss.gamma, kind, weight=weight)
    else:
        got, expected = loss(Y, P32), np_unified(Y, P, loss.delta, loss.gamma, kind, weight=weight)
    assert float(got) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- cross-entropy family
@pytest.mark.parametrize(
    "z, y", [(30.0, 1.0), (30.0, 0.0), (-30.0, 1.0), (-30.0, 0.0), (-20.0, 1.0)]
)
def test_bce_and_focal_from_logits_at_large_logits(z, y):
    yt = np.full((1, 2, 2, 1), y, "float32")
    zt = np.full((1, 2, 2, 1), z, "float32")
    bce = np.logaddexp(0, -z) if y == 1 else np.logaddexp(0, z)  # -log sigmoid(+-z)
    assert float(kl.BinaryCrossentropyLoss(from_logits=True)(yt, zt)) == pytest.approx(
        bce, abs=1e-4
    )
    p = 1 / (1 + np.exp(-z))
    pt = p if y == 1 else 1 - p
    for gamma in (0.0, 2.0):
        focal = (1 - pt) ** gamma * bce
        got = float(kl.BinaryFocalLoss(gamma=gamma, from_logits=True)(yt, zt))
        assert got == pytest.approx(focal, abs=1e-4)


def test_bce_pos_weight_and_mask():
    y, p = Y1.astype(np.float64), P1.astype(np.float64)
    w = (RNG.random(Y1.shape[:-1]) > 0.4).astype("float32")
    losses = -(3.0 * y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = (w[..., None] * losses).sum() / w.sum()
    got = kl.BinaryCrossentropyLoss(pos_weight=3.0, from_logits=True)(Y1, Z1, sample_weight=w)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(got) != pytest.approx(
        w.mean() * float(kl.BinaryCrossentropyLoss(pos_weight=3.0, from_logits=True)(Y1, Z1)),
        rel=1e-3,
    )


def test_bce_matches_keras():
    got = kl.BinaryCrossentropyLoss()(Y1, P1)
    assert float(got) == pytest.approx(float(keras.losses.BinaryCrossentropy()(Y1, P1)), rel=1e-5)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 4.0], [0.0, 1.0, 3.0]])
def test_categorical_ce_class_weights_normalised_by_their_sum(weights):
    cw = np.ones(3) if weights is None else np.asarray(weights)
    losses = -(Y * np.log(P)).sum(-1)
    v = (Y * cw).sum(-1)
    expected = (v * losses).sum() / v.sum()
    assert float(kl.CategoricalCrossentropyLoss(weights)(LABELS, P32)) == pytest.approx(
        expected, rel=1e-5
    )
    got = kl.CategoricalCrossentropyLoss(weights, from_logits=True)(Y, LOGITS)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    if weights is None:
        assert float(got) == pytest.approx(
            float(keras.losses.CategoricalCrossentropy(from_logits=True)(Y, LOGITS)), rel=1e-5
        )


def test_categorical_ce_ignore_class_and_mask():
    labels = LABELS.copy()
    labels[1, 0] = -1  # void
    keep = (labels != -1) * MASK
    losses = -np.log(np.take_along_axis(P, np.where(labels < 0, 0, labels)[..., None], -1))[..., 0]
    expected = (keep * losses).sum() / keep.sum()
    got = kl.CategoricalCrossentropyLoss(ignore_class=-1)(labels, P32, sample_weight=MASK)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_categorical_focal_matches_keras_and_per_class_alpha():
    ref = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)
    assert float(kl.CategoricalFocalLoss()(Y, P32)) == pytest.approx(float(ref(Y, P32)), rel=1e-5)
    alpha = np.array([0.1, 0.3, 0.6])
    expected = np.mean((-alpha * (1 - P) ** 2 * Y * np.log(P)).sum(-1))
    got = kl.CategoricalFocalLoss(alpha=list(alpha), from_logits=True)(LABELS, LOGITS)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_softmax_focal_at_large_logits_is_finite_and_analytic():
    z = np.array([[[30.0, -30.0]]], "float32")  # shape: (1, 1, 2); the true class is 1
    y = np.array([[1]])
    got = float(kl.CategoricalFocalLoss(alpha=1.0, gamma=0.0, from_logits=True)(y, z))
    assert got == pytest.approx(60.0, abs=1e-4)  # -log softmax = 60 + log(1 + e^-60)


# ---------------------------------------------------------------- masks on every new loss
NEW_OVERLAP = [
    lambda: kl.JaccardLoss(),
    lambda: kl.GeneralizedDiceLoss(),
    lambda: kl.FocalTverskyLoss(),
    lambda: kl.SymmetricFocalTverskyLoss(),
    lambda: kl.AsymmetricFocalTverskyLoss(),
]


@pytest.mark.parametrize("make", NEW_OVERLAP)
def test_masked_overlap_loss_counts_the_masked_pixels_only(make):
    loss = make()
    keep = MASK[..., None]
    masked = float(loss(Y, P32, sample_weight=MASK))
    assert masked == pytest.approx(float(loss(Y * keep, P32 * keep)), rel=1e-5)
    assert masked != pytest.approx(MASK.mean() * float(loss(Y, P32)), rel=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: kl.ComboLoss(),
        lambda: kl.ExpLogLoss(),
        lambda: kl.DiceCELoss(),
        lambda: kl.DiceFocalLoss(),
        lambda: kl.SymmetricFocalLoss(),
        lambda: kl.AsymmetricFocalLoss(),
        lambda: kl.UnifiedFocalLoss(),
        lambda: kl.BinaryFocalLoss(),
        lambda: kl.BinaryCrossentropyLoss(),
        lambda: kl.CategoricalCrossentropyLoss(),
        lambda: kl.CategoricalFocalLoss(),
    ],
)
def test_masked_pixel_losses_equal_the_loss_of_the_kept_pixels(make):
    """A mask that keeps whole images equals the loss of those images alone; any mask changes
    the value away from mean(mask) x the unmasked loss."""
    loss = make()
    y, p = (
        (Y1, P1) if isinstance(loss, (kl.BinaryFocalLoss, kl.BinaryCrossentropyLoss)) else (Y, P32)
    )
    image_mask = np.zeros(y.shape[:-1], "float32")
    image_mask[1] = 1
    got = float(loss(y, p, sample_weight=image_mask))
    assert got == pytest.approx(float(loss(y[1:2], p[1:2])), rel=1e-5)
    mask = (RNG.random(y.shape[:-1]) > 0.3).astype("float32")
    assert float(loss(y, p, sample_weight=mask)) != pytest.approx(
        mask.mean() * float(loss(y, p)), rel=1e-3
    )

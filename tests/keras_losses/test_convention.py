"""The input convention of every overlap loss, against numpy references written from the formulas.

Multi-class per-class losses, include_background, logits (sigmoid/softmax), sparse labels with an
ignore label, pixel masks and class weights; and the C = 1 defaults of the four studies.
"""

import keras
import numpy as np
import pytest

import keras_losses as kl


# ---------------------------------------------------------------- numpy references
def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_counts(y, p, w=None, per_image=False):
    """(TP, FP, FN) per class: shape (C,) pooled or (B, C) per image (float64)."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    w = np.ones(y.shape[:-1] + (1,)) if w is None else w.astype(np.float64)
    axes = tuple(range(1, y.ndim - 1)) if per_image else tuple(range(0, y.ndim - 1))
    tp = (w * p * y).sum(axes)
    fp = (w * p * (1 - y)).sum(axes)
    fn = (w * (1 - p) * y).sum(axes)
    return tp, fp, fn


def np_dice(y, p, w=None, per_image=False, nr=0.0, dr=0.0, class_weights=None):
    tp, fp, fn = np_counts(y, p, w, per_image)
    per_class = 1 - (2 * tp + nr) / (2 * tp + fp + fn + dr)
    cw = np.ones(per_class.shape[-1]) if class_weights is None else np.asarray(class_weights, float)
    return float(np.mean((per_class * cw).sum(-1) / cw.sum()))


def np_tversky(y, p, a, b, w=None, per_image=False, s=0.0):
    tp, fp, fn = np_counts(y, p, w, per_image)
    return float(np.mean(1 - (tp + s) / (tp + a * fp + b * fn + s)))


def onehot(labels, c):
    return np.eye(c, dtype="float32")[labels]


RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 3, size=(2, 6, 5))  # shape: (2, 6, 5), 3 classes
LOGITS = RNG.normal(size=(2, 6, 5, 3)).astype("float32") * 2
PROBS = np_softmax(LOGITS.astype(np.float64)).astype("float32")
Y = onehot(LABELS, 3)


# ---------------------------------------------------------------- the 2-class case of the issue
def test_two_class_dice_is_the_mean_of_per_class_dice():
    # shape: (1, 2, 2, 2); class 1 is the foreground of y1, class 0 its complement
    y1 = np.array([[1, 0], [0, 0]], "float32")
    p1 = np.array([[0.9, 0.6], [0.2, 0.1]], "float32")
    y = np.stack([1 - y1, y1], -1)[None]
    p = np.stack([1 - p1, p1], -1)[None]
    per_class = []
    for c in range(2):
        tp = (p[..., c] * y[..., c]).sum()
        den = p[..., c].sum() + y[..., c].sum()
        per_class.append(1 - 2 * tp / den)
    pooled = 1 - 2 * (p * y).sum() / (p.sum() + y.sum())
    assert float(kl.DiceLoss(smooth=0)(y, p)) == pytest.approx(np.mean(per_class), abs=1e-6)
    assert float(kl.DiceLoss(smooth=0, class_reduction="pooled")(y, p)) == pytest.approx(
        pooled, abs=1e-6
    )
    assert abs(np.mean(per_class) - pooled) > 1e-3  # the two conventions differ here


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_multiclass_dice_against_numpy(per_image, include_background):
    y, p = (Y, PROBS) if include_background else (Y[..., 1:], PROBS[..., 1:])
    expected = np_dice(y, p, per_image=per_image, nr=0.3, dr=0.7)
    loss = kl.DiceLoss(
        per_image=per_image, include_background=include_background, smooth_nr=0.3, smooth_dr=0.7
    )
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("labels", ["one_hot", "sparse", "sparse_with_channel"])
def test_logits_and_sparse_labels_give_the_probability_value(labels):
    y = {"one_hot": Y, "sparse": LABELS, "sparse_with_channel": LABELS[..., None]}[labels]
    expected = np_dice(Y, PROBS, nr=1.0, dr=1.0)
    assert float(kl.DiceLoss()(y, PROBS)) == pytest.approx(expected, rel=1e-5)
    assert float(kl.DiceLoss(from_logits=True)(y, LOGITS)) == pytest.approx(expected, rel=1e-5)


def test_sigmoid_activation_for_multi_label_logits():
    y = (RNG.random((2, 4, 4, 3)) > 0.5).astype("float32")
    z = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    expected = np_tversky(y, 1 / (1 + np.exp(-z.astype(np.float64))), 0.3, 0.7)
    loss = kl.TverskyLoss(0.3, 0.7, smooth=0, from_logits=True, activation="sigmoid")
    assert float(loss(y, z)) == pytest.approx(expected, rel=1e-5)


def test_one_channel_logits_use_the_sigmoid():
    y = (RNG.random((2, 5, 5, 1)) > 0.5).astype("float32")
    z = RNG.normal(size=(2, 5, 5, 1)).astype("float32")
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    assert float(kl.DiceLoss(smooth=0, from_logits=True)(y, z)) == pytest.approx(
        np_dice(y, p), rel=1e-5
    )


def test_ignore_class_drops_void_pixels_from_every_count():
    labels = LABELS.copy()
    labels[0, :2] = 255  # void rows
    keep = (labels != 255)[..., None].astype("float32")
    y = onehot(np.where(labels == 255, 0, labels), 3) * keep
    expected = np_dice(y, PROBS, w=keep, nr=1.0, dr=1.0)
    assert float(kl.DiceLoss(ignore_class=255)(labels, PROBS)) == pytest.approx(expected, rel=1e-5)


def test_ignore_class_on_a_binary_mask():
    # shape: (1, 2, 2, 1); 255 marks one void pixel with a confident wrong prediction
    y = np.array([1, 0, 255, 0], "float32").reshape(1, 2, 2, 1)
    p = np.array([0.8, 0.1, 1.0, 0.3], "float32").reshape(1, 2, 2, 1)
    keep = (y != 255).astype("float32")
    expected = np_dice(y * keep, p, w=keep)
    assert float(kl.DiceLoss(smooth=0, ignore_class=255)(y, p)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("weights", [[1.0, 2.0, 3.0], [0.0, 1.0, 1.0], [0.0, 0.0, 5.0]])
def test_class_weights_give_the_weighted_mean_of_per_class_losses(weights):
    expected = np_dice(Y, PROBS, nr=1.0, dr=1.0, class_weights=weights)
    assert float(kl.DiceLoss(class_weights=weights)(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


def test_class_weight_zero_equals_leaving_the_class_out():
    dropped = kl.DiceLoss(class_weights=[0.0, 1.0, 1.0])(Y, PROBS)
    assert float(dropped) == pytest.approx(
        float(kl.DiceLoss(include_background=False)(Y, PROBS)), rel=1e-6
    )


def test_bad_class_weights_are_refused():
    with pytest.raises(
        ValueError, match=r"`class_weights\[1\]` must be a non-negative number; received -1"
    ):
        kl.DiceLoss(class_weights=[1.0, -1])
    with pytest.raises(ValueError, match=r"at least one weight > 0"):
        kl.DiceLoss(class_weights=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"2 class weights for 3 classes"):
        kl.DiceLoss(class_weights=[1.0, 2.0])(Y, PROBS)


# ---------------------------------------------------------------- masks
MASK = (RNG.random((2, 6, 5)) > 0.3).astype("float32")  # shape: (2, 6, 5)

MASKABLE = [
    lambda: kl.DiceLoss(),
    lambda: kl.DiceLoss(per_image=True),
    lambda: kl.EffectivenessLoss(beta2=2.0),
    lambda: kl.TverskyLoss(0.3, 0.7),
    lambda: kl.FocalTverskyLoss(),
    lambda: kl.SquaredDiceLoss(),
    lambda: kl.SquaredDiceLoss(per_image=True),
    lambda: kl.GeneralizedLoss(0.6, 1.7, 2.5),
    lambda: kl.GeneralizedLoss(0.6, 1.7, 2.5, per_image=True),
]


@pytest.mark.parametrize("make", MASKABLE)
@pytest.mark.parametrize("how", ["sample_weight", "sample_weight_with_channel", "mask"])
def test_a_pixel_mask_gives_the_loss_of_the_masked_pixels(make, how):
    """Masked pixels count nowhere: the value equals the loss on a batch in which those pixels
    are replaced by pixels that count zero (p = y = 0 on one channel adds nothing), and never
    mean(mask) x the unmasked loss."""
    loss = make()
    y1 = Y[..., 1:2]
    p1 = PROBS[..., 1:2]
    masked = {
        "sample_weight": lambda: loss(y1, p1, sample_weight=MASK),
        "sample_weight_with_channel": lambda: loss(y1, p1, sample_weight=MASK[..., None]),
        "mask": lambda: loss(y1, p1, mask=MASK),
    }[how]()
    keep = MASK[..., None]
    # zeroing both y and p of the masked-out pixels removes them from TP, FP, FN, sum(p^2), sum(y^2)
    reference = float(loss(y1 * keep, p1 * keep))
    unmasked = float(loss(y1, p1))
    assert float(masked) == pytest.approx(reference, rel=1e-5)
    assert float(masked) != pytest.approx(MASK.mean() * unmasked, rel=1e-3)


def test_masked_multiclass_dice_against_numpy():
    expected = np_dice(Y, PROBS, w=MASK[..., None], nr=1.0, dr=1.0, per_image=True)
    got = kl.DiceLoss(per_image=True)(Y, PROBS, sample_weight=MASK)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_per_image_weights_weigh_images_in_the_mean():
    weights = np.array([1.0, 3.0], "float32")
    loss = kl.DiceLoss(per_image=True)
    per_image = [float(loss(Y[i : i + 1], PROBS[i : i + 1])) for i in range(2)]
    expected = (per_image[0] * 1.0 + per_image[1] * 3.0) / 2  # Keras: sum(w l) / batch
    assert float(loss(Y, PROBS, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)


def test_a_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"pixel mask .* received shape \(2, 6\)"):
        kl.DiceLoss()(Y, PROBS, sample_weight=np.ones((2, 6), "float32"))


# ---------------------------------------------------------------- C = 1 defaults unchanged
def test_one_channel_defaults_are_the_studies_formulas():
    """The four studies' losses on one channel: pooled over the batch, smoothing in GLF form."""
    y = (RNG.random((3, 8, 8, 1)) > 0.7).astype("float32")
    p = RNG.random((3, 8, 8, 1)).astype("float32")
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    assert float(kl.DiceLoss()(y, p)) == pytest.approx(
        1 - (2 * tp + 1) / (2 * tp + fp + fn + 1), rel=1e-6
    )
    a, b = 0.3, 0.7  # the GLF's form: 1 - (2 TP + 1) / (2 TP + 2a FP + 2b FN + 1)
    expected = 1 - (2 * tp + 1) / (2 * tp + 2 * a * fp + 2 * b * fn + 1)
    assert float(kl.TverskyLoss(a, b)(y, p)) == pytest.approx(expected, rel=1e-6)
    assert float(kl.EffectivenessLoss(3.0)(y, p)) == pytest.approx(
        1 - (4 * tp + 1) / (4 * tp + fp + 3 * fn + 1), rel=1e-6
    )
    for make in (kl.DiceLoss, kl.EffectivenessLoss, kl.TverskyLoss):
        assert float(make(include_background=False)(y, p)) == float(make()(y, p))


def test_a_tversky_configuration_saved_with_glf_smoothing_loads_to_the_same_loss():
    saved = {
        "name": "tversky_loss",
        "reduction": "sum_over_batch_size",
        "alpha": 0.3,
        "beta": 0.7,
        "per_image": False,
        "smooth": 1.0,
    }
    loaded = kl.TverskyLoss.from_config(saved)
    assert loaded.smooth_nr == loaded.smooth_dr == 0.5
    restored = keras.saving.deserialize_keras_object(
        {
            "module": None,
            "class_name": "TverskyLoss",
            "registered_name": "keras_losses>TverskyLoss",
            "config": saved,
        }
    )
    assert type(restored) is kl.TverskyLoss and restored.smooth_nr == 0.5


# ---------------------------------------------------------------- bad input
def test_logits_fed_to_a_probability_loss_are_caught_with_the_fix():
    with pytest.raises(
        ValueError, match=r"`y_pred` must hold probabilities in \[0, 1\].*from_logits=True"
    ):
        kl.DiceLoss()(Y, LOGITS)


def test_label_map_values_are_checked():
    bad = LABELS.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"labels in \{0, \.\.\., 2\}; found 7"):
        kl.DiceLoss()(bad, PROBS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(per_image="False"), r"`per_image` must be True or False; received 'False'"),
        (dict(from_logits=1), r"`from_logits` must be True or False; received 1"),
        (dict(smooth=float("nan")), r"`smooth` must be a non-negative number; received nan"),
        (dict(smooth_nr=-1.0), r"`smooth_nr` must be a non-negative number; received -1.0"),
        (dict(smooth="1"), r"`smooth` must be a non-negative number; received '1'"),
        (
            dict(activation="relu"),
            r"`activation` must be one of 'auto', 'sigmoid', 'softmax'; received 'relu'",
        ),
        (dict(class_reduction="sum"), r"`class_reduction` must be one of 'mean', 'pooled'"),
        (dict(ignore_class=0.5), r"`ignore_class` must be an integer label or None; received 0.5"),
    ],
)
def test_arguments_are_validated_by_type(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kl.DiceLoss(**kwargs)


@pytest.mark.parametrize("make", MASKABLE)
def test_empty_batch_gives_a_scalar(make):
    value = make()(np.zeros((0, 4, 4, 1), "float32"), np.zeros((0, 4, 4, 1), "float32"))
    assert tuple(value.shape) == () and float(value) == 0.0


def test_combined_loss_passes_a_mask_to_library_terms_and_refuses_keras_terms():
    y1, p1 = Y[..., 1:2], PROBS[..., 1:2]
    terms = [kl.DiceLoss(), kl.BinaryFocalLoss()]
    combined = kl.CombinedLoss(terms, [1.0, 0.5])
    expected = float(terms[0](y1, p1, sample_weight=MASK)) + 0.5 * float(
        terms[1](y1, p1, sample_weight=MASK)
    )
    assert float(combined(y1, p1, sample_weight=MASK)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(
        ValueError, match=r"`losses\[0\]` \(BinaryCrossentropy\) cannot honour a pixel mask"
    ):
        kl.CombinedLoss([keras.losses.BinaryCrossentropy(), kl.DiceLoss()])(
            y1, p1, sample_weight=MASK
        )

"""The GLF on several classes, against a numpy reference written from its formula.

Per-class counts averaged over the classes (optionally weighted) or pooled over the channels,
include_background, logits, sparse labels with an ignore label, pixel masks and separate
numerator/denominator smoothing; the one-channel values of the studies; saving; and the clear
error of the adaptive rules, which adapt the binary GLF only.
"""

import keras
import numpy as np
import pytest

import keras_losses as kl
from keras_losses.adaptive import (
    DeterministicGLFCallback,
    ExploratoryGLFModel,
    prepare_adaptive_glf,
)
from keras_losses.generalized import glf_from_counts
from tests.keras_losses.conftest import SEARCH_BACKENDS


# ---------------------------------------------------------------- numpy reference
def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_glf(
    y,
    p,
    alpha_p,
    alpha_n,
    beta2,
    w=None,
    per_image=False,
    nr=0.0,
    dr=0.0,
    class_weights=None,
    pooled=False,
):
    """L_c = 1 - ((1 + b2) TP_c + nr) / ((1 + b2) TP_c + ap FP_c + b2 an FN_c + dr), then the
    weighted mean over classes (or the counts summed over weighted channels first), then the
    mean over images (per_image) - in float64, with pixel weights w (batch, *spatial, 1)."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    w = np.ones(y.shape[:-1] + (1,)) if w is None else w.astype(np.float64)
    axes = tuple(range(1, y.ndim - 1)) if per_image else tuple(range(0, y.ndim - 1))
    tp = (w * p * y).sum(axes)  # (B, C) or (C,)
    fp = (w * p * (1 - y)).sum(axes)
    fn = (w * (1 - p) * y).sum(axes)
    cw = np.ones(y.shape[-1]) if class_weights is None else np.asarray(class_weights, float)
    if pooled:
        tp, fp, fn = ((c * cw).sum(-1) for c in (tp, fp, fn))
    num = (1 + beta2) * tp
    per_class = 1 - (num + nr) / (num + alpha_p * fp + beta2 * alpha_n * fn + dr)
    if not pooled:
        per_class = (per_class * cw).sum(-1) / cw.sum()
    return float(np.mean(per_class))


RNG = np.random.default_rng(7)
C = 4
LABELS = RNG.integers(0, C, size=(3, 6, 5))  # shape: (3, 6, 5), 4 classes
LOGITS = (RNG.normal(size=(3, 6, 5, C)) * 2).astype("float32")  # shape: (3, 6, 5, 4)
PROBS = np_softmax(LOGITS.astype(np.float64)).astype("float32")
Y = np.eye(C, dtype="float32")[LABELS]
MASK = (RNG.random((3, 6, 5)) > 0.3).astype("float32")  # shape: (3, 6, 5)
COEFFS = dict(alpha_p=0.6, alpha_n=1.7, beta2=2.5)
AP, AN, B2 = COEFFS.values()


# ---------------------------------------------------------------- per class, pooled, background
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_per_class_mean_against_numpy(per_image, include_background):
    loss = kl.GeneralizedLoss(
        **COEFFS, per_image=per_image, smooth=0.0, include_background=include_background
    )
    first = 0 if include_background else 1
    expected = np_glf(Y[..., first:], PROBS[..., first:], AP, AN, B2, per_image=per_image)
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_pooled_channels_against_numpy(per_image):
    loss = kl.GeneralizedLoss(**COEFFS, per_image=per_image, smooth=0.0, class_reduction="pooled")
    expected = np_glf(Y, PROBS, AP, AN, B2, per_image=per_image, pooled=True)
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)
    # pooling all channels of one-hot labels and softmax probabilities is not the class mean
    assert expected != pytest.approx(np_glf(Y, PROBS, AP, AN, B2, per_image=per_image), rel=1e-3)


@pytest.mark.parametrize("reduction", ["mean", "pooled"])
def test_class_weights_against_numpy(reduction):
    weights = [0.0, 1.0, 2.0, 0.5]
    loss = kl.GeneralizedLoss(
        **COEFFS, smooth=0.0, class_weights=weights, class_reduction=reduction
    )
    expected = np_glf(Y, PROBS, AP, AN, B2, class_weights=weights, pooled=reduction == "pooled")
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


def test_class_weights_without_the_background():
    # C - 1 weights for the classes left, or C with the first ignored: the same loss
    short = kl.GeneralizedLoss(**COEFFS, include_background=False, class_weights=[1.0, 2.0, 3.0])
    full = kl.GeneralizedLoss(
        **COEFFS, include_background=False, class_weights=[9.0, 1.0, 2.0, 3.0]
    )
    expected = np_glf(
        Y[..., 1:], PROBS[..., 1:], AP, AN, B2, nr=1.0, dr=1.0, class_weights=[1, 2, 3]
    )
    assert float(short(Y, PROBS)) == pytest.approx(expected, rel=1e-5)
    assert float(full(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


def test_separate_numerator_and_denominator_smoothing():
    loss = kl.GeneralizedLoss(**COEFFS, smooth_nr=0.25, smooth_dr=2.0)
    expected = np_glf(Y, PROBS, AP, AN, B2, nr=0.25, dr=2.0)
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- logits, sparse labels, masks
@pytest.mark.parametrize("labels", ["one_hot", "sparse", "sparse_with_channel"])
def test_logits_and_sparse_labels_against_numpy(labels):
    y = {"one_hot": Y, "sparse": LABELS, "sparse_with_channel": LABELS[..., None]}[labels]
    loss = kl.GeneralizedLoss(**COEFFS, from_logits=True)
    expected = np_glf(Y, np_softmax(LOGITS.astype(np.float64)), AP, AN, B2, nr=1.0, dr=1.0)
    assert float(loss(y, LOGITS)) == pytest.approx(expected, rel=1e-5)


def test_sigmoid_logits_for_multi_label_channels():
    loss = kl.GeneralizedLoss(**COEFFS, from_logits=True, activation="sigmoid", smooth=0.0)
    sigmoid = 1 / (1 + np.exp(-LOGITS.astype(np.float64)))
    assert float(loss(Y, LOGITS)) == pytest.approx(np_glf(Y, sigmoid, AP, AN, B2), rel=1e-5)


def test_ignore_class_drops_void_pixels_from_every_count():
    labels = LABELS.copy()
    labels[MASK == 0] = 255
    loss = kl.GeneralizedLoss(**COEFFS, ignore_class=255, per_image=True, smooth=0.0)
    expected = np_glf(Y, PROBS, AP, AN, B2, w=MASK[..., None], per_image=True)
    assert float(loss(labels, PROBS)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("how", ["sample_weight", "sample_weight_with_channel", "mask"])
@pytest.mark.parametrize("per_image", [False, True])
def test_a_pixel_mask_counts_the_masked_pixels_only(how, per_image):
    loss = kl.GeneralizedLoss(**COEFFS, per_image=per_image)
    value = {
        "sample_weight": lambda: loss(Y, PROBS, sample_weight=MASK),
        "sample_weight_with_channel": lambda: loss(Y, PROBS, sample_weight=MASK[..., None]),
        "mask": lambda: loss(Y, PROBS, mask=MASK),
    }[how]()
    expected = np_glf(Y, PROBS, AP, AN, B2, w=MASK[..., None], per_image=per_image, nr=1, dr=1)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(value) != pytest.approx(MASK.mean() * float(loss(Y, PROBS)), rel=1e-3)


# ---------------------------------------------------------------- one channel: the studies' values
# shape: (1, 2, 2, 1); TP = 0.8, FP = 0.4 + 0.1 = 0.5, FN = 0.2 + 1 = 1.2
Y1 = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]], "float32")
P1 = np.array([[[[0.8], [0.4]], [[0.0], [0.1]]]], "float32")
ONE_CHANNEL = [
    # (arguments, expected): 1 - ((1 + b2) TP + s) / ((1 + b2) TP + ap FP + b2 an FN + s)
    (dict(), 1 - (1.6 + 1) / (1.6 + 0.5 + 1.2 + 1)),
    (dict(smooth=0.0), 1 - 1.6 / (1.6 + 0.5 + 1.2)),
    (dict(alpha_p=2.0, alpha_n=0.5, beta2=3.0, smooth=0.0), 1 - 3.2 / (3.2 + 1.0 + 1.8)),
    (dict(alpha_p=2.0, alpha_n=0.5, beta2=3.0), 1 - 4.2 / (3.2 + 1.0 + 1.8 + 1)),
    (dict(smooth_nr=0.0, smooth_dr=1.0), 1 - 1.6 / (1.6 + 0.5 + 1.2 + 1)),
]


@pytest.mark.parametrize("kwargs, expected", ONE_CHANNEL)
def test_one_channel_values(kwargs, expected):
    assert float(kl.GeneralizedLoss(**kwargs)(Y1, P1)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_one_channel_class_arguments_change_nothing(per_image):
    """The studies' binary GLF: every class argument leaves the value exactly as it is, and the
    value is the paper's eq. (1) of the counts pooled over the batch (or per image)."""
    y = (RNG.random((4, 9, 7, 1)) > 0.7).astype("float32")
    p = RNG.random((4, 9, 7, 1)).astype("float32")
    base = kl.GeneralizedLoss(**COEFFS, per_image=per_image)
    value = float(base(y, p))
    axes = (1, 2, 3) if per_image else (0, 1, 2, 3)
    counts = [np.float64(c.sum(axes)) for c in (p * y, p * (1 - y), (1 - p) * y)]
    expected = float(np.mean(glf_from_counts(*counts, AP, AN, B2, 1.0)))
    assert value == pytest.approx(expected, rel=1e-6)
    # the same computation: exactly the same value
    same = kl.GeneralizedLoss(**COEFFS, per_image=per_image, include_background=False)
    assert float(same(y, p)) == value
    # one channel summed over the channels, or one class weight: the same counts
    for kwargs in (dict(class_reduction="pooled"), dict(class_weights=[3.0])):
        other = kl.GeneralizedLoss(**COEFFS, per_image=per_image, **kwargs)
        assert float(other(y, p)) == pytest.approx(value, rel=1e-6)


def test_one_channel_configuration_saved_without_the_convention_loads_to_the_same_loss():
    saved = {
        "name": "generalized_loss",
        "reduction": "sum_over_batch_size",
        "alpha_p": 0.6,
        "alpha_n": 1.7,
        "beta2": 2.5,
        "per_image": False,
        "smooth": 0.5,
    }
    loaded = kl.GeneralizedLoss.from_config(saved)
    assert loaded.smooth_nr == loaded.smooth_dr == 0.5 and loaded.class_reduction == "mean"
    assert float(loaded(Y1, P1)) == float(kl.GeneralizedLoss(**COEFFS, smooth=0.5)(Y1, P1))


# ---------------------------------------------------------------- saving, compiled training
def test_multiclass_configuration_round_trips():
    loss = kl.GeneralizedLoss(
        **COEFFS,
        from_logits=True,
        include_background=False,
        ignore_class=255,
        class_weights=[1.0, 2.0, 3.0],
        smooth_nr=0.5,
        smooth_dr=0.25,
        per_image=True,
    )
    loss.set_coefficients(alpha_p=0.75)  # the current values travel in the configuration
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is kl.GeneralizedLoss
    assert restored.get_config() == loss.get_config()
    assert restored.coefficients["alpha_p"] == 0.75
    assert float(restored(LABELS, LOGITS)) == pytest.approx(float(loss(LABELS, LOGITS)), rel=1e-6)


def softmax_segmenter(channels=C):
    return keras.Sequential(
        [keras.Input((6, 5, 2)), keras.layers.Conv2D(channels, 3, padding="same")]
    )


def test_compiled_fit_with_logits_and_sparse_labels_matches_the_eager_value():
    x = RNG.random((3, 6, 5, 2)).astype("float32")
    model = softmax_segmenter()
    loss = kl.GeneralizedLoss(**COEFFS, from_logits=True, include_background=False)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    history = model.fit(x, LABELS, batch_size=3, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    compiled = model.evaluate(x, LABELS, batch_size=3, verbose=0)
    eager = float(loss(LABELS, model.predict(x, verbose=0)))
    assert compiled == pytest.approx(eager, rel=1e-5)


# ---------------------------------------------------------------- adaptive rules: binary only
def test_the_deterministic_rule_refuses_a_multiclass_model_before_training():
    model = softmax_segmenter()
    loss = kl.GeneralizedLoss()
    model.compile(optimizer="sgd", loss=loss, metrics=[loss.state])
    x = RNG.random((3, 6, 5, 2)).astype("float32")
    # the callback's check, or (JAX builds the metrics first) the state metric's
    with pytest.raises(ValueError, match=r"binary .*(outputs 4 channels|shape=\(3, 6, 5, 4\))"):
        model.fit(x, Y, epochs=1, verbose=0, callbacks=[DeterministicGLFCallback(loss)])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


@pytest.mark.parametrize("rule", ["det", "exp"])
def test_prepare_adaptive_glf_refuses_a_multiclass_model(rule):
    with pytest.raises(ValueError, match="binary GLF .* outputs 4 channels"):
        prepare_adaptive_glf(softmax_segmenter(), kl.GeneralizedLoss(), rule, "adam")


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(from_logits=True), "from_logits=True"), (dict(ignore_class=255), "ignore_class=255")],
)
def test_the_adaptive_rules_refuse_logits_and_void_labels(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_adaptive_glf(softmax_segmenter(1), kl.GeneralizedLoss(**kwargs), "det", "adam")
    if keras.backend.backend() not in SEARCH_BACKENDS:
        return  # the search refuses the backend itself (test_exploratory_refuses_other_backends)
    with pytest.raises(ValueError, match=match):
        ExploratoryGLFModel(softmax_segmenter(1)).compile(
            optimizer="adam", loss=kl.GeneralizedLoss(**kwargs)
        )


def test_the_state_metric_refuses_several_channels():
    loss = kl.GeneralizedLoss()
    with pytest.raises(ValueError, match=r"binary segmentation .*shape=\(3, 6, 5, 4\)"):
        loss.state.update_state(Y, PROBS)


def test_equals_the_per_image_tversky_loss_of_monai_form():
    """docs/losses.md: MONAI's TverskyLoss(alpha=a, beta=b, smooth_nr=s, smooth_dr=s) (per
    image, per class, mean) is GeneralizedLoss(2a, 2b, 1, per_image=True, smooth=2s)."""
    a, b, s = 0.3, 0.7, 1e-5
    y, p = Y.astype(np.float64), PROBS.astype(np.float64)
    tp, fp, fn = ((p * y).sum((1, 2)), (p * (1 - y)).sum((1, 2)), ((1 - p) * y).sum((1, 2)))
    expected = float(np.mean(1 - (tp + s) / (tp + a * fp + b * fn + s)))
    loss = kl.GeneralizedLoss(2 * a, 2 * b, 1.0, per_image=True, smooth=2 * s)
    assert float(loss(Y, PROBS)) == pytest.approx(expected, rel=1e-5)

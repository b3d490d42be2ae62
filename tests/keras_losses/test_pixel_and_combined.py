"""Focal loss against Keras, squared Dice, and weighted combinations."""

import keras
import numpy as np
import pytest

import keras_losses as kl


def data(seed=0, shape=(3, 6, 6, 1)):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) > 0.5).astype("float32"), rng.uniform(0.01, 0.99, shape).astype("float32")


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("alpha, balance", [(0.25, False), (0.25, True), (0.8, True)])
def test_focal_matches_keras_binary_focal_crossentropy(gamma, alpha, balance):
    y, p = data()
    ours = kl.BinaryFocalLoss(alpha=alpha, gamma=gamma, apply_class_balancing=balance)
    ref = keras.losses.BinaryFocalCrossentropy(alpha=alpha, gamma=gamma, apply_class_balancing=balance)
    assert float(ours(y, p)) == pytest.approx(float(ref(y, p)), rel=1e-5)


def test_focal_with_soft_labels_matches_keras():
    rng = np.random.default_rng(3)
    y, p = rng.random((2, 5, 5, 1)).astype("float32"), rng.random((2, 5, 5, 1)).astype("float32")
    assert float(kl.BinaryFocalLoss()(y, p)) == pytest.approx(float(keras.losses.BinaryFocalCrossentropy()(y, p)), rel=1e-5)


def test_focal_gamma_zero_is_cross_entropy():
    y, p = data(1)
    assert float(kl.BinaryFocalLoss(gamma=0.0)(y, p)) == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)


def test_focal_hand_value():
    # one pixel, y = 1, p = 0.9: (1 - 0.9)^2 * -log(0.9)
    y = np.array([[1.0]], "float32")
    p = np.array([[0.9]], "float32")
    assert float(kl.BinaryFocalLoss(gamma=2.0)(y, p)) == pytest.approx(0.01 * -np.log(0.9), rel=1e-5)


def test_squared_dice_per_image_vs_pooled():
    y, p = data(2)
    per_image = [1 - 2 * (p[i] * y[i]).sum() / ((p[i] ** 2).sum() + (y[i] ** 2).sum()) for i in range(3)]
    pooled = 1 - 2 * (p * y).sum() / ((p**2).sum() + (y**2).sum())
    assert float(kl.SquaredDiceLoss(per_image=True, smooth=0)(y, p)) == pytest.approx(np.mean(per_image), rel=1e-5)
    assert float(kl.SquaredDiceLoss(per_image=False, smooth=0)(y, p)) == pytest.approx(pooled, rel=1e-5)
    # the default is the paper's formula: pooled over the batch, smoothing too small to matter
    assert float(kl.SquaredDiceLoss()(y, p)) == pytest.approx(pooled, rel=1e-5)


# shape: (2, 1, 2, 1); image 0: y = [1, 0], p = [0.5, 0]; image 1: y = [0, 0], p = [0.5, 0]
Y_HAND = np.array([[1.0, 0.0], [0.0, 0.0]], "float32").reshape(2, 1, 2, 1)
P_HAND = np.array([[0.5, 0.0], [0.5, 0.0]], "float32").reshape(2, 1, 2, 1)


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        # pooled: 1 - 2 * 0.5 / (0.25 + 0.25 + 1)
        ({"smooth": 0.0}, 1 - 1 / 1.5),
        # default smooth 1e-6: (1 + 1e-6) / (1.5 + 1e-6)
        ({}, 1 - (1 + 1e-6) / (1.5 + 1e-6)),
        # per image: image 0 1 - 1 / 1.25 = 0.2, image 1 1 - 0 / 0.25 = 1; mean 0.6
        ({"per_image": True, "smooth": 0.0}, 0.6),
        # per image, smooth 1 (the former default): 1 - 2 / 2.25 and 1 - 1 / 1.25
        ({"per_image": True, "smooth": 1.0}, ((1 - 2 / 2.25) + (1 - 1 / 1.25)) / 2),
    ],
)
def test_squared_dice_hand_values(kwargs, expected):
    assert float(kl.SquaredDiceLoss(**kwargs)(Y_HAND, P_HAND)) == pytest.approx(expected, abs=1e-6)


def test_squared_dice_default_smoothing_moves_the_loss_by_at_most_1e6():
    # |L_s - L_0| = s (D - 2I) / (D (D + s)) <= s / D <= s once the batch holds foreground (D >= 1)
    rng = np.random.default_rng(3)
    for _ in range(5):
        y = (rng.uniform(size=(4, 8, 8, 1)) > 0.97).astype("float32")
        y[0, 0, 0, 0] = 1.0
        p = (rng.uniform(size=(4, 8, 8, 1)) ** 4).astype("float32")
        diff = float(kl.SquaredDiceLoss()(y, p)) - float(kl.SquaredDiceLoss(smooth=0.0)(y, p))
        assert abs(diff) <= 1.2e-6


def test_combined_loss_is_the_weighted_sum():
    y, p = data(4)
    terms = [keras.losses.BinaryCrossentropy(), kl.SquaredDiceLoss(), kl.BinaryFocalLoss(gamma=2.0)]
    weights = [1.0, 0.5, 2.0]
    expected = sum(w * float(t(y, p)) for w, t in zip(weights, terms, strict=True))
    assert float(kl.CombinedLoss(terms, weights)(y, p)) == pytest.approx(expected, rel=1e-5)
    assert float(kl.CombinedLoss(terms)(y, p)) == pytest.approx(sum(float(t(y, p)) for t in terms), rel=1e-5)


def test_combined_loss_refuses_empty_and_non_losses():
    with pytest.raises(ValueError, match="at least one loss"):
        kl.CombinedLoss([])
    with pytest.raises(ValueError, match=r"`losses\[1\]` must be a callable loss; received 3"):
        kl.CombinedLoss([kl.DiceLoss(), 3])

"""Gradient pixel attacks against a numpy reference; Dice; input gradients."""

import keras
import numpy as np
import pytest

from evaluation.attacks import attack_dice, dice_per_image, random_values, top_gradient_attack
from evaluation.gradients import input_gradients


def reference_attack(image, grad, n, values):
    """numpy: overwrite the n pixels of largest gradient (ties: lower flat index first)."""
    flat, order = image.ravel().copy(), np.argsort(-grad.ravel(), kind="stable")[:n]
    flat[order] = np.broadcast_to(values, (n,)) if np.ndim(values) == 0 else values[:n]
    return flat.reshape(image.shape)


@pytest.mark.parametrize("n", [0, 1, 5, 17])
def test_attack_changes_exactly_the_n_highest_gradient_pixels(n):
    rng = np.random.default_rng(n)
    images = rng.uniform(0, 0.2, size=(3, 8, 8, 1)).astype(np.float32)
    grads = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    out = top_gradient_attack(
        images, grads, np.full(3, n), np.full((3, 17), 0.9, np.float32)
    ).numpy()
    for b in range(3):
        np.testing.assert_array_equal(out[b], reference_attack(images[b], grads[b], n, 0.9))
        changed = np.flatnonzero(out[b].ravel() != images[b].ravel())
        assert len(changed) == n
        if n:
            assert grads[b].ravel()[changed].min() >= np.sort(grads[b].ravel())[-n]


def test_attack_per_image_counts_and_random_values_with_ties():
    # shape: (2, 4, 4, 1); image 0 has tied gradients, lower index wins
    images = np.zeros((2, 4, 4, 1), np.float32)
    grads = np.zeros((2, 4, 4, 1), np.float32)
    grads[0, 0, :, 0] = 1.0
    grads[1] = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    values = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    out = top_gradient_attack(images, grads, np.array([2, 3]), values).numpy()
    np.testing.assert_allclose(out[0, 0, :, 0], [0.1, 0.2, 0, 0])
    np.testing.assert_allclose(out[1].ravel()[[15, 14, 13]], [0.4, 0.5, 0.6])
    assert np.count_nonzero(out) == 5
    for b, n in ((0, 2), (1, 3)):
        np.testing.assert_allclose(out[b], reference_attack(images[b], grads[b], n, values[b]))


@pytest.mark.parametrize(
    "ranking,expected_changed",
    [
        # shape: (1, 2, 2, 1); grads [[0.5, -3.0], [2.0, -0.1]], N = 2
        ("signed", [0, 2]),  # largest values: 2.0 (index 2), 0.5 (index 0)
        ("magnitude", [1, 2]),  # largest |grad|: 3.0 (index 1), 2.0 (index 2)
    ],
)
def test_ranking_signed_vs_magnitude_by_hand(ranking, expected_changed):
    images = np.zeros((1, 2, 2, 1), np.float32)
    grads = np.array([[0.5, -3.0], [2.0, -0.1]], np.float32).reshape(1, 2, 2, 1)
    out = top_gradient_attack(
        images, grads, np.array([2]), np.full((1, 2), 0.7, np.float32), ranking=ranking
    ).numpy()
    np.testing.assert_array_equal(np.flatnonzero(out.ravel()), expected_changed)
    np.testing.assert_allclose(out.ravel()[expected_changed], 0.7)


def test_attack_dice_magnitude_ranking_equals_signed_ranking_of_abs_gradients():
    rng = np.random.default_rng(5)
    model = pixel_model()
    images = rng.uniform(0, 0.2, size=(3, 8, 8, 1)).astype(np.float32)
    masks = (rng.uniform(size=(3, 8, 8, 1)) > 0.7).astype(np.float32)
    grads = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    n, v = np.array([0, 4, 9]), np.array([0.9, 0.9, 0.5], np.float32)
    mag = attack_dice(model, images, masks, grads, n, v, ranking="magnitude")
    np.testing.assert_array_equal(mag, attack_dice(model, images, masks, np.abs(grads), n, v))
    assert not np.array_equal(mag, attack_dice(model, images, masks, grads, n, v))


def test_attack_dice_counts_give_the_pooled_dice():
    # shape: (2, 2, 2, 1), second rows empty; pixel_model predicts foreground where x > 0.3
    images = np.zeros((2, 2, 2, 1), np.float32)
    masks = np.zeros((2, 2, 2, 1), np.float32)
    images[0, 0, :, 0], masks[0, 0, :, 0] = [0.9, 0.0], [1, 1]
    images[1, 0, :, 0], masks[1, 0, :, 0] = [0.9, 0.9], [1, 0]
    grads = np.zeros_like(images)
    dice, counts = attack_dice(pixel_model(2), images, masks, grads, [0], [0.0], return_counts=True)
    # image 0: TP 1, |T| + |P| = 3; image 1: TP 1, |T| + |P| = 3
    np.testing.assert_allclose(counts[:, 0], [[1, 3], [1, 3]])
    np.testing.assert_allclose(dice[:, 0], [2 / 3, 2 / 3])
    pooled = 2 * counts[..., 0].sum(0) / counts[..., 1].sum(0)
    np.testing.assert_allclose(pooled, [4 / 6])


def test_unknown_ranking_is_refused():
    x = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(
        ValueError, match="ranking must be one of signed, magnitude; received 'abs'"
    ):
        top_gradient_attack(x, x, np.array([1]), np.ones((1, 1), np.float32), ranking="abs")


@pytest.mark.parametrize(
    "truth,pred,expected",
    [
        # shape: (1, 2, 2, 1)
        ([[1, 1], [0, 0]], [[0.9, 0.2], [0.0, 0.0]], 2 * 1 / 3),
        ([[1, 1], [0, 0]], [[0.9, 0.6], [0.0, 0.0]], 1.0),
        ([[0, 0], [0, 0]], [[0.1, 0.2], [0.0, 0.0]], 1.0),
        ([[0, 0], [0, 0]], [[0.9, 0.2], [0.0, 0.0]], 0.0),
        ([[1, 0], [0, 0]], [[0.0, 0.9], [0.9, 0.0]], 0.0),
    ],
)
def test_dice_per_image(truth, pred, expected):
    t = np.array(truth, np.float32)[None, ..., None]
    p = np.array(pred, np.float32)[None, ..., None]
    assert dice_per_image(t, p)[0] == pytest.approx(expected)


def pixel_model(size=8):
    """A 1x1-conv 'segmenter': foreground where the pixel value exceeds 0.3 (steep sigmoid)."""
    inputs = keras.Input((size, size, 1))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    outputs = conv(inputs)
    model = keras.Model(inputs, outputs)
    conv.set_weights([np.full((1, 1, 1, 1), 50.0, np.float32), np.array([-15.0], np.float32)])
    return model


def test_input_gradients_match_the_analytic_gradient():
    model = pixel_model()
    x = np.random.default_rng(0).uniform(0, 0.6, size=(3, 8, 8, 1)).astype(np.float32)
    s = 1 / (1 + np.exp(-(50 * x - 15)))
    np.testing.assert_allclose(
        input_gradients(model, x, batch_size=2), 50 * s * (1 - s), rtol=1e-3, atol=1e-5
    )


def test_attack_dice_equals_a_loop_over_reference_attacks():
    rng = np.random.default_rng(1)
    model = pixel_model()
    images = rng.uniform(0, 0.2, size=(4, 8, 8, 1)).astype(np.float32)
    masks = (rng.uniform(size=(4, 8, 8, 1)) > 0.7).astype(np.float32)
    grads = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
    n_levels = np.array([0, 3, 6, 6])
    values = random_values(2, 2, 6, seed=0)
    dice = attack_dice(model, images, masks, grads, n_levels, values, batch_size=5)
    assert dice.shape == (4, 4)
    for i in range(4):
        for level, n in enumerate(n_levels):
            x = reference_attack(images[i], grads[i], n, values[level])
            pred = model.predict(x[None], verbose=0)
            assert dice[i, level] == pytest.approx(dice_per_image(masks[i][None], pred)[0])
    # clean images lie below 0.3: nothing predicted, Dice 0 where the mask has foreground
    np.testing.assert_allclose(dice[:, 0], dice_per_image(masks, np.zeros_like(masks)))


def test_attack_dice_constant_values_and_predictions():
    model = pixel_model()
    images = np.zeros((2, 8, 8, 1), np.float32)
    masks = np.zeros((2, 8, 8, 1), np.float32)
    grads = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype(np.float32)
    for b in range(2):
        masks[b].ravel()[np.argsort(-grads[b].ravel(), kind="stable")[:4]] = 1
    dice, probs = attack_dice(
        model, images, masks, grads, [0, 2, 4], [0.2, 1.0, 1.0], return_predictions=True
    )
    # writing 1.0 into the 4 top pixels predicts exactly the mask; 2 of 4 -> 2*2/6
    np.testing.assert_allclose(dice, [[0, 2 / 3, 1], [0, 2 / 3, 1]], atol=1e-6)
    assert probs.shape == (2, 3, 8, 8, 1)


def test_attack_dice_rejects_short_values():
    x = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="values must have shape"):
        attack_dice(pixel_model(), x, x, x, [2, 5], np.zeros((2, 3)))

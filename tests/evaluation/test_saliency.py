"""Gradient saliency maps against the analytic gradient of a softmax-linear model."""

import keras
import numpy as np
import pytest

from evaluation.saliency import saliency_figure, saliency_maps


def linear_softmax_model(w, b):
    # shape: image (4, 4, 1) -> flatten (16) -> softmax over 2 classes
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([w, b])
    return model


def test_matches_the_analytic_gradient_of_log_softmax():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(16, 2)).astype("float32"), np.array([0.1, -0.2], "float32")
    model = linear_softmax_model(w, b)
    x = rng.normal(size=(3, 4, 4)).astype("float32")
    z = x.reshape(3, 16) @ w + b
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    classes = np.array([0, 1, 1])
    # d log p_c / dx = w_c - sum_k p_k w_k
    grad = w[:, classes].T - p @ w.T  # (3, 16)
    expected = np.abs(grad).reshape(3, 4, 4)
    np.testing.assert_allclose(saliency_maps(model, x, classes), expected, rtol=1e-4, atol=1e-6)
    # Default: the predicted class.
    predicted = np.argmax(p, axis=1)
    expected_pred = np.abs(w[:, predicted].T - p @ w.T).reshape(3, 4, 4)
    np.testing.assert_allclose(saliency_maps(model, x[..., None], batch_size=2), expected_pred, rtol=1e-4, atol=1e-6)


def test_class_score_saliency_is_the_score_gradient():
    # Simonyan et al.: |dS_c/dx| of the class score; for a linear model that is |w_c|
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(16, 2)).astype("float32"), np.zeros(2, "float32")
    model = linear_softmax_model(w, b)
    x = rng.normal(size=(3, 4, 4)).astype("float32")
    classes = np.array([0, 1, 0])
    scores = lambda batch: keras.ops.matmul(keras.ops.reshape(batch, (-1, 16)), w) + b  # noqa: E731
    expected = np.abs(w[:, classes].T).reshape(3, 4, 4)
    np.testing.assert_allclose(saliency_maps(model, x, classes, scores=scores), expected, rtol=1e-5)
    # one logit z for two classes: |dz/dx| whatever the class
    logit = lambda batch: keras.ops.matmul(keras.ops.reshape(batch, (-1, 16)), w[:, 1:])  # noqa: E731
    expected = np.broadcast_to(np.abs(w[:, 1]).reshape(1, 4, 4), (3, 4, 4))
    np.testing.assert_allclose(saliency_maps(model, x, classes, scores=logit), expected, rtol=1e-5)


def test_bad_inputs_are_named():
    model = linear_softmax_model(np.zeros((16, 2), "float32"), np.zeros(2, "float32"))
    with pytest.raises(ValueError, match=r"\(N, H, W\[, C\]\)"):
        saliency_maps(model, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="one class per image"):
        saliency_maps(model, np.zeros((2, 4, 4)), classes=[0])


def test_figure_has_an_image_and_a_map_per_example():
    img = np.zeros((8, 8))
    fig = saliency_figure([("a", [("x", img, img), ("y", img, img)]), ("b", [("z", img, img)])])
    assert len(fig.axes) == 2 * 4

"""Helpers for the loss tests that differ by Keras backend (gradients)."""

import keras
import numpy as np
import pytest


def value_and_grad(loss, y_true, y_pred, dtype="float32", sample_weight=None):
    """``(loss value, d loss / d y_pred)`` as numpy float32, on whichever backend Keras runs."""
    backend = keras.backend.backend()
    y = keras.ops.cast(keras.ops.convert_to_tensor(y_true), dtype)
    p0 = keras.ops.cast(keras.ops.convert_to_tensor(y_pred), dtype)
    if backend == "tensorflow":
        import tensorflow as tf

        p = tf.Variable(p0)
        with tf.GradientTape() as tape:
            value = loss(y, p, sample_weight=sample_weight)
        grad = tape.gradient(value, p)
    elif backend == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda p: loss(y, p, sample_weight=sample_weight))(p0)
    elif backend == "torch":
        p = p0.detach().clone().requires_grad_(True)
        value = loss(y, p, sample_weight=sample_weight)
        value.backward()
        grad = p.grad
    else:  # pragma: no cover - numpy/openvino backends have no gradients
        pytest.skip(f"no gradients on the {backend} backend")
    to_np = lambda t: np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(t, "float32")))  # noqa: E731
    return to_np(value), (None if grad is None else to_np(grad))


@pytest.fixture
def grad_of():
    return value_and_grad

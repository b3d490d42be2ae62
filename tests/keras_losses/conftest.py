"""Helpers for the loss tests that differ by Keras backend (gradients, the exploratory search)."""

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
        if value.requires_grad:  # else the value does not depend on y_pred: no gradient
            value.backward()
        grad = p.grad
    else:  # pragma: no cover - numpy/openvino backends have no gradients
        pytest.skip(f"no gradients on the {backend} backend")
    to_np = lambda t: np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(t, "float32")))  # noqa: E731
    return to_np(value), (None if grad is None else to_np(grad))


@pytest.fixture
def grad_of():
    return value_and_grad


# ExploratoryGLFModel runs under TensorFlow and JAX; under another backend it refuses in
# compile() and in the train step (tested on every backend in test_adaptive_backends.py).
SEARCH_BACKENDS = ("tensorflow", "jax")
needs_search_backend = pytest.mark.skipif(
    keras.backend.backend() not in SEARCH_BACKENDS,
    reason="ExploratoryGLFModel refuses this backend (test_exploratory_refuses_other_backends)",
)

"""Input-gradient maps: how the predicted mask responds to each input pixel (Rajput 2021, Fig. 1)."""

from __future__ import annotations

import numpy as np


def input_gradients(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Gradient of the summed predicted probabilities with respect to each input pixel.

    Formula:
        G[b] = d (sum_{i,j} f(x_b)_{i,j}) / d x_b

    A large positive value marks a pixel whose increase grows the predicted mask the most;
    the attacks of :mod:`evaluation.attacks` overwrite the pixels of largest ``G``. Samples
    do not interact (the model runs in inference mode), so one batched gradient of the sum
    over the batch gives every sample's own gradient.

    Args:
        model: a Keras model mapping ``(B, H, W, C)`` to probabilities.
        images: ``(N, H, W, C)`` float array.
        batch_size: samples per gradient computation (default 64).

    Returns:
        ``(N, H, W, C)`` float32 gradients.

    Reference:
        V. Rajput, arXiv:2110.08322, 2021, Fig. 1 (gradients of the output w.r.t. the input).
    """
    import tensorflow as tf

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C); received {images.shape}")

    @tf.function(reduce_retracing=True)
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(tf.cast(model(x, training=False), tf.float32))
        return tape.gradient(total, x)

    out = [
        grad(tf.constant(images[i : i + batch_size])).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros_like(images)

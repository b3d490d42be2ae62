"""Gradient saliency maps of a classifier (Simonyan, Vedaldi, Zisserman 2014).

Formula (image x, class c, model output probabilities p(x)):
    M_c(x) = max over channels of | d log p_c(x) / d x |

For a softmax output, log p_c = s_c - logsumexp(s), the class score s_c of Simonyan et al.
minus a term shared by every class; it is used because the saved classifiers end in a
softmax. ``c`` is the predicted class unless given.

Reference:
    K. Simonyan, A. Vedaldi, A. Zisserman, "Deep inside convolutional networks: visualising
    image classification models and saliency maps", ICLR workshop 2014, Sec. 3;
    Baltatzis et al. 2021, Fig. 3.
"""

from __future__ import annotations

import numpy as np


def saliency_maps(model, images, classes=None, batch_size: int = 64) -> np.ndarray:
    """Saliency ``(N, H, W)`` of ``model`` for ``images`` ``(N, H, W[, C])``.

    Args:
        model: a Keras model mapping images to class probabilities ``(N, K)``.
        images: float array; a missing channel axis is added.
        classes: ``(N,)`` class index per image, or None for the predicted class.
        batch_size: images per gradient computation.
    """
    import tensorflow as tf

    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"saliency_maps: images must have shape (N, H, W[, C]); received {np.shape(images)}")
    if classes is not None:
        classes = np.asarray(classes, np.int32).reshape(-1)
        if classes.shape[0] != x.shape[0]:
            raise ValueError(
                f"saliency_maps: expected one class per image ({x.shape[0]}); received {classes.shape[0]}"
            )

    @tf.function(reduce_retracing=True)
    def grad(batch, cls):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            probs = tf.cast(model(batch, training=False), tf.float32)  # (b, K)
            if cls is None:
                cls = tf.argmax(probs, axis=-1, output_type=tf.int32)
            chosen = tf.gather(probs, cls, axis=1, batch_dims=1)  # (b,)
            # Samples are independent in inference mode: the gradient of the sum gives each
            # sample's own gradient.
            total = tf.reduce_sum(tf.math.log(tf.maximum(chosen, 1e-12)))
        return tape.gradient(total, batch)

    out = []
    for i in range(0, len(x), batch_size):
        cls = None if classes is None else tf.constant(classes[i : i + batch_size])
        g = grad(tf.constant(x[i : i + batch_size]), cls).numpy()
        out.append(np.max(np.abs(g), axis=-1))
    return np.concatenate(out) if out else np.zeros(x.shape[:3], np.float32)


def saliency_figure(rows, title: str | None = None):
    """A grid: one row per model, one (image, saliency) column pair per example.

    Args:
        rows: list of ``(row_label, [(caption, image (H, W), saliency (H, W)), ...])``.
    Returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(items) for _, items in rows) * 2
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.5 * n_cols, 1.7 * len(rows)), squeeze=False)
    for r, (label, items) in enumerate(rows):
        for k, (caption, image, sal) in enumerate(items):
            ax_img, ax_sal = axes[r, 2 * k], axes[r, 2 * k + 1]
            ax_img.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax_sal.imshow(sal, cmap="hot")
            ax_img.set_title(caption, fontsize=7)
            ax_sal.set_title("saliency", fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
        for k, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= 2 * len(items):  # a row with fewer examples than the widest one
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig

"""Gradient saliency maps of a classifier (Simonyan, Vedaldi, Zisserman 2014).

Formula (image x, class c, class scores S(x) before the output activation, probabilities p(x)):
    M_c(x) = max over channels of | d S_c(x) / d x |         (with ``scores``: Simonyan et al.)
    M_c(x) = max over channels of | d log p_c(x) / d x |     (without)

Simonyan et al. take the gradient of the class score S_c, "rather than the class posterior
returned by the soft-max layer". For a softmax output, log p_c = S_c - logsumexp(S) adds a term
shared by every class; for one sigmoid logit z (two classes) S_1 = z and S_0 = -z give the same
map. ``c`` is the predicted class unless given.

Reference:
    K. Simonyan, A. Vedaldi, A. Zisserman, "Deep inside convolutional networks: visualising
    image classification models and saliency maps", ICLR workshop 2014, Sec. 3;
    Baltatzis et al. 2021, Fig. 3.
"""

from __future__ import annotations

import numpy as np


def saliency_maps(model, images, classes=None, batch_size: int = 64, scores=None) -> np.ndarray:
    """Saliency ``(N, H, W)`` of ``model`` for ``images`` ``(N, H, W[, C])``.

    Args:
        model: a Keras model mapping images to class probabilities ``(N, K)``.
        images: float array; a missing channel axis is added.
        classes: ``(N,)`` class index per image, or None for the predicted class.
        batch_size: images per gradient computation.
        scores: ``scores(batch) -> (b, K)`` class scores before the output activation (or
            ``(b, 1)``: one logit for two classes), e.g. ``architectures.lenet.class_scores``
            bound to the model; None: the gradient of log p_c.
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
            if scores is None:
                chosen = tf.math.log(tf.maximum(tf.gather(probs, cls, axis=1, batch_dims=1), 1e-12))
            else:
                s = tf.cast(scores(batch), tf.float32)  # (b, K), or (b, 1): one logit
                # One logit: S_1 = z, S_0 = -z; the sign does not change |gradient|.
                chosen = s[:, 0] if s.shape[-1] == 1 else tf.gather(s, cls, axis=1, batch_dims=1)
            # Samples are independent in inference mode: the gradient of the sum gives each
            # sample's own gradient.
            total = tf.reduce_sum(chosen)
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

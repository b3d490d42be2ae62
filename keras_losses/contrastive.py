"""Contrastive loss of Hadsell, Chopra and LeCun, with pairs formed inside each batch."""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import register
from keras_losses._checks import check_positive


def pairwise_squared_distances(embeddings):
    """Squared Euclidean distances between all rows of ``embeddings`` (n, d) -> (n, n)."""
    e = ops.cast(embeddings, "float32")
    diff = ops.expand_dims(e, 1) - ops.expand_dims(e, 0)  # (n, n, d)
    return ops.sum(ops.square(diff), axis=-1)


@register
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive loss over all pairs of a batch, formed from embeddings and class labels.

    Formula (for a pair i != j, d = ||f(x_i) - f(x_j)||_2, margin m):
        l_ij = d^2                       if y_i == y_j   (similar pair)
        l_ij = max(0, m - d)^2           otherwise       (dissimilar pair)
        L    = mean over ordered pairs i != j of l_ij

    Hadsell et al. write each term with a factor 1/2; it is left out here, as in Baltatzis
    et al., which only rescales the loss (and the learning rate). The value returned for
    sample i is the mean of l_ij over j != i, so the batch mean is the mean over all pairs.
    A batch of one sample has no pair and gives 0.

    Args:
        margin: m (> 0), the distance beyond which dissimilar pairs cost nothing. Default 1.0.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Inputs:
        y_true: class labels, shape (batch,) or (batch, 1) (integers or one-hot (batch, C)).
        y_pred: embeddings, shape (batch, d).

    Reference:
        R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality reduction by learning an invariant
        mapping", CVPR 2006, eq. (4); V. Baltatzis et al., "The Effect of the Loss on
        Generalization: Empirical Study on Synthetic Lung Nodule Data", 2021, Eq. (2)
        (siamese LeNet-5).

    Example:
        >>> import numpy as np
        >>> labels = np.array([0, 0, 1])  # shape: (3,)
        >>> embeddings = np.array([[0.0], [0.5], [1.0]])  # shape: (3, 1)
        >>> # pairs: (0, 1) similar, d = 0.5 -> 0.25; (1, 2) dissimilar, d = 0.5 -> (1 - 0.5)^2;
        >>> # (0, 2) dissimilar, d = 1 -> 0. Mean over the pairs: 0.5 / 3
        >>> round(float(ContrastiveLoss(margin=1.0)(labels, embeddings)), 4)
        0.1667
    """

    def __init__(self, margin=1.0, name="contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = check_positive("margin", margin)

    def call(self, y_true, y_pred):
        if len(y_pred.shape) != 2:
            raise ValueError(
                f"ContrastiveLoss: `y_pred` must be embeddings of shape (batch, dim); "
                f"received shape {tuple(y_pred.shape)}"
            )
        labels = ops.convert_to_tensor(y_true)
        if len(labels.shape) == 2 and labels.shape[-1] not in (None, 1):
            labels = ops.argmax(labels, axis=-1)  # one-hot -> class index
        labels = ops.reshape(labels, (-1,))
        same = ops.cast(
            ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)), "float32"
        )
        d2 = pairwise_squared_distances(y_pred)
        # Same-class pairs use d^2 directly. Dissimilar pairs need d, and sqrt has an infinite
        # derivative at 0: the floor keeps it finite (two identical embeddings then get a zero
        # gradient from their pair, the loss m^2 staying until another pair moves them).
        d = ops.sqrt(ops.maximum(d2, 1e-12))
        pair = same * d2 + (1.0 - same) * ops.square(ops.maximum(self.margin - d, 0.0))
        n = ops.shape(pair)[0]
        off_diagonal = 1.0 - ops.eye(n, dtype="float32")
        per_sample = ops.sum(pair * off_diagonal, axis=1) / ops.maximum(
            ops.cast(n, "float32") - 1.0, 1.0
        )
        return per_sample

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}

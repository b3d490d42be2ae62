"""Dice loss with squared denominators, as used by Rajput (2021) after Milletari et al."""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import (
    check_shapes,
    check_unit_interval,
    register,
    scale_for_replicas,
    sum_over_replicas,
)


@register
class SquaredDiceLoss(keras.losses.Loss):
    """Soft Dice loss with squared terms in the denominator.

    Formula:
        L = 1 - (2 sum(p y) + s) / (sum(p^2) + sum(y^2) + s)

    Args:
        per_image: if True (default), sum over each image and average the per-image losses;
            if False, pool the sums over the whole batch.
        smooth: smoothing constant s (default 1.0, which makes an empty prediction on an
            empty mask a loss of 0 and keeps gradients finite).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV 2016, eq. (1);
        V. Rajput, "Robustness of different loss functions and their impact on networks
        learning capability", arXiv:2110.08322, 2021.
    """

    # Pooled sums are all-reduced over replicas here (training.fit checks this flag).
    global_batch = True

    def __init__(self, per_image=True, smooth=1.0, name="squared_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = bool(per_image)
        self.smooth = float(smooth)
        if self.smooth < 0:
            raise ValueError(f"`smooth` must be >= 0; received {smooth}")

    def call(self, y_true, y_pred):
        check_shapes(y_true, y_pred, type(self).__name__)
        check_unit_interval("y_true", y_true, type(self).__name__)
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        axis = tuple(range(1, len(y_pred.shape))) if self.per_image else None
        inter = ops.sum(y_pred * y_true, axis=axis)
        den = ops.sum(ops.square(y_pred), axis=axis) + ops.sum(ops.square(y_true), axis=axis)
        if self.per_image:
            return 1.0 - (2.0 * inter + self.smooth) / (den + self.smooth)
        # Pooled: sums over the global batch under tf.distribute (see GeneralizedLoss).
        inter, den = sum_over_replicas(inter), sum_over_replicas(den)
        return scale_for_replicas(1.0 - (2.0 * inter + self.smooth) / (den + self.smooth))

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image, "smooth": self.smooth}

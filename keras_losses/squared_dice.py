"""Dice loss with squared denominators, as written by Rajput (2021) after Milletari et al."""

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

# Small enough not to matter: a batch with any foreground has sum(y^2) >= 1, so s shifts the
# loss by at most s = 1e-6 (benchmarks/bench_dice_smoothing.py measures it on real batches);
# it only keeps 0 / 0 finite when a whole batch is empty and predicted empty.
DEFAULT_SMOOTH = 1e-6


@register
class SquaredDiceLoss(keras.losses.Loss):
    """Soft Dice loss with squared terms in the denominator, pooled over the batch by default.

    Formula:
        L = 1 - (2 sum(p y) + s) / (sum(p^2) + sum(y^2) + s)

    with the sums over every pixel of the whole batch (``per_image=False``) or of each image
    (``per_image=True``, then the per-image losses are averaged).

    Args:
        per_image: if False (default, the paper's formula: one sum over the pixels i = 1..n),
            pool the sums over the whole batch; if True, sum over each image and average the
            per-image losses.
        smooth: smoothing constant s (default 1e-6: the paper has none; this only keeps an
            all-empty batch finite and changes no loss with foreground by more than 1e-6).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        V. Rajput, "Robustness of different loss functions and their impact on networks
        learning capability", arXiv:2110.08322, 2021, Sec. 3: "Loss_Dice = 1 - 2 sum_i p_i y_i
        / (sum_i p_i^2 + sum_i y_i^2)"; F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV
        2016, eq. (1).

    Example:
        >>> y = np.array([[[[1.0], [0.0]]]], "float32")  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.5], [0.0]]]], "float32")
        >>> loss = SquaredDiceLoss(smooth=0.0)(y, p)  # 1 - 2 * 0.5 / (0.25 + 1) = 0.2
    """

    # Pooled sums are all-reduced over replicas here (training.fit checks this flag).
    global_batch = True

    def __init__(self, per_image=False, smooth=DEFAULT_SMOOTH, name="squared_dice_loss", **kwargs):
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

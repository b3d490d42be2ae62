"""Dice loss with squared denominators, as written by Rajput (2021) after Milletari et al."""

from __future__ import annotations

from keras import ops

from keras_losses._base import OverlapLoss, class_sums, count_axes, register, sum_over_replicas

# Small enough not to matter: a batch with any foreground has sum(y^2) >= 1, so s shifts the
# loss by at most s = 1e-6 (benchmarks/bench_dice_smoothing.py measures it on real batches);
# it only keeps 0 / 0 finite when a whole batch is empty and predicted empty.
DEFAULT_SMOOTH = 1e-6


@register
class SquaredDiceLoss(OverlapLoss):
    """Soft Dice loss with squared terms in the denominator, pooled over the batch by default.

    Formula (per class c; sums over the pixels of the whole batch or of each image):
        L_c = 1 - (2 sum(p y) + s_nr) / (sum(p^2) + sum(y^2) + s_dr)
        L   = sum_c w_c L_c / sum_c w_c

    A pixel mask weighs each pixel's terms: sum(w p y), sum(w p^2), sum(w y^2).

    Args:
        per_image: if False (default, the paper's formula: one sum over the pixels i = 1..n),
            pool the sums over the whole batch; if True, sum over each image and average the
            per-image losses.
        smooth: smoothing constant s (default 1e-6: the paper has none; this only keeps an
            all-empty batch finite and changes no loss with foreground by more than 1e-6).
        smooth_nr, smooth_dr and the input convention: as for :class:`DiceLoss`
            (MONAI: ``DiceLoss(squared_pred=True)``).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        V. Rajput, "Robustness of different loss functions and their impact on networks
        learning capability", arXiv:2110.08322, 2021, Sec. 3: "Loss_Dice = 1 - 2 sum_i p_i y_i
        / (sum_i p_i^2 + sum_i y_i^2)"; F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV
        2016, eq. (1).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]], "float32")  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.5], [0.0]]]], "float32")
        >>> round(float(SquaredDiceLoss(smooth=0.0)(y, p)), 4)  # 1 - 2 * 0.5 / (0.25 + 1)
        0.2
    """

    def __init__(
        self,
        per_image: bool = False,
        smooth: float = DEFAULT_SMOOTH,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "squared_dice_loss",
        **kwargs,
    ):
        super().__init__(
            per_image=per_image,
            smooth=smooth,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            name=name,
            **kwargs,
        )

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight)
        per_class = self.class_reduction == "mean"
        p, y = probs, labels
        wp, wy = (p, y) if weights is None else (p * weights, y * weights)
        if probs.shape[-1] != 1:
            # Several channels: sum(p^2) + sum(y^2) = sum((p - y)^2) + 2 sum(p y), one product
            # per pixel fewer forward and backward (benchmarks/bench_losses.py), and sums of
            # smaller terms, nearer their float64 values. One channel keeps the direct sums.
            sums = class_sums if per_class else self._pooled_sums
            diff = ops.square(p - y) if weights is None else ops.square(p - y) * weights
            inter = sums(wp * y, self.per_image)
            den = sums(diff, self.per_image) + 2.0 * inter
        elif per_class:
            inter = class_sums(wp * y, self.per_image)
            den = class_sums(wp * p + wy * y, self.per_image)
        else:
            inter = self._pooled_sums(wp * y, self.per_image)
            den = self._pooled_sums(wp * p + wy * y, self.per_image)
        if not self.per_image:
            # Pooled: sums over the global batch under tf.distribute (see GeneralizedLoss).
            inter, den = sum_over_replicas(inter), sum_over_replicas(den)
        per_class = 1.0 - (2.0 * inter + self.smooth_nr) / (den + self.smooth_dr)
        return self.reduce(per_class, probs.shape[-1])

    @staticmethod
    def _pooled_sums(x, per_image):
        """Sums over the pixels and the channels: (batch,) or ()."""
        return ops.sum(x, axis=count_axes(len(x.shape), per_image, False))

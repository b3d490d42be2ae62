"""Distance-transform Hausdorff loss (Karimi & Salcudean 2019), one-sided variant."""

from __future__ import annotations

from keras import ops

from keras_losses._base import SegmentationLoss, register
from keras_losses._checks import check_positive
from keras_losses.distance_maps import split_distance_maps


@register
class OneSidedHausdorffDTLoss(SegmentationLoss):
    """Squared errors weighted by the distance to the label's boundary, raised to alpha.

    Formula (per image; pixels i, classes c; d = |phi| the distance to the label's boundary):
        L = mean_c ( sum_i w_i (p_ic - y_ic)^2 d_ic^alpha / sum_i w_i )

    One-sided: the paper's loss adds the distance map of the *prediction*, ``d_p^alpha``,
    recomputed at every step outside the gradient; this variant keeps the label's term only,
    whose maps are computed once per sample in the data pipeline
    (:func:`~keras_losses.distance_maps.attach_distance_maps`). It penalises errors far from
    the true boundary (false positives far outside, misses deep inside); it does not see how
    far a wrong prediction's own boundary lies from its pixels.

    Args:
        alpha: the exponent of the distances. Default 2.0 (Karimi & Salcudean, Sec. III-A).
        from_logits, activation, include_background, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", True, None).
            ``y_true`` holds the labels followed by C distance maps (mm).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        D. Karimi, S. E. Salcudean, "Reducing the Hausdorff distance in medical image
        segmentation with convolutional neural networks", IEEE TMI 39(2), 499-513, 2019,
        eq. (8) (Loss_DT) with the prediction's term left out.

    Example:
        >>> y = np.array([[[[1.0], [0.0], [0.0]]]])  # shape: (1, 1, 3, 1)
        >>> phi = np.array([[[[-1.0], [1.0], [2.0]]]])
        >>> p = np.array([[[[1.0], [0.5], [0.5]]]])
        >>> round(float(OneSidedHausdorffDTLoss()(np.concatenate([y, phi], -1), p)), 4)  # (0.25 + 1) / 3
        0.4167
    """

    def __init__(self, alpha: float = 2.0, name: str = "one_sided_hausdorff_dt_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = check_positive("alpha", alpha)

    def compute(self, y_true, y_pred, sample_weight):
        channels = y_pred.shape[-1]
        labels, phi = split_distance_maps(y_true, channels)
        y, p, w = self.prepare(labels, y_pred, sample_weight)
        d = ops.abs(ops.cast(phi, "float32"))
        if not self.include_background and channels > 1:
            d = d[..., 1:]
        w = ops.ones_like(p[..., :1]) if w is None else w
        axes = tuple(range(1, len(p.shape) - 1))
        err = w * ops.square(p - y) * ops.power(d, self.alpha)
        per_class = ops.sum(err, axis=axes) / ops.maximum(ops.sum(w, axis=axes), 1e-12)
        return ops.mean(per_class, axis=-1)  # (batch,)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}

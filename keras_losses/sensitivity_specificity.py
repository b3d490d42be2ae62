"""Sensitivity-specificity loss (Brosch et al. 2015): squared errors weighted per class side."""

from __future__ import annotations

from keras import ops

from keras_losses._base import (
    SegmentationLoss,
    count_axes,
    mean_over_classes,
    register,
    scale_for_replicas,
    sum_over_replicas,
)
from keras_losses._checks import check_bool, check_in_range, check_nonnegative


@register
class SensitivitySpecificityLoss(SegmentationLoss):
    """A weighted sum of the mean squared error inside and outside each class.

    Formula (per class c; sums over the pixels of the batch, or of one image):
        sens_c = sum((y - p)^2 y) / (sum(y) + s)
        spec_c = sum((y - p)^2 (1 - y)) / (sum(1 - y) + s)
        L_c    = r sens_c + (1 - r) spec_c,     L = mean over classes of L_c

    Args:
        r: weight of the sensitivity term, in [0, 1]. Default 0.05 (Brosch et al. weight the
            sensitivity term lightly, since the lesion side sums over few pixels and the
            specificity side over many).
        smooth: s, added to both denominators so that an absent class gives 0. Default 1e-5.
        per_image: one loss per image (True) or sums pooled over the batch (False, default).
        from_logits, activation, include_background, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", True, None).
            Pixel weights (a mask) weight every sum.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        T. Brosch, Y. Yoo, L. Y. W. Tang, D. K. B. Li, A. Traboulsee, R. Tam, "Deep
        convolutional encoder networks for multiple sclerosis lesion segmentation", MICCAI
        2015, Sec. 2 (the objective function, eq. 3 with the sensitivity ratio r).

    Example:
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[0.5], [0.5]], [[0.0], [0.0]]]])
        >>> loss = SensitivitySpecificityLoss(r=0.5, smooth=0.0)
        >>> round(float(loss(y, p)), 4)  # 0.5 * 0.25 / 1 + 0.5 * 0.25 / 3
        0.1667
    """

    def __init__(
        self,
        r: float = 0.05,
        smooth: float = 1e-5,
        per_image: bool = False,
        name: str = "sensitivity_specificity_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.r = check_in_range("r", r, 0.0, 1.0)
        self.smooth = check_nonnegative("smooth", smooth)
        self.per_image = check_bool("per_image", per_image)

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def compute(self, y_true, y_pred, sample_weight):
        y, p, w = self.prepare(y_true, y_pred, sample_weight)
        w = ops.ones_like(p[..., :1]) if w is None else w
        axis = count_axes(len(p.shape), self.per_image, per_class=True)
        sq = ops.square(y - p) * w  # (batch, *spatial, C)
        sums = [
            ops.sum(sq * y, axis=axis),
            ops.sum(y * w, axis=axis),
            ops.sum(sq * (1.0 - y), axis=axis),
            ops.sum((1.0 - y) * w, axis=axis),
        ]
        if not self.per_image:  # sums of the global batch under tf.distribute
            sums = [sum_over_replicas(s) for s in sums]
        sens = sums[0] / (sums[1] + self.smooth)
        spec = sums[2] / (sums[3] + self.smooth)
        value = mean_over_classes(self.r * sens + (1.0 - self.r) * spec)
        return value if self.per_image else scale_for_replicas(value)

    def get_config(self):
        return {
            **super().get_config(),
            "r": self.r,
            "smooth": self.smooth,
            "per_image": self.per_image,
        }

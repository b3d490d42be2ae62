"""Soft Jaccard (IoU) loss, on the shared soft counts."""

from __future__ import annotations

from keras_losses._base import OverlapLoss, register


@register
class JaccardLoss(OverlapLoss):
    """Soft Jaccard (intersection over union) loss of each class, averaged.

    Formula (per class c):
        L_c = 1 - (TP_c + s_nr) / (TP_c + FP_c + FN_c + s_dr)
        L   = sum_c w_c L_c / sum_c w_c

    with TP + FP + FN = sum(p) + sum(y) - sum(p y), the soft union. It equals
    :class:`TverskyLoss` with alpha = beta = 1.

    Args:
        per_image, smooth (default 1.0), smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        P. Jaccard, "The distribution of the flora in the alpine zone", New Phytologist 11(2),
        1912; M. A. Rahman, Y. Wang, "Optimizing intersection-over-union in deep neural
        networks for image segmentation", ISVC 2016 (the soft form).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # TP = 1, FP = 1, FN = 0
        >>> round(float(JaccardLoss(smooth=0.0)(y, p)), 4)  # 1 - 1 / 2
        0.5
    """

    def __init__(
        self,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "jaccard_loss",
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

    def from_counts(self, tp, fp, fn):
        return 1.0 - (tp + self.smooth_nr) / (tp + fp + fn + self.smooth_dr)

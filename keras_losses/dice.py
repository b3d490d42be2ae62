"""Soft Dice loss (Milletari et al. 2016), per class or pooled, on the shared soft counts."""

from __future__ import annotations

from keras_losses._base import OverlapLoss, register


@register
class DiceLoss(OverlapLoss):
    """Soft Dice loss: one minus the soft Dice coefficient of each class, averaged.

    Formula (per class c, counts over the pixels of the batch or of one image):
        L_c = 1 - (2 TP_c + s_nr) / (2 TP_c + FP_c + FN_c + s_dr)
        L   = sum_c w_c L_c / sum_c w_c          (class_reduction="mean")

    with soft counts TP = sum(p y), FP = sum(p (1 - y)), FN = sum((1 - p) y); 2 TP + FP + FN =
    sum(p) + sum(y). It equals :class:`GeneralizedLoss` with alpha_p = alpha_n = beta2 = 1 (the
    GLF of Seo et al.) and ``keras.losses.Dice`` for ``smooth=0`` on one channel.

    Args:
        per_image: pool counts over the batch (False, default) or one loss per image, averaged
            (True; MONAI's ``batch=False``).
        smooth: shorthand for ``smooth_nr = smooth_dr``. Default 1.0.
        smooth_nr, smooth_dr: numerator and denominator smoothing (MONAI's names). Default None
            (= ``smooth``).
        from_logits, activation, include_background, ignore_class, class_weights,
        class_reduction: the input convention of :class:`keras_losses._base.OverlapLoss`
            (defaults False, "auto", True, None, None, "mean").
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV 2016, eq. (1) with linear instead of
        squared denominators; Seo et al., IEEE TMI 2021, eq. (1) with alpha_p = alpha_n =
        beta2 = 1.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # TP = 1, FP = 1, FN = 0
        >>> round(float(DiceLoss(smooth=0.0)(y, p)), 4)  # 1 - 2 / (2 + 1)
        0.3333
    """

    def __init__(
        self,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "dice_loss",
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
        num = 2.0 * tp
        return 1.0 - (num + self.smooth_nr) / (num + fp + fn + self.smooth_dr)

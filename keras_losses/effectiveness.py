"""Van Rijsbergen's effectiveness (F-beta) loss, on the shared soft counts."""

from __future__ import annotations

from keras_losses._base import OverlapLoss, register
from keras_losses._checks import check_positive


@register
class EffectivenessLoss(OverlapLoss):
    """Effectiveness (soft F-beta) loss: one minus the soft F-beta score of each class, averaged.

    Formula (per class c):
        L_c = 1 - ((1 + beta2) TP_c + s_nr) / ((1 + beta2) TP_c + FP_c + beta2 FN_c + s_dr)
        L   = sum_c w_c L_c / sum_c w_c

    It equals :class:`GeneralizedLoss` with alpha_p = alpha_n = 1 and the given beta2.

    Args:
        beta2: beta^2 (> 0): beta2 > 1 weighs recall over precision. Default 1.0 (Dice).
        per_image, smooth, smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss` (defaults False, 1.0, None, None).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        C. J. van Rijsbergen, "Information Retrieval", 2nd ed., 1979, ch. 7 (effectiveness E);
        Seo et al., IEEE TMI 2021, eq. (1) with alpha_p = alpha_n = 1.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # TP = 1, FP = 1, FN = 0
        >>> round(float(EffectivenessLoss(beta2=4.0, smooth=0.0)(y, p)), 4)  # 1 - 5 / 6
        0.1667
    """

    def __init__(
        self,
        beta2: float = 1.0,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "effectiveness_loss",
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
        self.beta2 = check_positive("beta2", beta2)

    def from_counts(self, tp, fp, fn):
        num = (1.0 + self.beta2) * tp
        return 1.0 - (num + self.smooth_nr) / (num + fp + self.beta2 * fn + self.smooth_dr)

    def get_config(self):
        return {**super().get_config(), "beta2": self.beta2}

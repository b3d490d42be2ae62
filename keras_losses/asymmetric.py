"""Asymmetric similarity loss (Hashemi et al. 2018): one minus the soft F-beta score."""

from __future__ import annotations

from keras_losses._base import OverlapLoss, register
from keras_losses._checks import check_positive


@register
class AsymmetricSimilarityLoss(OverlapLoss):
    """One minus the soft F-beta score of each class, averaged; beta > 1 weighs recall up.

    Formula (per class c, soft counts over the batch or one image):
        F_c = ((1 + beta^2) TP + s_nr) / ((1 + beta^2) TP + beta^2 FN + FP + s_dr)
        L   = mean over classes of (1 - F_c)

    It equals :class:`EffectivenessLoss` with ``beta2 = beta^2`` (the GLF with alpha_p =
    alpha_n = 1) and, at beta = 1, :class:`DiceLoss`.

    Args:
        beta: the F-beta parameter, > 0. Default 1.5 (Hashemi et al., Sec. II-B, the value
            they chose for lesion segmentation).
        per_image, smooth, smooth_nr, smooth_dr, class_weights, class_reduction, from_logits,
        activation, include_background, ignore_class: as for :class:`DiceLoss` (the shared
            convention of :class:`keras_losses._base.OverlapLoss`; smooth default 1.0).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        S. R. Hashemi, S. S. M. Salehi, D. Erdogmus, S. P. Prabhu, S. K. Warfield, A.
        Gholipour, "Asymmetric loss functions and deep densely-connected networks for highly
        imbalanced medical image segmentation: application to multiple sclerosis lesion
        detection", IEEE Access 7, 1721-1735, 2018, eq. (3).

    Example:
        >>> y = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]])  # TP = 1, FN = 1, FP = 1
        >>> round(float(AsymmetricSimilarityLoss(beta=2.0, smooth=0.0)(y, p)), 4)  # 1 - 5 / 10
        0.5
    """

    def __init__(self, beta: float = 1.5, name: str = "asymmetric_similarity_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta = check_positive("beta", beta)

    def from_counts(self, tp, fp, fn):
        b2 = self.beta**2
        num = (1.0 + b2) * tp
        return 1.0 - (num + self.smooth_nr) / (num + b2 * fn + fp + self.smooth_dr)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}

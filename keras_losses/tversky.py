"""Tversky loss (Salehi et al. 2017) and focal Tversky loss (Abraham & Khan 2019)."""

from __future__ import annotations

from keras import ops

from keras_losses._base import OverlapLoss, register
from keras_losses._checks import check_nonnegative, check_positive


@register
class TverskyLoss(OverlapLoss):
    """Tversky loss: one minus the soft Tversky index of each class, averaged.

    Formula (per class c):
        TI_c = (TP_c + s_nr) / (TP_c + alpha FP_c + beta FN_c + s_dr)
        L_c  = 1 - TI_c,        L = sum_c w_c L_c / sum_c w_c

    ``alpha`` weighs false POSITIVES and ``beta`` false NEGATIVES, as in Salehi et al. and
    MONAI (``keras.losses.Tversky`` up to Keras 3.15 applies its ``alpha`` to false negatives).
    alpha = beta = 0.5 gives the Dice loss with half its smoothing; alpha = beta = 1 the Jaccard
    loss. As a GLF (Seo et al.): alpha_p = 2 alpha, alpha_n = 2 beta, beta2 = 1.

    Args:
        alpha: weight of false positives (> 0). Default 0.5.
        beta: weight of false negatives (> 0). Default 0.5 (Dice).
        smooth: shorthand for ``smooth_nr = smooth_dr``. Default 0.5 (the Dice loss's 1.0 in the
            Tversky form: 1 - (2 TP + 1) / (2 TP + FP + FN + 1) at alpha = beta = 0.5).
        per_image, smooth_nr, smooth_dr and the input convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        S. S. M. Salehi, D. Erdogmus, A. Gholipour, "Tversky loss function for image
        segmentation using 3D fully convolutional deep networks", MLMI 2017, eq. (3);
        Seo et al., IEEE TMI 2021, eq. (1) with beta2 = 1.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # TP = 1, FP = 0, FN = 1
        >>> round(float(TverskyLoss(alpha=0.3, beta=0.7, smooth=0.0)(y, p)), 4)  # 1 - 1 / 1.7
        0.4118
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        per_image: bool = False,
        smooth: float = 0.5,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "tversky_loss",
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
        self.alpha = check_positive("alpha", alpha)
        self.beta = check_positive("beta", beta)

    def tversky_index(self, tp, fp, fn):
        return (tp + self.smooth_nr) / (tp + self.alpha * fp + self.beta * fn + self.smooth_dr)

    def from_counts(self, tp, fp, fn):
        return 1.0 - self.tversky_index(tp, fp, fn)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}

    @classmethod
    def from_config(cls, config):
        # A configuration saved before smooth_nr/smooth_dr existed wrote the GLF's smoothing
        # s of 1 - (2 TP + s) / (2 TP + 2 alpha FP + 2 beta FN + s): s / 2 in the Tversky form.
        if "smooth_nr" not in config and "smooth" in config:
            config = {**config, "smooth": config["smooth"] / 2.0}
        return cls(**config)


@register
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss: the Tversky loss of each class raised to a power, averaged.

    Formula (per class c):
        L_c = (1 - TI_c)^gamma,        L = sum_c w_c L_c / sum_c w_c

    with TI_c the Tversky index of :class:`TverskyLoss` (``alpha`` on false positives,
    ``beta`` on false negatives). gamma < 1 keeps the gradient large as TI_c approaches 1
    (hard, small structures). Abraham and Khan write the exponent 1/gamma with gamma = 4/3 and
    sum over the classes; the exponent here is theirs inverted (0.75), as in their code, and the
    sum becomes a (weighted) mean, as every loss of this library.

    Args:
        alpha: weight of false positives (> 0). Default 0.3 (the paper's beta = 0.3).
        beta: weight of false negatives (> 0). Default 0.7 (the paper's alpha = 0.7).
        gamma: exponent (>= 0). Default 0.75 (the paper's 1/gamma, gamma = 4/3); 1 gives the
            Tversky loss.
        per_image, smooth (default 1.0, as the authors' code), smooth_nr, smooth_dr and the
            input convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        N. Abraham, N. M. Khan, "A novel focal Tversky loss function with improved attention
        U-Net for lesion segmentation", ISBI 2019, eq. (4).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # TP = 1, FP = 0, FN = 1
        >>> loss = FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=0.5, smooth=0.0)
        >>> round(float(loss(y, p)), 4)  # (1 - 1 / 1.7) ** 0.5
        0.6417
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "focal_tversky_loss",
        **kwargs,
    ):
        super().__init__(
            alpha,
            beta,
            per_image=per_image,
            smooth=smooth,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            name=name,
            **kwargs,
        )
        self.gamma = check_nonnegative("gamma", gamma)

    def from_counts(self, tp, fp, fn):
        x = 1.0 - self.tversky_index(tp, fp, fn)
        # x^gamma with gamma < 1 has an infinite slope at x = 0 (a perfect prediction): the
        # value there is 0 and its gradient is taken as 0.
        positive = x > 0
        return ops.where(positive, ops.power(ops.where(positive, x, 1.0), self.gamma), 0.0)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

"""Overlap + pixel losses in one class: Dice + cross-entropy, Dice + focal, and the Combo loss.

Each shares one input convention (logits, sparse labels, ignore label, masks) between its two
terms; :class:`CombinedLoss` sums arbitrary losses instead.
"""

from __future__ import annotations

from keras import ops

from keras_losses._base import OverlapLoss, SegmentationLoss, pooled_mean, register
from keras_losses._checks import check_in_range, check_nonnegative
from keras_losses.crossentropy import (
    BinaryCrossentropyLoss,
    CategoricalCrossentropyLoss,
    log_probabilities,
    masked_mean,
)
from keras_losses.dice import DiceLoss
from keras_losses.focal import BinaryFocalLoss, CategoricalFocalLoss

# The input-convention arguments a compound loss hands to both of its terms.
SHARED = ("from_logits", "activation", "include_background", "ignore_class")


def _uses_softmax(loss: SegmentationLoss, channels) -> bool:
    return loss.activation == "softmax" or (loss.activation == "auto" and channels != 1)


class _DicePlus(OverlapLoss):
    """Dice of :class:`DiceLoss` plus a pixel term chosen by the activation (sigmoid: binary,
    softmax: categorical)."""

    def _dice(self):
        return DiceLoss(
            per_image=self.per_image,
            smooth=self.smooth,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            class_weights=self.class_weights,
            class_reduction=self.class_reduction,
            **{k: getattr(self, k) for k in SHARED},
        )

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def compute(self, y_true, y_pred, sample_weight):
        channels = y_pred.shape[-1]
        dice = self._dice().compute(y_true, y_pred, sample_weight)
        pixel = self.pixel_term(channels).compute(y_true, y_pred, sample_weight)
        if not self.per_image:
            pixel = pooled_mean(pixel)  # a scalar over the global batch, like the pooled Dice
        return self.dice_weight * dice + self.pixel_weight * pixel


@register
class DiceCELoss(_DicePlus):
    """Dice loss plus cross-entropy, on one input convention.

    Formula:
        L = lambda_dice L_Dice + lambda_ce L_CE

    with L_Dice of :class:`DiceLoss` and L_CE the binary cross-entropy
    (:class:`BinaryCrossentropyLoss`) for one channel or ``activation="sigmoid"``, the
    categorical cross-entropy (:class:`CategoricalCrossentropyLoss`) otherwise. ``class_weights``
    weigh both terms (the Dice's class mean, the cross-entropy's pixels).

    Args:
        lambda_dice: weight of the Dice term (>= 0). Default 1.0.
        lambda_ce: weight of the cross-entropy term (>= 0). Default 1.0.
        per_image, smooth (default 1.0), smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        F. Isensee et al., "nnU-Net", Nature Methods 18, 2021 (Dice + CE); MONAI ``DiceCELoss``.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # Dice 1 - (1.6 + 1) / (2 + 1), BCE -log 0.8
        >>> round(float(DiceCELoss()(y, p)), 4)
        0.3565
    """

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "dice_ce_loss",
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
        self.lambda_dice = check_nonnegative("lambda_dice", lambda_dice)
        self.lambda_ce = check_nonnegative("lambda_ce", lambda_ce)

    @property
    def dice_weight(self):
        return self.lambda_dice

    @property
    def pixel_weight(self):
        return self.lambda_ce

    def pixel_term(self, channels):
        shared = {k: getattr(self, k) for k in SHARED if k != "activation"}
        if _uses_softmax(self, channels):
            return CategoricalCrossentropyLoss(class_weights=self.class_weights, **shared)
        return BinaryCrossentropyLoss(**shared)

    def get_config(self):
        return {
            **super().get_config(),
            "lambda_dice": self.lambda_dice,
            "lambda_ce": self.lambda_ce,
        }


@register
class DiceFocalLoss(_DicePlus):
    """Dice loss plus focal loss, on one input convention.

    Formula:
        L = lambda_dice L_Dice + lambda_focal L_Focal

    with L_Focal of :class:`BinaryFocalLoss` (one channel or ``activation="sigmoid"``; alpha
    applied as alpha_t when given) or :class:`CategoricalFocalLoss` (softmax; alpha one number
    or one per class, default 1 = no weighting).

    Args:
        lambda_dice: weight of the Dice term (>= 0). Default 1.0.
        lambda_focal: weight of the focal term (>= 0). Default 1.0.
        gamma: focusing parameter of the focal term (>= 0). Default 2.0.
        alpha: None (default, no class balancing), or the focal term's alpha.
        per_image, smooth (default 1.0), smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        W. Zhu et al., "AnatomyNet", Medical Physics 46(2), 2019 (Dice + focal); MONAI
        ``DiceFocalLoss``.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # Dice 1 - 2.6 / 3, focal 0.2^2 (-log 0.8)
        >>> round(float(DiceFocalLoss()(y, p)), 4)
        0.1423
    """

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        gamma: float = 2.0,
        alpha=None,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "dice_focal_loss",
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
        self.lambda_dice = check_nonnegative("lambda_dice", lambda_dice)
        self.lambda_focal = check_nonnegative("lambda_focal", lambda_focal)
        self.gamma = check_nonnegative("gamma", gamma)
        if isinstance(alpha, (list, tuple)):
            self.alpha = [check_nonnegative(f"alpha[{i}]", a) for i, a in enumerate(alpha)]
        else:
            self.alpha = None if alpha is None else check_in_range("alpha", alpha, 0.0, 1.0)

    @property
    def dice_weight(self):
        return self.lambda_dice

    @property
    def pixel_weight(self):
        return self.lambda_focal

    def pixel_term(self, channels):
        shared = {k: getattr(self, k) for k in SHARED if k != "activation"}
        if _uses_softmax(self, channels) and channels != 1:
            alpha = 1.0 if self.alpha is None else self.alpha
            return CategoricalFocalLoss(alpha=alpha, gamma=self.gamma, **shared)
        if isinstance(self.alpha, (list, tuple)):
            raise ValueError(
                "DiceFocalLoss: a list of alpha values needs a softmax over several classes"
            )
        return BinaryFocalLoss(
            alpha=0.25 if self.alpha is None else self.alpha,
            gamma=self.gamma,
            apply_class_balancing=self.alpha is not None,
            **shared,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "lambda_dice": self.lambda_dice,
            "lambda_focal": self.lambda_focal,
            "gamma": self.gamma,
            "alpha": self.alpha,
        }


@register
class ComboLoss(OverlapLoss):
    """Combo loss of Taghanaki et al.: a weighted cross-entropy minus the Dice coefficient.

    Formula (per pixel i and channel c; DSC the soft Dice coefficient, mean over classes):
        mBCE = -mean_ic(beta y_ic log p_ic + (1 - beta)(1 - y_ic) log(1 - p_ic))
        L    = alpha mBCE - (1 - alpha) DSC,      DSC = (2 TP + s_nr) / (2 TP + FP + FN + s_dr)

    beta > 0.5 penalises false negatives more than false positives; the loss lies in
    [-(1 - alpha), inf) and is minimal (-(1 - alpha)) for a perfect prediction.

    Args:
        alpha: weight of the cross-entropy against the Dice term, in [0, 1]. Default 0.5.
        beta: weight of the positive term of the cross-entropy, in [0, 1]. Default 0.5.
        per_image, smooth (default 1.0), smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss` (channels are treated as independent sigmoids in the
            cross-entropy, as in the paper).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        S. A. Taghanaki et al., "Combo loss: handling input and output imbalance in
        multi-organ segmentation", Computerized Medical Imaging and Graphics 75, 2019,
        eq. (3)-(4).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # mBCE 0.5 (-log 0.8), DSC (1.6 + 1) / 3
        >>> round(float(ComboLoss()(y, p)), 4)
        -0.3775
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "combo_loss",
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
        self.alpha = check_in_range("alpha", alpha, 0.0, 1.0)
        self.beta = check_in_range("beta", beta, 0.0, 1.0)

    def from_counts(self, tp, fp, fn):
        num = 2.0 * tp
        return (num + self.smooth_nr) / (num + fp + fn + self.smooth_dr)  # the coefficient

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight)
        dsc = self.reduce(self.from_counts(*self.counts(labels, probs, weights)), probs.shape[-1])
        log_p, log_not_p = log_probabilities(y_pred, self.from_logits, "sigmoid")
        if self.from_logits and _uses_softmax(self, y_pred.shape[-1]):
            log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
            log_not_p = ops.log(ops.maximum(1.0 - ops.exp(log_p), 1e-7))
        if not self.include_background and (y_pred.shape[-1] or 1) > 1:
            log_p, log_not_p = log_p[..., 1:], log_not_p[..., 1:]
        bce = -(self.beta * labels * log_p + (1.0 - self.beta) * (1.0 - labels) * log_not_p)
        ce = masked_mean(bce, weights)
        if not self.per_image:
            ce = pooled_mean(ce)
        return self.alpha * ce - (1.0 - self.alpha) * dsc

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}

"""Exponential logarithmic loss of Wong et al. (2018)."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_losses._base import OverlapLoss, pooled_mean, register
from keras_losses._checks import check_nonnegative
from keras_losses.crossentropy import log_probabilities, masked_mean


def safe_power(x, exponent: float):
    """x^exponent for x >= 0, with value 0 and a zero gradient at x = 0 (exponent < 1)."""
    x = ops.maximum(x, 0.0)
    positive = x > 0
    return ops.where(positive, ops.power(ops.where(positive, x, 1.0), exponent), 0.0)


@register
class ExpLogLoss(OverlapLoss):
    """Exponential logarithmic loss: powers of -log(Dice) and of -log(p), weighted.

    Formula (Dice_c the soft Dice coefficient of class c; l the pixel's true class):
        L_Dice = mean_c (-ln Dice_c)^gamma_dice,   Dice_c = (2 TP_c + s_nr) / (2 TP_c + FP_c + FN_c + s_dr)
        L_CE   = mean_x w_l (-ln p_l(x))^gamma_ce
        L      = w_dice L_Dice + w_ce L_CE

    gamma < 1 raises the small losses of well-segmented classes, which keeps training on the
    hard ones. With one channel, the pixel term uses the two classes foreground (p) and
    background (1 - p).

    Args:
        w_dice: weight of the Dice term (>= 0). Default 0.8 (the paper's).
        w_ce: weight of the cross-entropy term (>= 0). Default 0.2 (the paper's).
        gamma_dice: exponent of the Dice term (>= 0). Default 0.3 (the paper's).
        gamma_ce: exponent of the cross-entropy term (>= 0). Default 0.3 (the paper's).
        label_weights: the paper's w_l, one per class of the pixel term (two for one channel:
            background, foreground), e.g. ((sum_k f_k) / f_l)^0.5 from label frequencies f.
            Default None (all 1).
        per_image, smooth (default 1.0, the paper's epsilon), smooth_nr, smooth_dr and the
            input convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        K. C. L. Wong, M. Moradi, H. Tang, T. Syeda-Mahmood, "3D segmentation with exponential
        logarithmic loss for highly unbalanced object sizes", MICCAI 2018, eq. (1)-(4).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # Dice 0.8; both pixels p_l = 0.8
        >>> round(float(ExpLogLoss(smooth=0.0)(y, p)), 4)  # (0.8 + 0.2) (-ln 0.8)^0.3
        0.6376
    """

    def __init__(
        self,
        w_dice: float = 0.8,
        w_ce: float = 0.2,
        gamma_dice: float = 0.3,
        gamma_ce: float = 0.3,
        label_weights=None,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "exp_log_loss",
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
        self.w_dice = check_nonnegative("w_dice", w_dice)
        self.w_ce = check_nonnegative("w_ce", w_ce)
        self.gamma_dice = check_nonnegative("gamma_dice", gamma_dice)
        self.gamma_ce = check_nonnegative("gamma_ce", gamma_ce)
        self.label_weights = (
            None
            if label_weights is None
            else [check_nonnegative(f"label_weights[{i}]", w) for i, w in enumerate(label_weights)]
        )

    def from_counts(self, tp, fp, fn):
        num = 2.0 * tp
        dice = (num + self.smooth_nr) / (num + fp + fn + self.smooth_dr)
        return safe_power(-ops.log(ops.maximum(dice, 1e-7)), self.gamma_dice)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight, drop=False)
        channels = y_pred.shape[-1]
        dice_labels, dice_probs = labels, probs
        if not self.include_background and channels > 1:
            dice_labels, dice_probs = labels[..., 1:], probs[..., 1:]
        tp, fp, fn = self.counts(dice_labels, dice_probs, weights)
        dice_term = self.reduce(self.from_counts(tp, fp, fn), dice_probs.shape[-1])
        if channels == 1:  # background and foreground as two classes
            log_p, log_not_p = log_probabilities(y_pred, self.from_logits, "sigmoid")
            log_p = ops.concatenate([log_not_p, log_p], axis=-1)
            labels = ops.concatenate([1.0 - labels, labels], axis=-1)
        else:
            log_p, _ = log_probabilities(
                y_pred,
                self.from_logits,
                self.activation if self.activation != "auto" else "softmax",
            )
        pixel = safe_power(-log_p, self.gamma_ce) * labels  # (batch, *spatial, K)
        if self.label_weights is not None:
            if len(self.label_weights) != pixel.shape[-1]:
                raise ValueError(
                    f"ExpLogLoss: {len(self.label_weights)} label weights for {pixel.shape[-1]} classes"
                )
            pixel = pixel * ops.convert_to_tensor(np.asarray(self.label_weights, "float32"))
        ce_term = masked_mean(ops.sum(pixel, axis=-1, keepdims=True), weights)
        if not self.per_image:
            ce_term = pooled_mean(ce_term)
        return self.w_dice * dice_term + self.w_ce * ce_term

    def get_config(self):
        return {
            **super().get_config(),
            "w_dice": self.w_dice,
            "w_ce": self.w_ce,
            "gamma_dice": self.gamma_dice,
            "gamma_ce": self.gamma_ce,
            "label_weights": self.label_weights,
        }

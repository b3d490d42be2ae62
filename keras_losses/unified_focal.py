"""The unified focal loss family of Yeung et al. (2022): symmetric and asymmetric focal and focal
Tversky losses, and their unified combination.

Channel 0 is the background and channels 1..C-1 are foreground classes; a one-channel
(sigmoid) output is read as the two classes background (1 - p) and foreground (p).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_losses._base import OverlapLoss, pooled_mean, register
from keras_losses._checks import check_bool, check_in_range, check_nonnegative
from keras_losses.crossentropy import masked_mean
from keras_losses.exp_log import safe_power


class _UnifiedFocalBase(OverlapLoss):
    """Shared pieces: the two-class view of one channel and the per-class delta."""

    def two_class(self, y_true, y_pred, sample_weight):
        """``(labels, probs, log_probs, weights)`` with a background channel first."""
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight, drop=False)
        z = ops.cast(y_pred, "float32")
        eps = keras.config.epsilon()
        if y_pred.shape[-1] == 1:
            labels = ops.concatenate([1.0 - labels, labels], axis=-1)
            probs = ops.concatenate([1.0 - probs, probs], axis=-1)
            if self.from_logits:
                log_p = ops.concatenate([-ops.softplus(z), -ops.softplus(-z)], axis=-1)
            else:
                log_p = ops.log(ops.clip(probs, eps, 1.0 - eps))
        elif self.from_logits and self.activation != "sigmoid":
            log_p = ops.log_softmax(z, axis=-1)
        else:
            log_p = ops.log(ops.clip(probs, eps, 1.0 - eps))
        return labels, probs, log_p, weights

    def class_deltas(self, channels: int) -> np.ndarray:
        """(1 - delta) for the background, delta for every foreground class."""
        d = np.full(channels, self.delta, "float32")
        d[0] = 1.0 - self.delta
        return d

    def keep(self, values):
        """Drop the background class's term (last axis) when ``include_background=False``."""
        return values if self.include_background else values[..., 1:]

    def focal_term(self, labels, probs, log_p, weights, modulate_foreground: bool, gamma: float):
        """sum_c delta_c m_c (-y_c log p_c) averaged over the (masked) pixels; m_c = (1 - p_c)^gamma
        for the background and, if ``modulate_foreground``, for every class."""
        channels = labels.shape[-1]
        ce = -labels * log_p
        factor = safe_power(1.0 - probs, gamma) if gamma else ops.ones_like(probs)
        if not modulate_foreground:
            factor = ops.concatenate([factor[..., :1], ops.ones_like(factor[..., 1:])], axis=-1)
        terms = ops.convert_to_tensor(self.class_deltas(channels)) * factor * ce
        values = masked_mean(ops.sum(self.keep(terms), axis=-1, keepdims=True), weights)
        return values if self.per_image else pooled_mean(values)

    def tversky_term(self, labels, probs, weights, enhance_background: bool, gamma: float):
        """mean_c of (1 - mTI_c)^(1 - gamma) (the background without the exponent when
        ``enhance_background`` is False); mTI_c = (TP + s) / (TP + delta FN + (1 - delta) FP + s)."""
        tp, fp, fn = self.counts(labels, probs, weights, per_class=True)
        mti = (tp + self.smooth_nr) / (
            tp + self.delta * fn + (1.0 - self.delta) * fp + self.smooth_dr
        )
        loss = safe_power(1.0 - mti, 1.0 - gamma)
        if not enhance_background:
            loss = ops.concatenate([1.0 - mti[..., :1], loss[..., 1:]], axis=-1)
        kept = self.keep(loss)
        return self.reduce(kept, kept.shape[-1])

    def get_config(self):
        return {**super().get_config(), "delta": self.delta, "gamma": self.gamma}


def _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs):
    OverlapLoss.__init__(
        self,
        per_image=per_image,
        smooth=smooth,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        name=name,
        **kwargs,
    )
    self.delta = check_in_range("delta", delta, 0.0, 1.0)
    self.gamma = check_nonnegative("gamma", gamma)


@register
class SymmetricFocalLoss(_UnifiedFocalBase):
    """Symmetric (modified) focal loss: every class's cross-entropy focal-modulated.

    Formula (per pixel; delta_0 = 1 - delta for the background, delta_c = delta otherwise):
        l = sum_c delta_c (1 - p_c)^gamma (-y_c log p_c),   L = mean over the (masked) pixels

    Args:
        delta: weight of the foreground classes (background 1 - delta), in [0, 1]. Default 0.7.
        gamma: focusing exponent (>= 0). Default 2.0.
        per_image and the input convention: as for :class:`DiceLoss` (``smooth`` is unused).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        M. Yeung, E. Sala, C.-B. Schoenlieb, L. Rundo, "Unified focal loss: generalising Dice
        and cross entropy-based losses to handle class imbalanced medical image segmentation",
        Computerized Medical Imaging and Graphics 95, 2022, eq. (13).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # each pixel: p_t = 0.8
        >>> loss = SymmetricFocalLoss(delta=0.5, gamma=2.0)
        >>> round(float(loss(y, p)), 6)  # mean of 0.5 * 0.2^2 * -log 0.8 over both pixels
        0.004463
    """

    def __init__(
        self,
        delta=0.7,
        gamma=2.0,
        per_image=False,
        smooth=1e-6,
        smooth_nr=None,
        smooth_dr=None,
        name="symmetric_focal_loss",
        **kwargs,
    ):
        _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, log_p, weights = self.two_class(y_true, y_pred, sample_weight)
        return self.focal_term(labels, probs, log_p, weights, True, self.gamma)


@register
class AsymmetricFocalLoss(_UnifiedFocalBase):
    """Asymmetric focal loss: only the background's cross-entropy is focal-modulated.

    Formula (per pixel):
        l = (1 - delta)(1 - p_0)^gamma (-y_0 log p_0) + delta sum_{c >= 1} (-y_c log p_c)

    Args:
        delta: weight of the foreground classes, in [0, 1]. Default 0.7.
        gamma: focusing exponent of the background term (>= 0). Default 2.0.
        per_image and the input convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Yeung et al., CMIG 95, 2022, eq. (14).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])
        >>> loss = AsymmetricFocalLoss(delta=0.5, gamma=2.0)
        >>> round(float(loss(y, p)), 6)  # (0.5 * -log 0.8 + 0.5 * 0.2^2 * -log 0.8) / 2
        0.058017
    """

    def __init__(
        self,
        delta=0.7,
        gamma=2.0,
        per_image=False,
        smooth=1e-6,
        smooth_nr=None,
        smooth_dr=None,
        name="asymmetric_focal_loss",
        **kwargs,
    ):
        _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, log_p, weights = self.two_class(y_true, y_pred, sample_weight)
        return self.focal_term(labels, probs, log_p, weights, False, self.gamma)


@register
class SymmetricFocalTverskyLoss(_UnifiedFocalBase):
    """Symmetric focal Tversky loss: (1 - mTI_c)^(1 - gamma) for every class, averaged.

    Formula (per class c, counts pooled over the batch or per image):
        mTI_c = (TP_c + s_nr) / (TP_c + delta FN_c + (1 - delta) FP_c + s_dr)
        L     = mean_c (1 - mTI_c)^(1 - gamma)

    Args:
        delta: weight of false negatives (false positives: 1 - delta), in [0, 1]. Default 0.7.
        gamma: focal parameter; the exponent is 1 - gamma. Default 0.75.
        per_image, smooth (default 1e-6, the authors' code), smooth_nr, smooth_dr and the input
            convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Yeung et al., CMIG 95, 2022, eq. (16).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # per class TP 0.8, FP 0.2, FN 0.2: mTI = 0.8
        >>> loss = SymmetricFocalTverskyLoss(gamma=0.5, smooth=0.0)
        >>> round(float(loss(y, p)), 4)  # 0.2 ** 0.5
        0.4472
    """

    def __init__(
        self,
        delta=0.7,
        gamma=0.75,
        per_image=False,
        smooth=1e-6,
        smooth_nr=None,
        smooth_dr=None,
        name="symmetric_focal_tversky_loss",
        **kwargs,
    ):
        _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, _, weights = self.two_class(y_true, y_pred, sample_weight)
        return self.tversky_term(labels, probs, weights, True, self.gamma)


@register
class AsymmetricFocalTverskyLoss(_UnifiedFocalBase):
    """Asymmetric focal Tversky loss: only the foreground classes are focal-enhanced.

    Formula:
        L = mean of (1 - mTI_0) and of (1 - mTI_c)^(1 - gamma) for c >= 1

    Args:
        delta, gamma (defaults 0.7, 0.75), per_image, smooth (default 1e-6), smooth_nr,
            smooth_dr and the input convention: as for :class:`SymmetricFocalTverskyLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Yeung et al., CMIG 95, 2022, eq. (17).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])  # mTI = 0.8 for both classes
        >>> loss = AsymmetricFocalTverskyLoss(gamma=0.5, smooth=0.0)
        >>> round(float(loss(y, p)), 4)  # (0.2 + 0.2 ** 0.5) / 2
        0.3236
    """

    def __init__(
        self,
        delta=0.7,
        gamma=0.75,
        per_image=False,
        smooth=1e-6,
        smooth_nr=None,
        smooth_dr=None,
        name="asymmetric_focal_tversky_loss",
        **kwargs,
    ):
        _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, _, weights = self.two_class(y_true, y_pred, sample_weight)
        return self.tversky_term(labels, probs, weights, False, self.gamma)


@register
class UnifiedFocalLoss(_UnifiedFocalBase):
    """Unified focal loss: lambda x focal loss + (1 - lambda) x focal Tversky loss.

    Formula (asymmetric, the paper's recommended form; symmetric with ``asymmetric=False``):
        L_aUF = lambda L_aF + (1 - lambda) L_aFT
        L_sUF = lambda L_sF + (1 - lambda) L_sFT

    with one delta and one gamma shared by both terms (:class:`AsymmetricFocalLoss`,
    :class:`AsymmetricFocalTverskyLoss` and their symmetric forms). The authors' Keras code
    puts lambda on the focal Tversky term instead; at the default lambda = 0.5 the two agree.

    Args:
        weight: lambda, in [0, 1]. Default 0.5.
        delta: in [0, 1]. Default 0.6.
        gamma: in [0, 1] (the focal term's exponent; the focal Tversky term's is 1 - gamma).
            Default 0.5.
        asymmetric: the asymmetric (True, default) or symmetric (False) form.
        per_image, smooth (default 1e-6), smooth_nr, smooth_dr and the input convention: as for
            :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Yeung et al., CMIG 95, 2022, eq. (18)-(19) (MONAI ``AsymmetricUnifiedFocalLoss``).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.8], [0.2]]]])
        >>> # focal: (0.6 (-log 0.8) + 0.4 (0.2^0.5)(-log 0.8)) / 2; mTI = 0.8 / (0.8 + 0.6 * 0.2
        >>> # + 0.4 * 0.2) = 0.8 for both classes: Tversky term (0.2 + 0.2^0.5) / 2
        >>> round(float(UnifiedFocalLoss(smooth=0.0)(y, p)), 4)
        0.2053
    """

    def __init__(
        self,
        weight=0.5,
        delta=0.6,
        gamma=0.5,
        asymmetric=True,
        per_image=False,
        smooth=1e-6,
        smooth_nr=None,
        smooth_dr=None,
        name="unified_focal_loss",
        **kwargs,
    ):
        _init(self, delta, gamma, per_image, smooth, smooth_nr, smooth_dr, name, kwargs)
        self.weight = check_in_range("weight", weight, 0.0, 1.0)
        self.gamma = check_in_range("gamma", gamma, 0.0, 1.0)
        self.asymmetric = check_bool("asymmetric", asymmetric)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, log_p, weights = self.two_class(y_true, y_pred, sample_weight)
        sym = not self.asymmetric
        focal = self.focal_term(labels, probs, log_p, weights, sym, self.gamma)
        tversky = self.tversky_term(labels, probs, weights, sym, self.gamma)
        return self.weight * focal + (1.0 - self.weight) * tversky

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "asymmetric": self.asymmetric}

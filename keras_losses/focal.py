"""Focal losses (Lin et al. 2017): binary (sigmoid) and categorical (softmax, per-class alpha)."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_losses._base import SegmentationLoss, drop_background, register
from keras_losses._checks import check_bool, check_in_range, check_nonnegative
from keras_losses.crossentropy import log_probabilities, masked_mean


def focal_factor(one_minus_pt, gamma: float):
    """(1 - p_t)^gamma, with a zero gradient (not NaN) at 1 - p_t = 0 when gamma < 1."""
    if gamma == 0:
        return ops.ones_like(one_minus_pt)
    x = ops.maximum(one_minus_pt, 0.0)
    if gamma >= 1:
        return ops.power(x, gamma)
    positive = x > 0
    return ops.where(positive, ops.power(ops.where(positive, x, 1.0), gamma), 0.0)


@register
class BinaryFocalLoss(SegmentationLoss):
    """Binary focal loss, averaged over the pixels (and channels) of each sample.

    Formula (per pixel and channel):
        BCE     = -(y log p + (1 - y) log(1 - p))
        p_t     = y p + (1 - y)(1 - p)
        alpha_t = y alpha + (1 - y)(1 - alpha)       (only if apply_class_balancing)
        FL      = alpha_t (1 - p_t)^gamma BCE
        L       = sum_i w_i FL_i / sum_i w_i         (w_i = 1 without a pixel mask)

    For binary labels BCE = -log(p_t), the form of Lin et al.; the BCE form also holds for
    soft labels. From probabilities, p inside the logarithms is clipped to [eps, 1 - eps] with
    eps = ``keras.config.epsilon()``, as ``keras.losses.BinaryFocalCrossentropy`` does; from
    logits the logarithms are exact (softplus), so FL at a logit of +-30 is the analytic value.

    Args:
        alpha: weight of the positive class when ``apply_class_balancing`` (in [0, 1], default
            0.25).
        gamma: focusing parameter (>= 0, default 2.0); gamma = 0 gives cross-entropy.
        apply_class_balancing: multiply by alpha_t (default False, as Keras).
        from_logits: ``y_pred`` holds logits (sigmoid). Default False.
        include_background, ignore_class: the input convention (defaults True, None).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar, "Focal loss for dense object
        detection", ICCV 2017, eq. (5).

    Example:
        >>> import numpy as np
        >>> y = np.array([[1.0]])  # shape: (1, 1): one pixel
        >>> p = np.array([[0.9]])
        >>> round(float(BinaryFocalLoss(gamma=2.0)(y, p)), 6)  # 0.1^2 * -log(0.9)
        0.001054
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        apply_class_balancing: bool = False,
        from_logits: bool = False,
        name: str = "binary_focal_loss",
        **kwargs,
    ):
        kwargs.setdefault("activation", "sigmoid")
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        self.alpha = check_in_range("alpha", alpha, 0.0, 1.0)
        self.gamma = check_nonnegative("gamma", gamma)
        self.apply_class_balancing = check_bool("apply_class_balancing", apply_class_balancing)

    def compute(self, y_true, y_pred, sample_weight):
        labels, _, weights = self.prepare(y_true, y_pred, sample_weight, probabilities=False)
        log_p, log_not_p = log_probabilities(y_pred, self.from_logits, "sigmoid")
        p = (
            ops.sigmoid(ops.cast(y_pred, "float32"))
            if self.from_logits
            else ops.cast(y_pred, "float32")
        )
        if not self.include_background and (y_pred.shape[-1] or 1) > 1:
            log_p, log_not_p, p = drop_background(log_p, log_not_p, p)
        bce = -(labels * log_p + (1.0 - labels) * log_not_p)
        p_t = labels * p + (1.0 - labels) * (1.0 - p)
        focal = focal_factor(1.0 - p_t, self.gamma) * bce
        if self.apply_class_balancing:
            focal = focal * (labels * self.alpha + (1.0 - labels) * (1.0 - self.alpha))
        return masked_mean(focal, weights)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "apply_class_balancing": self.apply_class_balancing,
        }


@register
class CategoricalFocalLoss(SegmentationLoss):
    """Categorical (softmax) focal loss with a per-class alpha, averaged over the pixels.

    Formula (per pixel i):
        FL_i = -sum_c alpha_c (1 - p_ic)^gamma y_ic log p_ic
        L    = sum_i w_i FL_i / sum_i w_i            (w_i = 1 without a pixel mask)

    ``alpha`` is one number for every class (``keras.losses.CategoricalFocalCrossentropy``) or
    one per class (MONAI's ``FocalLoss(alpha=..., use_softmax=True)`` per-class weights). From
    logits, log p is the log-softmax (stable); from probabilities, p is clipped to [eps, 1].
    Labels may be one-hot or an integer map (``ignore_class`` pixels count nowhere).

    Args:
        alpha: a number in [0, 1] or a list of C non-negative weights. Default 0.25 (Keras).
        gamma: focusing parameter (>= 0). Default 2.0.
        from_logits: ``y_pred`` holds logits (softmax). Default False.
        include_background, ignore_class: the input convention; ``include_background=False``
            gives the background class alpha 0 (defaults True, None).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        T.-Y. Lin et al., "Focal loss for dense object detection", ICCV 2017, eq. (5),
        with the softmax over C classes.

    Example:
        >>> import numpy as np
        >>> y = np.array([[1]])  # shape: (1, 1): one pixel of class 1
        >>> p = np.array([[[0.2, 0.8]]])  # shape: (1, 1, 2)
        >>> loss = CategoricalFocalLoss(alpha=[0.25, 0.75], gamma=2.0)
        >>> round(float(loss(y, p)), 6)  # 0.75 * 0.2^2 * -log(0.8)
        0.006694
    """

    def __init__(
        self,
        alpha=0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        name: str = "categorical_focal_loss",
        **kwargs,
    ):
        kwargs.setdefault("activation", "softmax")
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if isinstance(alpha, (list, tuple, np.ndarray)):
            self.alpha = [check_nonnegative(f"alpha[{i}]", a) for i, a in enumerate(alpha)]
        else:
            self.alpha = check_in_range("alpha", alpha, 0.0, 1.0)
        self.gamma = check_nonnegative("gamma", gamma)

    def compute(self, y_true, y_pred, sample_weight):
        labels, _, weights = self.prepare(
            y_true, y_pred, sample_weight, probabilities=False, drop=False
        )
        channels = y_pred.shape[-1]
        log_p, _ = log_probabilities(y_pred, self.from_logits, "softmax")
        p = ops.exp(log_p)
        alpha = np.broadcast_to(np.asarray(self.alpha, "float32"), (channels,)).copy()
        if isinstance(self.alpha, list) and len(self.alpha) != channels:
            raise ValueError(
                f"{type(self).__name__}: {len(self.alpha)} alpha values for {channels} classes"
            )
        if not self.include_background:
            alpha[0] = 0.0
        terms = -ops.convert_to_tensor(alpha) * focal_factor(1.0 - p, self.gamma) * labels * log_p
        return masked_mean(ops.sum(terms, axis=-1, keepdims=True), weights)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}

"""Binary focal loss (Lin et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import check_nonnegative, check_shapes, check_unit_interval, register


@register
class BinaryFocalLoss(keras.losses.Loss):
    """Binary focal loss on probabilities, averaged over the pixels of each sample.

    Formula:
        BCE     = -(y log p + (1 - y) log(1 - p))
        p_t     = y p + (1 - y)(1 - p)
        alpha_t = y alpha + (1 - y)(1 - alpha)       (only if apply_class_balancing)
        FL      = alpha_t (1 - p_t)^gamma BCE

    For binary labels BCE = -log(p_t), the form of Lin et al.; the BCE form also holds for
    soft labels. Probabilities inside the logarithms are clipped to [eps, 1 - eps] with
    eps = ``keras.config.epsilon()``, as ``keras.losses.BinaryFocalCrossentropy`` does.

    Args:
        alpha: weight of the positive class when ``apply_class_balancing`` (default 0.25).
        gamma: focusing parameter (>= 0, default 2.0); gamma = 0 gives cross-entropy.
        apply_class_balancing: multiply by alpha_t (default False, as Keras).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar, "Focal loss for dense object
        detection", ICCV 2017, eq. (5).
    """

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        apply_class_balancing=False,
        name="binary_focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.alpha = check_nonnegative("alpha", alpha)
        if self.alpha > 1:
            raise ValueError(f"`alpha` must be in [0, 1]; received {alpha}")
        self.gamma = check_nonnegative("gamma", gamma)
        self.apply_class_balancing = bool(apply_class_balancing)

    def call(self, y_true, y_pred):
        check_shapes(y_true, y_pred, type(self).__name__)
        check_unit_interval("y_true", y_true, type(self).__name__)
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        eps = keras.config.epsilon()
        clipped = ops.clip(y_pred, eps, 1.0 - eps)
        bce = -(y_true * ops.log(clipped) + (1.0 - y_true) * ops.log(1.0 - clipped))
        p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
        focal = ops.power(1.0 - p_t, self.gamma) * bce
        if self.apply_class_balancing:
            focal = focal * (y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha))
        if len(focal.shape) < 2:
            return focal
        # One value per sample: the mean over its pixels (and channels).
        return ops.mean(focal, axis=tuple(range(1, len(focal.shape))))

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "apply_class_balancing": self.apply_class_balancing,
        }

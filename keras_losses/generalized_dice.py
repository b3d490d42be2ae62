"""Generalized Dice loss of Sudre et al. (2017): class weights from the label volumes."""

from __future__ import annotations

from keras import ops

from keras_losses._base import OverlapLoss, register, scale_for_replicas
from keras_losses._checks import check_choice

WEIGHTINGS = ("square", "simple", "uniform")


@register
class GeneralizedDiceLoss(OverlapLoss):
    """Generalized Dice loss (GDL): one Dice over all classes, each weighted by its label volume.

    Not the generalized loss function (GLF) of Seo et al., which is :class:`GeneralizedLoss`.

    Formula (sums over the pixels of the batch, or of one image with ``per_image=True``):
        r_c = sum(y_c)                       (label volume of class c)
        w_c = 1 / r_c^2  ("square"),  1 / r_c  ("simple"),  1  ("uniform")
        L   = 1 - (2 sum_c w_c TP_c + s_nr) / (sum_c w_c (2 TP_c + FP_c + FN_c) + s_dr)

    A class absent from the labels (r_c = 0) would get an infinite weight: it gets the largest
    weight of the present classes instead (0 when no class is present), as MONAI does.
    The weights are computed from the labels only (no gradient). ``class_weights`` multiply
    w_c; ``class_reduction`` does not apply (the classes are always combined this way).

    Args:
        weighting: ``"square"`` (default, the paper's), ``"simple"`` or ``"uniform"``
            (MONAI's ``w_type``).
        per_image: pool over the batch (False, default) or one loss per image, averaged.
        smooth: shorthand for ``smooth_nr = smooth_dr``. Default 1e-5 (as MONAI): the
            weighted counts are of order 1 / r_c, so a smoothing of 1 would dominate them.
        smooth_nr, smooth_dr and the input convention: as for :class:`DiceLoss`.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        C. H. Sudre, W. Li, T. Vercauteren, S. Ourselin, M. J. Cardoso, "Generalised Dice
        overlap as a deep learning loss function for highly unbalanced segmentations",
        DLMIA 2017, eq. (2).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])  # shape: (1, 1, 2, 2), one pixel per class
        >>> p = np.array([[[[0.5, 0.5], [0.0, 1.0]]]])
        >>> round(float(GeneralizedDiceLoss(smooth=0.0)(y, p)), 4)  # 1 - 2 (0.5 + 1) / (1.5 + 2.5)
        0.25
    """

    def __init__(
        self,
        weighting: str = "square",
        per_image: bool = False,
        smooth: float = 1e-5,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "generalized_dice_loss",
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
        self.weighting = check_choice("weighting", weighting, WEIGHTINGS)

    def volume_weights(self, volume):
        """w_c from the label volumes r_c (last axis = classes), absent classes at the max."""
        if self.weighting == "uniform":
            return ops.ones_like(volume)
        present = volume > 0
        safe = ops.where(present, volume, 1.0)
        w = 1.0 / (safe * safe if self.weighting == "square" else safe)
        w = ops.where(present, w, 0.0)
        largest = ops.max(w, axis=-1, keepdims=True)
        return ops.stop_gradient(ops.where(present, w, largest))

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight)
        # (batch, C) or (C,): always per class, the weights combine them.
        tp, fp, fn = self.counts(labels, probs, weights, per_class=True)
        w = self.volume_weights(tp + fn)  # r_c = sum(y_c) = TP_c + FN_c
        cw = self.resolved_class_weights(probs.shape[-1])
        if cw is not None:
            w = w * ops.convert_to_tensor(cw, dtype="float32")
        num = 2.0 * ops.sum(w * tp, axis=-1)
        den = ops.sum(w * (2.0 * tp + fp + fn), axis=-1)
        value = 1.0 - (num + self.smooth_nr) / (den + self.smooth_dr)
        return value if self.per_image else scale_for_replicas(value)

    def get_config(self):
        return {**super().get_config(), "weighting": self.weighting}

"""Lovász-softmax and Lovász hinge (Berman et al. 2018): convex surrogates of the Jaccard loss.

The Lovász extension of the Jaccard loss of one class is the dot product of the pixel errors
sorted in decreasing order with the increments of the Jaccard loss along that order
(:func:`lovasz_gradient`); the errors are ``|y - p|`` (softmax) or the hinge ``max(0, 1 - s z)``
of the logits ``z`` with signs ``s = 2 y - 1`` (hinge).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_losses._base import SegmentationLoss, refuse_replicas, register
from keras_losses._checks import check_bool, check_choice

CLASS_CHOICES = ("present", "all")
LOGIT_CLIP = 1e-7  # probabilities are clipped to [eps, 1 - eps] before they become logits
_LAST = -1e30  # sort key of masked pixels: after every real error


def lovasz_gradient(labels_sorted, valid_sorted):
    """Increments of the Jaccard loss along the sorted pixels, shape ``(rows, n)``.

    Formula (g = number of ground-truth pixels, cumulative sums over the first i pixels):
        J_i = 1 - (g - cumsum(y)_i) / (g + cumsum(1 - y)_i),   grad_i = J_i - J_{i-1},  J_0 = 0

    Masked pixels (``valid = 0``) sort last and neither count nor change the cumulative sums of
    the valid ones before them.
    """
    y = labels_sorted * valid_sorted
    g = ops.sum(y, axis=-1, keepdims=True)
    intersection = g - ops.cumsum(y, axis=-1)
    union = g + ops.cumsum((1.0 - labels_sorted) * valid_sorted, axis=-1)
    jaccard = 1.0 - intersection / ops.maximum(union, 1e-12)
    previous = ops.concatenate([ops.zeros_like(jaccard[:, :1]), jaccard[:, :-1]], axis=-1)
    return jaccard - previous


def lovasz_from_errors(errors, labels, valid):
    """``sum_i sort(errors)_i * grad_i`` per row; every input ``(rows, n)``, output ``(rows,)``."""
    keyed = ops.where(valid > 0, errors, _LAST)
    order = ops.argsort(-keyed, axis=-1)  # decreasing errors
    e = ops.take_along_axis(errors, order, axis=-1)
    y = ops.take_along_axis(labels, order, axis=-1)
    v = ops.take_along_axis(valid, order, axis=-1)
    return ops.sum(e * v * ops.stop_gradient(lovasz_gradient(y, v)), axis=-1)


def _rows(x, per_image: bool):
    """``(batch, *spatial[, C])`` -> one row per image or one row for the batch."""
    n = int(np.prod(x.shape[1:]))
    return ops.reshape(x, (-1, n)) if per_image else ops.reshape(x, (1, -1))


@register
class LovaszSoftmaxLoss(SegmentationLoss):
    """Lovász-softmax loss: the Lovász extension of each class's Jaccard loss, averaged.

    Formula (per class c; pixels i of the batch or of one image, sorted by decreasing error):
        e_i = |y_ic - p_ic|,   L_c = sum_i e_(i) grad_i(J_c),   L = mean over classes of L_c

    with ``grad(J_c)`` the increments of the Jaccard loss along the sorted pixels
    (:func:`lovasz_gradient`). ``classes="present"`` averages over the classes present in the
    labels of the batch (or image) only, as Berman et al.'s default.

    Args:
        classes: "present" (default) or "all".
        per_image: one loss per image (True) or the whole batch's pixels at once (False,
            default, as Berman et al.'s ``per_image=False``). Under ``tf.distribute`` with
            several replicas only ``per_image=True`` runs (a clear error otherwise).
        from_logits, activation, include_background, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", True, None);
            a pixel mask leaves the masked pixels out (weights > 0 count as 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovász-softmax loss: a tractable
        surrogate for the optimization of the intersection-over-union measure in neural
        networks", CVPR 2018, eq. (8)-(12) and Algorithm 1.

    Example:
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> p = np.array([[[[0.6], [0.8]]]])  # errors 0.4 (foreground), 0.8 (background)
        >>> round(float(LovaszSoftmaxLoss()(y, p)), 4)  # 0.8 * (1/2 - 0) + 0.4 * (1 - 1/2)
        0.6
    """

    def __init__(
        self,
        classes: str = "present",
        per_image: bool = False,
        name: str = "lovasz_softmax_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.classes = check_choice("classes", classes, CLASS_CHOICES)
        self.per_image = check_bool("per_image", per_image)

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def compute(self, y_true, y_pred, sample_weight):
        if not self.per_image:
            refuse_replicas(
                self, "sorts the errors of the whole batch (per_image=False)", "use per_image=True"
            )
        y, p, w = self.prepare(y_true, y_pred, sample_weight)
        valid = ops.ones_like(p[..., 0]) if w is None else ops.cast(w[..., 0] > 0, "float32")
        v = _rows(valid, self.per_image)  # (rows, n)
        losses, present = [], []
        for c in range(p.shape[-1]):
            yc = _rows(y[..., c], self.per_image)
            pc = _rows(p[..., c], self.per_image)
            losses.append(lovasz_from_errors(ops.abs(yc - pc), yc, v))
            if self.classes == "present":
                present.append(ops.cast(ops.sum(yc * v, axis=-1) > 0, "float32"))
            else:
                present.append(ops.ones_like(losses[-1]))
        losses, present = ops.stack(losses, -1), ops.stack(present, -1)  # (rows, C)
        value = ops.sum(losses * present, -1) / ops.maximum(ops.sum(present, -1), 1.0)
        return value if self.per_image else value[0]

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "per_image": self.per_image}


@register
class LovaszHingeLoss(SegmentationLoss):
    """Lovász hinge loss of a binary segmentation (one channel of logits or probabilities).

    Formula (pixels i of the batch or of one image, sorted by decreasing error):
        s_i = 2 y_i - 1,   e_i = max(0, 1 - s_i z_i),   L = sum_i e_(i) grad_i(J)

    with z the logits and ``grad(J)`` the increments of the Jaccard loss of the foreground along
    the sorted pixels (:func:`lovasz_gradient`). With ``from_logits=False`` the probabilities
    are turned back into logits, ``z = log(p / (1 - p))`` (p clipped to [1e-7, 1 - 1e-7]).

    Args:
        per_image: one loss per image (True, default, as Berman et al.'s ``lovasz_hinge``) or
            the whole batch's pixels at once (False; not under ``tf.distribute`` with several
            replicas).
        from_logits: ``y_pred`` holds logits (the paper's setting). Default False.
        ignore_class: label value of void pixels. Default None. A pixel mask leaves the masked
            pixels out (weights > 0 count as 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        M. Berman, A. Rannen Triki, M. B. Blaschko, CVPR 2018, Sec. 3.1, eq. (7)-(9) (the
        hinge errors and the Lovász extension of the Jaccard loss).

    Example:
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> z = np.array([[[[0.5], [-2.0]]]])  # hinge errors 0.5 and 0
        >>> round(float(LovaszHingeLoss(from_logits=True)(y, z)), 4)  # 0.5 * 1 + 0 * 0
        0.5
    """

    def __init__(self, per_image: bool = True, name: str = "lovasz_hinge_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = check_bool("per_image", per_image)

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def compute(self, y_true, y_pred, sample_weight):
        if y_pred.shape[-1] != 1:
            raise ValueError(
                f"LovaszHingeLoss is binary: `y_pred` must have one channel; received shape "
                f"{tuple(y_pred.shape)} (use LovaszSoftmaxLoss for several classes)"
            )
        if not self.per_image:
            refuse_replicas(
                self, "sorts the errors of the whole batch (per_image=False)", "use per_image=True"
            )
        y, p, w = self.prepare(y_true, y_pred, sample_weight)
        if self.from_logits:
            z = ops.cast(y_pred, "float32")
        else:
            pc = ops.clip(p, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
            z = ops.log(pc) - ops.log(1.0 - pc)
        valid = ops.ones_like(p[..., 0]) if w is None else ops.cast(w[..., 0] > 0, "float32")
        yr, zr, v = (_rows(t, self.per_image) for t in (y[..., 0], z[..., 0], valid))
        errors = ops.relu(1.0 - (2.0 * yr - 1.0) * zr)
        value = lovasz_from_errors(errors, yr, v)
        return value if self.per_image else value[0]

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}

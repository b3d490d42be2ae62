"""TopK cross-entropy (Wu et al. 2016): the mean cross-entropy of the k % hardest pixels."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_losses._base import SegmentationLoss, refuse_replicas, register
from keras_losses._checks import check_bool, check_in_range

EPSILON = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log, as in Keras


def pixel_cross_entropy(labels, probs):
    """Cross-entropy of every pixel, shape ``(batch, *spatial)``.

    One channel: binary CE ``-(y log p + (1 - y) log(1 - p))``; C channels: ``-sum_c y_c log p_c``.
    """
    p = ops.clip(probs, EPSILON, 1.0 - EPSILON)
    if probs.shape[-1] == 1:
        y = labels[..., 0]
        return -(y * ops.log(p[..., 0]) + (1.0 - y) * ops.log(1.0 - p[..., 0]))
    return -ops.sum(labels * ops.log(p), axis=-1)


def mean_of_top_fraction(values, valid, fraction: float):
    """Mean of the largest ``ceil(fraction * n_valid)`` entries of each row of ``values``.

    ``values`` and ``valid`` (0/1) have shape ``(rows, n)``; invalid entries never count. Works
    with a number of kept entries known only at run time (a mask on sorted positions).
    """
    # invalid entries sort last: every valid value is >= 0 (a cross-entropy)
    keyed = ops.where(valid > 0, values, -1.0)
    ordered = -ops.sort(-keyed, axis=-1)  # descending, (rows, n)
    n_valid = ops.sum(valid, axis=-1, keepdims=True)  # (rows, 1)
    k = ops.maximum(ops.ceil(fraction * n_valid), 1.0)
    position = ops.cumsum(ops.ones_like(ordered), axis=-1) - 1.0  # 0, 1, 2, ... per row
    keep = ops.cast(position < ops.minimum(k, n_valid), "float32")
    total = ops.sum(ops.where(keep > 0, ordered, 0.0), axis=-1)
    return total / ops.maximum(ops.sum(keep, axis=-1), 1.0)


@register
class TopKCrossEntropyLoss(SegmentationLoss):
    """Cross-entropy averaged over the k % of pixels with the largest cross-entropy.

    Formula:
        CE_i = -sum_c y_ic log p_ic        (binary CE for one channel)
        L    = (1 / K) sum_{i in top K} CE_i,   K = ceil(k / 100 * N)

    over the N valid pixels of the batch (``per_image=False``) or of each image. Pixels with
    ``ignore_class`` or a pixel-mask weight of 0 are not among the N; other pixel weights
    multiply CE_i before the ranking.

    Args:
        k: percentage of the hardest pixels kept, in (0, 100]. Default 10 (the TopK10 of Ma et
            al. 2021 and nnU-Net; k = 100 is plain cross-entropy).
        per_image: rank the pixels of each image (True) or of the whole batch (False, default,
            as nnU-Net's TopK loss). Under ``tf.distribute`` with several replicas only
            ``per_image=True`` runs (no replica holds the whole batch to rank; a clear error
            otherwise).
        from_logits, activation, include_background, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", True, None);
            ``include_background=False`` leaves channel 0 out of the sum over classes.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Z. Wu, C. Shen, A. van den Hengel, "Bridging category-level and instance-level semantic
        image segmentation", arXiv:1605.06885, 2016, Sec. 3.2 (online bootstrapping of hard
        pixels); J. Ma et al., "Loss odyssey in medical image segmentation", Medical Image
        Analysis 71, 102035, 2021, Table 1 (TopK loss, k = 10 %).

    Example:
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[0.5], [0.5]], [[0.1], [0.1]]]])  # CE: ln 2, ln 2, -ln 0.9 (x2)
        >>> round(float(TopKCrossEntropyLoss(k=50)(y, p)), 4)  # mean of the 2 largest
        0.6931
    """

    def __init__(
        self, k: float = 10.0, per_image: bool = False, name: str = "topk_ce_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.k = check_in_range("k", k, 1e-6, 100.0)
        self.per_image = check_bool("per_image", per_image)

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def compute(self, y_true, y_pred, sample_weight):
        if not self.per_image:
            refuse_replicas(
                self, "ranks the pixels of the whole batch (per_image=False)", "use per_image=True"
            )
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight)
        ce = pixel_cross_entropy(labels, probs)  # (batch, *spatial)
        valid = ops.ones_like(ce) if weights is None else ops.cast(weights[..., 0] > 0, "float32")
        if weights is not None:
            ce = ce * weights[..., 0]
        shape = (-1, int(np.prod(ce.shape[1:]))) if self.per_image else (1, -1)
        ce, valid = ops.reshape(ce, shape), ops.reshape(valid, shape)
        value = mean_of_top_fraction(ce, valid, self.k / 100.0)
        return value if self.per_image else value[0]

    def get_config(self):
        return {**super().get_config(), "k": self.k, "per_image": self.per_image}


@register
class DiceTopKLoss(SegmentationLoss):
    """The sum of the soft Dice loss and the TopK cross-entropy (Ma et al.'s DiceTopK).

    Formula:
        L = L_Dice + L_TopK(k)

    Args:
        k: percentage of the hardest pixels in the TopK term. Default 10 (Ma et al. 2021).
        smooth: smoothing constant of the Dice term. Default 1.0 (the library's Dice).
        include_background: the Dice term leaves channel 0 out if False (default True, the
            library's Dice); the TopK term always uses every class.
        from_logits, activation, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", None).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        J. Ma et al., "Loss odyssey in medical image segmentation", Medical Image Analysis 71,
        102035, 2021, Table 1 (compound losses: Dice + TopK, equal weights).

    Example:
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[0.5], [0.5]], [[0.1], [0.1]]]])
        >>> loss = DiceTopKLoss(k=50, smooth=0.0)
        >>> round(float(loss(y, p)), 4)  # (1 - 1 / 2.2) + ln 2
        1.2386
    """

    def __init__(
        self,
        k: float = 10.0,
        smooth: float = 1.0,
        name: str = "dice_topk_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        from keras_losses.dice import DiceLoss

        self.k = check_in_range("k", k, 1e-6, 100.0)
        self.smooth = float(smooth)
        common = {
            "from_logits": self.from_logits,
            "activation": self.activation,
            "ignore_class": self.ignore_class,
        }
        self.dice = DiceLoss(
            smooth=self.smooth, include_background=self.include_background, **common
        )
        self.topk = TopKCrossEntropyLoss(k=self.k, **common)

    @property
    def keeps_batch_axis(self) -> bool:
        return False

    def compute(self, y_true, y_pred, sample_weight):
        refuse_replicas(
            self,
            "ranks the pixels of the whole batch",
            "combine DiceLoss and TopKCrossEntropyLoss(per_image=True) with CombinedLoss",
        )
        return self.dice.compute(y_true, y_pred, sample_weight) + self.topk.compute(
            y_true, y_pred, sample_weight
        )

    def get_config(self):
        return {**super().get_config(), "k": self.k, "smooth": self.smooth}

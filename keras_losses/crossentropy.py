"""Cross-entropy on segmentation maps: binary (with pos_weight) and categorical (class weights).

Both are numerically stable from logits, honour pixel masks and an ignore label, and follow the
input convention of :class:`keras_losses._base.SegmentationLoss`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_losses._base import SegmentationLoss, drop_background, register, sum_over_replicas
from keras_losses._checks import check_class_weights, check_positive


def masked_mean(values, weights):
    """One value per image whose batch mean is sum(w l) / sum(w) over the whole batch.

    ``values`` (batch, *spatial, K) and ``weights`` broadcastable to it (or None: the plain
    mean per image). With weights, image i returns sum_i(w l) / (sum(w) / batch), so the
    base class's mean over images is the weighted mean over every pixel of the batch (0 when
    every weight is 0). Under ``tf.distribute`` sum(w) and the batch size are those of the
    global batch, so the replicas together give the one-device value.
    """
    axes = tuple(range(1, len(values.shape)))
    if weights is None:
        return ops.mean(values, axis=axes)
    w = ops.broadcast_to(ops.cast(weights, "float32"), ops.shape(values))
    per_image = ops.sum(w * values, axis=axes)
    batch = sum_over_replicas(ops.cast(ops.shape(values)[0], "float32"))
    total = sum_over_replicas(ops.sum(w)) / ops.maximum(batch, 1.0)
    return ops.where(total > 0, per_image / ops.where(total > 0, total, 1.0), 0.0)


def log_probabilities(y_pred, from_logits: bool, activation: str):
    """``(log p, log(1 - p))`` in float32, stable from logits (softplus / log-softmax).

    From probabilities, p is clipped to [eps, 1 - eps] (eps = ``keras.config.epsilon()``), as
    Keras's cross-entropies do. The second term is None after a softmax (not needed).
    """
    z = ops.cast(y_pred, "float32")
    channels = z.shape[-1]
    softmax = activation == "softmax" or (activation == "auto" and channels != 1)
    if from_logits:
        if softmax:
            return ops.log_softmax(z, axis=-1), None
        return -ops.softplus(-z), -ops.softplus(z)
    eps = keras.config.epsilon()
    p = ops.clip(z, eps, 1.0 - eps)
    return ops.log(p), ops.log(1.0 - p)


@register
class BinaryCrossentropyLoss(SegmentationLoss):
    """Binary cross-entropy of every pixel and channel (sigmoid outputs), with ``pos_weight``.

    Formula (per pixel i and channel c; w_i the pixel weight, 1 without a mask):
        l_ic = -(pos_weight_c y_ic log p_ic + (1 - y_ic) log(1 - p_ic))
        L    = sum_ic w_i l_ic / sum_ic w_i

    From logits z, log p = -softplus(-z) and log(1 - p) = -softplus(z): exact at any |z|
    (BCE at z = -30, y = 1 is 30). From probabilities, p is clipped to [1e-7, 1 - 1e-7].

    Args:
        pos_weight: weight of the positive term, one number or one per channel (> 0).
            Default 1.0 (PyTorch's ``BCEWithLogitsLoss(pos_weight=...)``).
        from_logits: ``y_pred`` holds logits. Default False.
        include_background, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults True, None).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        The binary cross-entropy; ``pos_weight`` as in ``torch.nn.BCEWithLogitsLoss``.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
        >>> z = np.array([[[[-30.0], [30.0]]]])  # both confidently wrong
        >>> round(float(BinaryCrossentropyLoss(from_logits=True)(y, z)), 4)
        30.0
    """

    def __init__(
        self,
        pos_weight=1.0,
        from_logits: bool = False,
        name: str = "binary_crossentropy_loss",
        **kwargs,
    ):
        kwargs.setdefault("activation", "sigmoid")
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if self.activation != "sigmoid":
            raise ValueError(
                f"{type(self).__name__} applies the sigmoid to logits; received "
                f"activation={self.activation!r} (use CategoricalCrossentropyLoss for a softmax)"
            )
        if isinstance(pos_weight, (list, tuple, np.ndarray)):
            self.pos_weight = [
                check_positive(f"pos_weight[{i}]", w) for i, w in enumerate(pos_weight)
            ]
        else:
            self.pos_weight = check_positive("pos_weight", pos_weight)

    def compute(self, y_true, y_pred, sample_weight):
        labels, _, weights = self.prepare(y_true, y_pred, sample_weight, probabilities=False)
        log_p, log_not_p = log_probabilities(y_pred, self.from_logits, "sigmoid")
        if not self.include_background and (y_pred.shape[-1] or 1) > 1:
            log_p, log_not_p = drop_background(log_p, log_not_p)
        pos = ops.convert_to_tensor(np.asarray(self.pos_weight, "float32"))
        values = -(pos * labels * log_p + (1.0 - labels) * log_not_p)
        return masked_mean(values, weights)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}


@register
class CategoricalCrossentropyLoss(SegmentationLoss):
    """Categorical cross-entropy of every pixel (softmax outputs), with class weights.

    Formula (per pixel i; w_i the pixel weight, cw_c the class weights, 1 if not given):
        l_i = -sum_c y_ic log p_ic,        v_i = sum_c cw_c y_ic      (cw of the pixel's class)
        L   = sum_i w_i v_i l_i / sum_i w_i v_i

    The weighted mean is normalised by the sum of the weights of the pixels seen (PyTorch's
    ``CrossEntropyLoss(weight=...)`` and MONAI's convention), so the loss stays on the scale of
    an unweighted cross-entropy; a class weight of 0 removes that class's pixels. Labels may
    be one-hot or an integer map; ``ignore_class`` pixels count nowhere.
    ``include_background=False`` gives the background class the weight 0.

    Args:
        class_weights: C weights (>= 0, not all 0), or None (default).
        from_logits: ``y_pred`` holds logits (log-softmax, stable). Default False.
        ignore_class, include_background: the input convention (defaults None, True).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        The categorical cross-entropy; class weighting as in ``torch.nn.CrossEntropyLoss``.

    Example:
        >>> import numpy as np
        >>> y = np.array([[0, 1]])  # shape: (1, 2), an integer label map of two pixels
        >>> p = np.array([[[0.5, 0.5], [0.2, 0.8]]])  # shape: (1, 2, 2)
        >>> loss = CategoricalCrossentropyLoss(class_weights=[1.0, 3.0])
        >>> round(float(loss(y, p)), 4)  # (1 * -log 0.5 + 3 * -log 0.8) / (1 + 3)
        0.3406
    """

    def __init__(
        self,
        class_weights=None,
        from_logits: bool = False,
        name: str = "categorical_crossentropy_loss",
        **kwargs,
    ):
        kwargs.setdefault("activation", "softmax")
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if self.activation != "softmax":
            raise ValueError(
                f"{type(self).__name__} applies the softmax to logits; received "
                f"activation={self.activation!r} (use BinaryCrossentropyLoss for sigmoids)"
            )
        self.class_weights = check_class_weights("class_weights", class_weights)

    def pixel_class_weights(self, labels, channels):
        """v_i = sum_c cw_c y_ic (batch, *spatial, 1), or None without class weights."""
        cw = None if self.class_weights is None else np.asarray(self.class_weights, "float32")
        if not self.include_background:
            cw = np.ones(channels, "float32") if cw is None else cw.copy()
            cw[0] = 0.0
        if cw is None:
            return None
        if len(cw) != channels:
            raise ValueError(
                f"{type(self).__name__}: {len(cw)} class weights for {channels} classes"
            )
        return ops.sum(labels * ops.convert_to_tensor(cw), axis=-1, keepdims=True)

    def compute(self, y_true, y_pred, sample_weight):
        labels, _, weights = self.prepare(
            y_true, y_pred, sample_weight, probabilities=False, drop=False
        )
        log_p, _ = log_probabilities(y_pred, self.from_logits, "softmax")
        values = -ops.sum(labels * log_p, axis=-1, keepdims=True)  # (batch, *spatial, 1)
        class_w = self.pixel_class_weights(labels, y_pred.shape[-1])
        if class_w is not None:
            weights = class_w if weights is None else weights * class_w
        return masked_mean(values, weights)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}

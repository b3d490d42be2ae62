"""Shared pieces of every loss: serialization name, argument checks, the input convention and
the soft counts.

The input convention of every segmentation loss lives here and only here:

* ``y_pred`` has shape ``(batch, *spatial, C)`` (2D or 3D): probabilities by default, logits
  with ``from_logits=True`` (sigmoid for C = 1 or multi-label, softmax for multi-class).
* ``y_true`` is either dense (one-hot, binary or soft labels of ``y_pred``'s shape) or a sparse
  integer label map ``(batch, *spatial)`` / ``(batch, *spatial, 1)`` when C > 1; one label value
  (``ignore_class``) may mark void pixels.
* A pixel mask (Keras ``sample_weight`` with the label's spatial shape, or ``mask=``) weights
  every pixel's contribution to the counts: the loss of the masked pixels only.

The soft TP/FP/FN arithmetic lives in :func:`soft_counts`; Dice, Tversky, Effectiveness, the
GLF and the other overlap losses are built on it through :class:`OverlapLoss`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_losses._checks import (
    _ACTIVE_CHECKS,
    check_bool,
    check_choice,
    check_class_weights,
    check_ignore_class,
    check_probabilities,
    check_shapes,
    check_smoothing,
    check_unit_interval,
    graph_check,
    is_concrete,
)

PACKAGE = "keras_losses"
"""The one package name every class of this library is registered under."""

register = keras.saving.register_keras_serializable(package=PACKAGE)

ACTIVATIONS = ("auto", "sigmoid", "softmax")
CLASS_REDUCTIONS = ("mean", "pooled")


# ---------------------------------------------------------------------- input convention
def to_probabilities(y_pred, from_logits: bool, activation: str = "auto"):
    """``y_pred`` as float32 probabilities: unchanged, or sigmoid/softmax of logits.

    ``activation="auto"`` picks the sigmoid for one channel and the softmax over the last axis
    for several; ``"sigmoid"`` treats every channel as its own binary problem (multi-label).
    """
    y_pred = ops.cast(y_pred, "float32")
    if not from_logits:
        return y_pred
    channels = y_pred.shape[-1]
    if activation == "sigmoid" or (activation == "auto" and channels == 1):
        return ops.sigmoid(y_pred)
    return ops.softmax(y_pred, axis=-1)


def is_sparse(y_true, y_pred) -> bool:
    """True when ``y_true`` is an integer label map for the C > 1 channels of ``y_pred``."""
    rt, rp = len(y_true.shape), len(y_pred.shape)
    channels = y_pred.shape[-1]
    if rt == rp - 1:
        return True
    return rt == rp and channels != 1 and y_true.shape[-1] == 1


def standardize_labels(y_true, y_pred, ignore_class: int | None, loss_name: str):
    """Dense float32 labels of ``y_pred``'s shape, and a (batch, *spatial, 1) validity mask.

    Returns ``(labels, valid)``; ``valid`` is None when no pixel can be void. Sparse label
    maps become one-hot vectors (``ignore_class`` pixels become all-zero rows with valid = 0);
    one channel of binary labels with ``ignore_class`` (e.g. 255 for void) gets the same mask.
    """
    channels = y_pred.shape[-1]
    if is_sparse(y_true, y_pred):
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        if channels is None:
            raise ValueError(f"{loss_name}: the class axis of `y_pred` must have a static size")
        if channels == 1:  # a binary mask without its channel axis
            labels = ops.expand_dims(ops.cast(y_true, "float32"), -1)
            return _ignore_binary(labels, ignore_class)
        labels = ops.cast(y_true, "int32")
        valid = None
        if ignore_class is not None:
            keep = ops.not_equal(labels, ignore_class)
            labels = ops.where(keep, labels, 0)
            valid = ops.expand_dims(ops.cast(keep, "float32"), -1)
        onehot = ops.one_hot(labels, channels, dtype="float32")
        if valid is not None:
            onehot = onehot * valid
        return onehot, valid
    check_shapes(y_true, y_pred, loss_name)
    labels = ops.cast(y_true, "float32")
    if ignore_class is not None:
        if channels != 1:
            raise ValueError(
                f"{loss_name}: `ignore_class` marks void pixels of an integer label map or of a "
                f"one-channel mask; `y_true` is one-hot with {channels} channels: pass a pixel "
                "mask (`sample_weight`) instead"
            )
        return _ignore_binary(labels, ignore_class)
    return labels, None


def _ignore_binary(labels, ignore_class):
    if ignore_class is None:
        return labels, None
    keep = ops.cast(ops.not_equal(labels, float(ignore_class)), "float32")
    return labels * keep, keep


def pixel_weights(sample_weight, y_pred, loss_name: str):
    """A pixel-weight tensor of shape (batch, *spatial, 1), or None.

    Accepts weights of shape (batch,) (one per image), (batch, *spatial) or
    (batch, *spatial, 1). Anything else is refused with both shapes in the message.
    """
    if sample_weight is None:
        return None
    w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    rank, spatial = len(w.shape), len(y_pred.shape) - 2
    if rank == 0:
        w = ops.reshape(w, (1,) * (spatial + 2))
    elif rank == 1 or (rank == 2 and w.shape[-1] == 1 and spatial > 1):
        w = ops.reshape(w, (-1,) + (1,) * (spatial + 1))
    elif rank == spatial + 1:
        w = ops.expand_dims(w, -1)
    elif not (rank == spatial + 2 and w.shape[-1] == 1):
        raise ValueError(
            f"{loss_name}: a pixel mask (`sample_weight`) must have the labels' spatial shape "
            f"(batch, *spatial) or (batch, *spatial, 1), or one weight per image; received "
            f"shape {tuple(w.shape)} for y_pred.shape={tuple(y_pred.shape)}"
        )
    return w


def merge_weights(*weights):
    out = None
    for w in weights:
        if w is not None:
            out = w if out is None else out * w
    return out


def drop_background(*tensors):
    """Remove channel 0 (the background class) from each tensor's last axis."""
    return tuple(t[..., 1:] for t in tensors)


# ---------------------------------------------------------------------- soft counts
def count_axes(rank: int, per_image: bool, per_class: bool) -> tuple[int, ...]:
    """The axes summed over: spatial, plus batch unless ``per_image``, plus class unless
    ``per_class``."""
    axes = list(range(1, rank - 1))
    if not per_image:
        axes.insert(0, 0)
    if not per_class:
        axes.append(rank - 1)
    return tuple(axes)


def class_sums(x, per_image: bool):
    """Sums of ``x`` (batch, *spatial, C) over the pixels, kept per class: (batch, C) or (C,).

    For C > 1 the sum is a product with a vector of ones (one matrix-vector product per
    image), which runs about 1.5x faster on the CPU than a reduction over the leading axes
    (benchmarks/bench_losses.py) and gives the same sums up to rounding.
    """
    channels = x.shape[-1]
    if channels == 1 or channels is None:
        axes = count_axes(len(x.shape), per_image, True)
        return ops.sum(x, axis=axes)
    if per_image:
        rows = ops.reshape(x, (ops.shape(x)[0], -1, channels))  # (batch, pixels, C)
        ones = ops.expand_dims(ops.ones_like(rows[:, :, 0]), 1)  # (batch, 1, pixels)
        return ops.matmul(ones, rows)[:, 0, :]
    rows = ops.reshape(x, (-1, channels))  # (pixels, C)
    ones = ops.expand_dims(ops.ones_like(rows[:, 0]), 0)  # (1, pixels)
    return ops.matmul(ones, rows)[0]


def soft_counts(y_true, y_pred, per_image: bool, per_class: bool = False, weights=None):
    """Soft true positives, false positives and false negatives of a segmentation.

    Formula (sums over the pixels i of the reduced axes; w_i = 1 without weights):
        TP = sum_i w_i p_i y_i,  FP = sum_i w_i p_i (1 - y_i),  FN = sum_i w_i (1 - p_i) y_i

    FP and FN are computed as sum(w p) - TP and sum(w y) - TP (one product per pixel, as a
    Dice needs), clipped at 0 against rounding.

    Args:
        y_true: labels in [0, 1], shape ``(batch, *spatial, C)``.
        y_pred: probabilities in [0, 1], same shape.
        per_image: if True keep the batch axis; if False pool over the whole batch.
        per_class: if True keep the class (last) axis; if False pool over the channels too.
        weights: optional pixel weights broadcastable to ``y_pred`` (e.g. (batch, *spatial, 1)).

    Returns:
        ``(tp, fp, fn)`` as float32 tensors of shape ``(batch, C)``, ``(batch,)``, ``(C,)`` or
        ``()``. Sums are accumulated in float32 even for float16/bfloat16 inputs (a 512x512
        float16 sum overflows at 65504).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]], "float32")  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[0.8], [0.4]], [[0.0], [0.0]]]], "float32")
        >>> [round(float(v), 4) for v in soft_counts(y, p, per_image=False)]  # TP, FP, FN
        [0.8, 0.4, 0.2]
    """
    y = ops.cast(y_true, "float32")
    p = ops.cast(y_pred, "float32")
    if weights is not None:
        w = ops.cast(weights, "float32")
        p = p * w  # (batch, *spatial, C)
        wy = y * w
    else:
        wy = y
    if per_class:
        tp, sum_p, sum_y = (
            class_sums(p * y, per_image),
            class_sums(p, per_image),
            class_sums(wy, per_image),
        )
    else:
        axis = count_axes(len(p.shape), per_image, False)
        tp, sum_p, sum_y = ops.sum(p * y, axis=axis), ops.sum(p, axis=axis), ops.sum(wy, axis=axis)
    fp = ops.maximum(sum_p - tp, 0.0)
    fn = ops.maximum(sum_y - tp, 0.0)
    return tp, fp, fn


def mean_over_classes(values, class_weights=None):
    """Mean of per-class values over the last axis, weighted by ``class_weights`` if given.

    Formula: sum_c w_c v_c / sum_c w_c (w_c = 1 without weights).
    """
    if class_weights is None:
        return ops.mean(values, axis=-1)
    w = ops.convert_to_tensor(np.asarray(class_weights, "float32"))
    return ops.sum(values * w, axis=-1) / float(np.sum(class_weights))


# ---------------------------------------------------------------------- distribution
def _replica_context():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def sum_over_replicas(x):
    """Sum ``x`` over the replicas of a ``tf.distribute`` strategy (identity on one device and
    on the other backends); differentiable, so globally pooled counts train as on one device."""
    context = _replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def scale_for_replicas(value):
    """Divide a scalar (batch-pooled) loss by the R replicas in sync: Keras divides per-sample
    losses by R but not a scalar (``keras.src.losses.loss.reduce_values``), and the replicas'
    gradients are summed, so a loss pooled over the global batch carries the 1/R itself."""
    context = _replica_context()
    return value if context is None else value / context.num_replicas_in_sync


def pooled_mean(values):
    """The mean of ``values`` over the global batch (sums and counts all-reduced), carrying the
    1/R of :func:`scale_for_replicas` like every pooled term; on one device ``ops.mean``."""
    if _replica_context() is None:
        return ops.mean(values)
    total = sum_over_replicas(ops.sum(values))
    count = sum_over_replicas(ops.cast(ops.size(values), "float32"))
    return scale_for_replicas(total / count)


def refuse_replicas(loss, why: str, fix: str):
    """A clear error, when the step is traced, for a loss that ranks the whole batch's pixels."""
    context = _replica_context()
    if context is not None:
        raise ValueError(
            f"{type(loss).__name__} {why}, which none of the {context.num_replicas_in_sync} "
            f"replicas sees whole under tf.distribute: {fix}"
        )


# ---------------------------------------------------------------------- the base class
class SegmentationLoss(keras.losses.Loss):
    """Base of every segmentation loss: the input convention, masks and the reduction.

    A subclass implements :meth:`compute` on prepared tensors; this class turns
    ``(y_true, y_pred, sample_weight)`` into them and reduces the result:

    * ``y_pred`` (batch, *spatial, C): probabilities, or logits with ``from_logits=True``;
    * ``y_true`` dense of the same shape, or an integer label map for C > 1;
    * ``sample_weight`` / ``mask`` with the labels' spatial shape: pixel weights inside the
      loss (never a rescaling of the unmasked value); one weight per image: Keras's
      weighted mean of per-image values (pooled losses fold it into the pixel weights).

    Subclasses that cannot honour pixel weights set ``supports_mask = False`` and get a
    clear error instead.
    """

    supports_mask = True
    # Pooled counts are all-reduced over replicas (training.fit checks this flag).
    global_batch = True

    def __init__(
        self,
        from_logits: bool = False,
        activation: str = "auto",
        include_background: bool = True,
        ignore_class: int | None = None,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype=None,
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, **kwargs)
        self.from_logits = check_bool("from_logits", from_logits)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.include_background = check_bool("include_background", include_background)
        self.ignore_class = check_ignore_class(ignore_class)

    # -------------------------------------------------------------- preparing the inputs
    def prepare(
        self, y_true, y_pred, sample_weight=None, probabilities: bool = True, drop: bool = True
    ):
        """``(labels, probabilities, weights)`` in float32, background dropped if asked.

        ``weights`` has shape (batch, *spatial, 1) (or broadcasts to it) or is None.
        ``probabilities=False`` returns None in their place (for losses that work on logits);
        ``drop=False`` keeps the background channel whatever ``include_background`` says.
        """
        name = type(self).__name__
        if len(y_pred.shape) < 2:
            raise ValueError(
                f"{name}: `y_pred` must have shape (batch, *spatial, classes); received "
                f"shape {tuple(y_pred.shape)}"
            )
        self.check_values(y_true, y_pred)
        labels, valid = standardize_labels(y_true, y_pred, self.ignore_class, name)
        probs = (
            to_probabilities(y_pred, self.from_logits, self.activation) if probabilities else None
        )
        weights = merge_weights(valid, pixel_weights(sample_weight, y_pred, name))
        if drop and not self.include_background and (y_pred.shape[-1] or 1) > 1:
            labels = labels[..., 1:]
            probs = None if probs is None else probs[..., 1:]
        return labels, probs, weights

    def check_values(self, y_true, y_pred) -> None:
        """Refuse labels and (when not from logits) predictions outside their range.

        Eager calls check every value with numpy; compiled steps check the first image of the
        batch with :func:`graph_check` (a min and a max per tensor; benchmarks/bench_losses.py
        measures the cost).
        """
        name = type(self).__name__
        sparse = is_sparse(y_true, y_pred) and y_pred.shape[-1] != 1
        channels = y_pred.shape[-1]
        if is_concrete(y_true) and is_concrete(y_pred):
            if sparse:
                self._check_label_map(y_true, channels)
            elif self.ignore_class is None:
                check_unit_interval("y_true", y_true, name)
            if not self.from_logits:
                check_probabilities(y_pred, name)
            return
        if keras.backend.backend() not in ("tensorflow", "jax"):
            return
        # A compiled step reads the first image of each batch only (1 / batch of the pixels):
        # a logit output is out of range everywhere, and a wrongly scaled label map in any
        # image that comes first in a batch, which shuffled batches soon give.
        if not self.from_logits:
            p = ops.cast(y_pred[:1], "float32")
            # NaN passes: a diverged model stops on its NaN loss, not on a range error.
            ok = ops.logical_not(ops.logical_or(ops.min(p) < 0.0, ops.max(p) > 1.0))
            graph_check(
                ok,
                f"{name}: `y_pred` must hold probabilities in [0, 1]. If the model outputs "
                "logits (no sigmoid/softmax on its last layer), pass `from_logits=True` to the loss",
            )
        if self.ignore_class is None:
            y = ops.cast(y_true[:1], "float32")
            hi = float(channels - 1) if sparse else 1.0
            ok = ops.logical_not(ops.logical_or(ops.min(y) < 0.0, ops.max(y) > hi))
            graph_check(
                ok,
                f"{name}: `y_true` must hold "
                + (f"class indices in [0, {channels - 1}]" if sparse else "values in [0, 1]"),
            )

    def _check_label_map(self, y_true, channels) -> None:
        values = np.unique(ops.convert_to_numpy(y_true))
        allowed = set(range(channels)) | (
            {self.ignore_class} if self.ignore_class is not None else set()
        )
        bad = [v for v in values.tolist() if v not in allowed]
        if bad:
            shown = ", ".join(f"{v:g}" for v in bad[:5])
            raise ValueError(
                f"{type(self).__name__}: an integer label map for {channels} classes must hold "
                f"labels in {{0, ..., {channels - 1}}}"
                + (
                    f" or the ignore label {self.ignore_class}"
                    if self.ignore_class is not None
                    else ""
                )
                + f"; found {shown}"
            )

    # -------------------------------------------------------------- calling
    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = ops.convert_to_tensor(y_true)
            if mask is not None:
                sample_weight = (
                    mask
                    if sample_weight is None
                    else merge_weights(
                        pixel_weights(mask, y_pred, self.name),
                        pixel_weights(sample_weight, y_pred, self.name),
                    )
                )
            per_sample = None
            if sample_weight is not None:
                if not self.supports_mask:
                    raise ValueError(
                        f"{type(self).__name__} cannot weight single pixels, so it cannot honour a "
                        "pixel mask (`sample_weight`/`mask`): use an overlap or cross-entropy "
                        "loss of keras_losses, which count the masked pixels only"
                    )
                sw = ops.convert_to_tensor(sample_weight)
                if self.keeps_batch_axis and _is_per_image_weight(sw, y_pred):
                    per_sample, sample_weight = ops.reshape(ops.cast(sw, self.dtype), (-1,)), None
            _ACTIVE_CHECKS.append([])
            try:
                values = self.compute(y_true, y_pred, sample_weight)
            finally:
                checks = _ACTIVE_CHECKS.pop()
            for ok in checks:
                values = ops.where(ok, values, float("nan"))
            if tuple(values.shape) == (0,) and self.reduction not in (None, "none"):
                return ops.zeros((), dtype=self.dtype)  # an empty batch
            return keras.src.losses.loss.reduce_weighted_values(
                values, sample_weight=per_sample, reduction=self.reduction, dtype=self.dtype
            )

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred, None)

    @property
    def keeps_batch_axis(self) -> bool:
        """True when :meth:`compute` returns one value per image (Keras then weighs images)."""
        return True

    def compute(self, y_true, y_pred, sample_weight):
        """One loss value per image, or a scalar for losses pooled over the batch."""
        raise NotImplementedError

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "activation": self.activation,
            "include_background": self.include_background,
            "ignore_class": self.ignore_class,
        }


def _is_per_image_weight(w, y_pred) -> bool:
    rank = len(w.shape)
    return rank == 1 or (rank == 2 and w.shape[-1] == 1 and len(y_pred.shape) > 3)


class OverlapLoss(SegmentationLoss):
    """Base of the losses built on soft TP/FP/FN counts (Dice, Tversky, Jaccard, the GLF ...).

    A subclass implements :meth:`from_counts` (per-class loss from counts); this class counts,
    averages over the classes (weighted by ``class_weights``) or pools the channels first, and
    pools over the batch or averages per image.

    Args (shared by every overlap loss):
        from_logits: ``y_pred`` holds logits: sigmoid (C = 1, or ``activation="sigmoid"``
            for multi-label) or softmax over the classes is applied first. Default False.
        activation: ``"auto"`` (default: sigmoid for one channel, softmax for several),
            ``"sigmoid"`` or ``"softmax"``; used only with ``from_logits=True``.
        include_background: if False, channel 0 is left out (C > 1 only). Default True.
        ignore_class: a label value marking void pixels of an integer label map or of a
            one-channel mask; they count nowhere. Default None (Keras's ``ignore_class``).
        class_weights: C weights (>= 0, not all 0): of the per-class losses in their mean, or
            (``class_reduction="pooled"``) of each channel's counts in the pooled counts. With
            ``include_background=False`` C - 1 weights (or C, the first ignored). Default None.
        class_reduction: ``"mean"`` (default): one loss per class, averaged; ``"pooled"``:
            counts summed over the channels first (a single loss over every channel).
        per_image: if False (default), pool the counts over the whole batch; if True, one loss
            per image, averaged by the base class (MONAI's ``batch=False``).
        smooth: shorthand for ``smooth_nr = smooth_dr = smooth``.
        smooth_nr, smooth_dr: smoothing added to numerator and denominator (MONAI's names).
    """

    def __init__(
        self,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        class_weights=None,
        class_reduction: str = "mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.per_image = check_bool("per_image", per_image)
        self.smooth, self.smooth_nr, self.smooth_dr = check_smoothing(smooth, smooth_nr, smooth_dr)
        self.class_weights = check_class_weights("class_weights", class_weights)
        self.class_reduction = check_choice("class_reduction", class_reduction, CLASS_REDUCTIONS)

    @property
    def keeps_batch_axis(self) -> bool:
        return self.per_image

    def resolved_class_weights(self, channels: int | None):
        """The class weights for the channels left after background removal (or None)."""
        w = self.class_weights
        if w is None:
            return None
        if channels is not None and len(w) == channels + 1 and not self.include_background:
            w = w[1:]
        if channels is not None and len(w) != channels:
            raise ValueError(
                f"{type(self).__name__}: {len(self.class_weights)} class weights for "
                f"{channels + (0 if self.include_background else 1)} classes"
                + ("" if self.include_background else " (background excluded)")
            )
        if sum(w) <= 0:
            raise ValueError(f"{type(self).__name__}: every class weight left is 0: {w}")
        return w

    def counts(self, labels, probs, weights, per_class: bool | None = None):
        """Soft (TP, FP, FN): per class (class_reduction="mean", or ``per_class=True``) or
        summed over the channels, each channel's counts weighted by its class weight
        (class_reduction="pooled"); summed over replicas when pooled over the batch."""
        pooled_weights = None
        if per_class is None:
            per_class = self.class_reduction == "mean"
            if not per_class:
                pooled_weights = self.resolved_class_weights(probs.shape[-1])
        keep_class_axis = per_class or pooled_weights is not None
        tp, fp, fn = soft_counts(labels, probs, self.per_image, keep_class_axis, weights)
        if pooled_weights is not None:
            w = ops.convert_to_tensor(np.asarray(pooled_weights, "float32"))
            tp, fp, fn = (ops.sum(c * w, axis=-1) for c in (tp, fp, fn))
        if not self.per_image:
            tp, fp, fn = sum_over_replicas(tp), sum_over_replicas(fp), sum_over_replicas(fn)
        return tp, fp, fn

    def reduce(self, per_class, channels):
        """Per-class values -> per-image values (or a scalar when pooled over the batch)."""
        if self.class_reduction == "mean":
            per_class = mean_over_classes(per_class, self.resolved_class_weights(channels))
        return per_class if self.per_image else scale_for_replicas(per_class)

    def compute(self, y_true, y_pred, sample_weight):
        labels, probs, weights = self.prepare(y_true, y_pred, sample_weight)
        tp, fp, fn = self.counts(labels, probs, weights)
        return self.reduce(self.from_counts(tp, fp, fn), probs.shape[-1])

    def from_counts(self, tp, fp, fn):
        raise NotImplementedError

    def get_config(self):
        return {
            **super().get_config(),
            "per_image": self.per_image,
            "smooth": self.smooth,
            "smooth_nr": self.smooth_nr,
            "smooth_dr": self.smooth_dr,
            "class_weights": self.class_weights,
            "class_reduction": self.class_reduction,
        }

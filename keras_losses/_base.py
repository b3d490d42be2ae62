"""Shared pieces of every loss: the serialization package name, validation, soft counts.

The soft TP/FP/FN arithmetic lives here and only here; Dice, Effectiveness, Tversky and
the generalized loss are all built on :func:`soft_counts`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_losses"
"""The one package name every class of this library is registered under."""

register = keras.saving.register_keras_serializable(package=PACKAGE)


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float, or raise a ValueError naming the argument."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a positive number; received {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number; received {value}")
    return value


def check_nonnegative(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a non-negative number; received {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number; received {value}")
    return value


def check_shapes(y_true, y_pred, loss_name: str) -> None:
    """Raise a ValueError if the static shapes of ``y_true`` and ``y_pred`` disagree."""
    st, sp = tuple(y_true.shape), tuple(y_pred.shape)
    if len(st) != len(sp) or any(a is not None and b is not None and a != b for a, b in zip(st, sp, strict=True)):
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` must have the same shape; "
            f"received y_true.shape={st} and y_pred.shape={sp}"
        )


def check_unit_interval(name: str, x, loss_name: str) -> None:
    """Raise a ValueError if ``x`` holds values outside [0, 1].

    Only checked when ``x`` is a concrete (eager) tensor: inside a compiled train step the
    values are not known at trace time, and a data check belongs in the data pipeline
    (``train.py --check-data``).
    """
    if not _is_concrete(x):
        return
    values = ops.convert_to_numpy(x)
    if values.size == 0:
        return
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if lo < 0 or hi > 1 or np.isnan(values).any():
        raise ValueError(
            f"{loss_name}: `{name}` must hold values in [0, 1]; received values in [{lo:g}, {hi:g}]"
        )


def _is_concrete(x) -> bool:
    import tensorflow as tf

    return tf.executing_eagerly() and not isinstance(x, keras.KerasTensor)


def soft_counts(y_true, y_pred, per_image: bool):
    """Soft true positives, false positives and false negatives of a binary segmentation.

    Formula:
        TP = sum(p * y),  FP = sum(p * (1 - y)),  FN = sum((1 - p) * y)

    Args:
        y_true: labels in [0, 1], shape ``(batch, ...)``.
        y_pred: probabilities in [0, 1], same shape.
        per_image: if True, sum over all axes but the batch axis and return shape
            ``(batch,)``; if False, pool over the whole batch and return scalars.

    Returns:
        ``(tp, fp, fn)`` as float32 tensors. Sums are accumulated in float32 even for
        float16/bfloat16 inputs (a 512x512 float16 sum overflows at 65504).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    axis = tuple(range(1, len(y_pred.shape))) if per_image else None
    tp = ops.sum(y_pred * y_true, axis=axis)
    fp = ops.sum(y_pred * (1.0 - y_true), axis=axis)
    fn = ops.sum((1.0 - y_pred) * y_true, axis=axis)
    return tp, fp, fn


def _replica_context():
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def sum_over_replicas(x):
    """Sum ``x`` over the replicas of a ``tf.distribute`` strategy (identity on one device).

    The all-reduce is differentiable, so a loss of globally pooled counts trains as on one
    device with the global batch.
    """
    import tensorflow as tf

    context = _replica_context()
    return x if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def scale_for_replicas(value):
    """Divide a scalar (batch-pooled) loss by the number of replicas in sync.

    Keras scales per-sample losses by 1/R itself but returns a scalar loss unchanged
    (``keras.src.losses.loss.reduce_values``); the replicas' gradients are then summed, so a
    loss pooled over the global batch must carry the 1/R itself.
    """
    context = _replica_context()
    return value if context is None else value / context.num_replicas_in_sync

"""Argument and value checks shared by every loss: numbers, flags and choices by type; values
in [0, 1] eagerly; the checks a compiled step runs on its first image (:func:`graph_check`)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops


# ---------------------------------------------------------------------- argument checks
def check_positive(name: str, value) -> float:
    """Return ``value`` as a float, or raise a ValueError naming the argument."""
    value = _number(name, value, "a positive number")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number; received {value}")
    return value


def check_nonnegative(name: str, value) -> float:
    """Return ``value`` as a float >= 0, or raise a ValueError naming the argument."""
    value = _number(name, value, "a non-negative number")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number; received {value}")
    return value


def check_in_range(name: str, value, lo: float, hi: float) -> float:
    """Return ``value`` as a float in the closed interval [lo, hi], or raise a ValueError."""
    value = _number(name, value, f"a number in [{lo:g}, {hi:g}]")
    if not (lo <= value <= hi):  # also refuses NaN
        raise ValueError(f"`{name}` must be a number in [{lo:g}, {hi:g}]; received {value}")
    return value


def _number(name: str, value, what: str) -> float:
    # bool is an int subclass: `smooth=True` is a mistake, not 1.0. Strings are refused even
    # when float() would read them ("1e-5" from a config file is fine to convert upstream).
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"`{name}` must be {what}; received {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be {what}; received {value!r}") from None


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (numpy bools too); refuse strings such as ``"False"``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"`{name}` must be True or False; received {value!r}")


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}; received {value!r}"
        )
    return value


def check_class_weights(name: str, weights) -> list[float] | None:
    """``None``, or a list of finite weights >= 0, not all zero (a weight of 0 drops a class)."""
    if weights is None:
        return None
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__") or len(weights) == 0:
        raise ValueError(f"`{name}` must list one weight per class; received {weights!r}")
    out = [check_nonnegative(f"{name}[{i}]", w) for i, w in enumerate(weights)]
    if sum(out) <= 0:
        raise ValueError(f"`{name}` must hold at least one weight > 0; received {out}")
    return out


def check_ignore_class(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not float(value).is_integer():
        raise ValueError(f"`ignore_class` must be an integer label or None; received {value!r}")
    return int(value)


def check_smoothing(smooth, smooth_nr, smooth_dr) -> tuple[float, float, float]:
    """``(smooth, smooth_nr, smooth_dr)``: the two terms default to the shorthand ``smooth``."""
    smooth = check_nonnegative("smooth", smooth)
    nr = smooth if smooth_nr is None else check_nonnegative("smooth_nr", smooth_nr)
    dr = smooth if smooth_dr is None else check_nonnegative("smooth_dr", smooth_dr)
    return smooth, nr, dr


def check_shapes(y_true, y_pred, loss_name: str) -> None:
    """Raise a ValueError if the static shapes of ``y_true`` and ``y_pred`` disagree."""
    st, sp = tuple(y_true.shape), tuple(y_pred.shape)
    if len(st) != len(sp) or any(
        a is not None and b is not None and a != b for a, b in zip(st, sp, strict=True)
    ):
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` must have the same shape; "
            f"received y_true.shape={st} and y_pred.shape={sp}"
        )


# ---------------------------------------------------------------------- value checks
def is_concrete(x) -> bool:
    """True when ``x`` holds values now (eager), False inside a traced (compiled) function."""
    if isinstance(x, keras.KerasTensor):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    return True


def _value_range(x) -> tuple[float, float, bool] | None:
    values = ops.convert_to_numpy(x)
    if values.size == 0:
        return None
    return float(np.nanmin(values)), float(np.nanmax(values)), bool(np.isnan(values).any())


def check_unit_interval(name: str, x, loss_name: str, what: str = "values", hint: str = "") -> None:
    """Raise a ValueError if the concrete tensor ``x`` holds values outside [0, 1] (or NaN).

    Inside a compiled step the values are unknown at trace time: :class:`OverlapLoss` then
    checks with :func:`graph_check` instead.
    """
    if not is_concrete(x):
        return
    found = _value_range(x)
    if found is None:
        return
    lo, hi, nan = found
    if lo < 0 or hi > 1 or nan:
        raise ValueError(
            f"{loss_name}: `{name}` must hold {what} in [0, 1]; received values in "
            f"[{lo:g}, {hi:g}]{' and NaN' if nan else ''}{hint}"
        )


def check_probabilities(y_pred, loss_name: str) -> None:
    """Like :func:`check_unit_interval` for ``y_pred``, with the hint that fixes a logit output."""
    check_unit_interval(
        "y_pred",
        y_pred,
        loss_name,
        "probabilities",
        ". If the model outputs logits (no sigmoid/softmax on its last layer), pass "
        "`from_logits=True` to the loss",
    )


# The checks of the losses being called (one list per active __call__): a loss whose check
# failed inside a compiled step returns NaN, the one signal that survives XLA.
_ACTIVE_CHECKS: list[list] = []


def graph_check(ok, message: str):
    """Stop a compiled step with ``message`` when the boolean scalar ``ok`` is False.

    TensorFlow: an ``Assert`` op that fails the step. JAX: a host callback that raises when it
    runs. Under XLA on TensorFlow (``jit_compile=True``) no op can raise: the loss of the
    failing step is NaN instead (``ok`` is also recorded for :class:`SegmentationLoss`, which
    returns NaN whenever a check fails). Costs two scalar reductions per checked tensor.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.debugging.Assert(ok, [message])
    elif backend == "jax":
        import jax

        def _raise(flag):
            if not bool(flag):
                raise ValueError(message)

        jax.debug.callback(_raise, ok)
    if _ACTIVE_CHECKS:
        _ACTIVE_CHECKS[-1].append(ok)

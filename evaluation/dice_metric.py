"""Hard Dice as a Keras metric, so that validation Dice is logged every epoch.

Used to watch training converge (``val_dice`` in ``history.csv``) and to pick the best epoch;
the thresholded Dice is what the robustness curves report, so it is the quantity whose
plateau decides the number of epochs.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import register

MODES = ("pooled", "foreground_slices")


@register
class HardDice(keras.metrics.Metric):
    """Dice of the thresholded prediction, accumulated over every batch of an epoch.

    Formula:
        pooled:            2 sum(T P) / (sum(T) + sum(P))        over every pixel seen (1 if empty)
        foreground_slices: mean over images with sum(T) > 0 of 2 sum(T P) / (sum(T) + sum(P))
        with T = y_true > 0.5, P = y_pred > threshold.

    Args:
        mode: ``"pooled"`` (default) or ``"foreground_slices"``.
        threshold: probability above which a pixel is predicted foreground (default 0.5).
        name, dtype: as for ``keras.metrics.Metric`` (default name ``"dice"``).

    Example:
        >>> m = HardDice()
        >>> m.update_state(np.ones((1, 2, 2, 1)), np.full((1, 2, 2, 1), 0.9))
        >>> value = float(m.result())  # 1.0
    """

    def __init__(self, mode="pooled", threshold=0.5, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; received {mode!r}")
        self.mode = mode
        self.threshold = float(threshold)
        self.a = self.add_variable((), initializer="zeros", name="numerator")
        self.b = self.add_variable((), initializer="zeros", name="denominator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.5), "float32")
        p = ops.cast(ops.greater(ops.cast(y_pred, "float32"), self.threshold), "float32")
        axis = tuple(range(1, len(p.shape)))
        inter = ops.sum(t * p, axis=axis)  # (batch,)
        total = ops.sum(t, axis=axis) + ops.sum(p, axis=axis)
        if self.mode == "pooled":
            self.a.assign_add(2.0 * ops.sum(inter))
            self.b.assign_add(ops.sum(total))
        else:
            fg = ops.cast(ops.sum(t, axis=axis) > 0, "float32")
            self.a.assign_add(ops.sum(fg * 2.0 * inter / ops.maximum(total, 1.0)))
            self.b.assign_add(ops.sum(fg))

    def result(self):
        if self.mode == "pooled":
            return ops.where(self.b > 0, self.a / ops.maximum(self.b, 1e-12), 1.0)
        return self.a / ops.maximum(self.b, 1.0)

    def reset_state(self):
        self.a.assign(0.0)
        self.b.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "threshold": self.threshold}

"""Weighted sums of losses: BCE + Dice, BCE + Dice + Focal, and any other combination."""

from __future__ import annotations

import keras

from keras_losses._base import SegmentationLoss, register
from keras_losses._checks import check_nonnegative


@register
class CombinedLoss(keras.losses.Loss):
    """A weighted sum of losses evaluated on the same ``(y_true, y_pred)``.

    Formula:
        L = sum_k w_k L_k(y_true, y_pred)

    Each term is reduced by its own ``reduction`` (normally the batch mean), so the sum is
    a scalar. Terms serialize with ``keras.saving.serialize_keras_object``, so any Keras or
    keras_losses loss can be a term and a saved model reloads the whole combination.

    Args:
        losses: a list of ``keras.losses.Loss`` instances (or their serialized configs).
        weights: one non-negative weight per loss (default: all 1.0).
        name, dtype: as for ``keras.losses.Loss``.

    Reference:
        V. Rajput, arXiv:2110.08322, 2021 (BCE + Dice, BCE + Dice + Focal).

    Example:
        >>> from keras_losses import SquaredDiceLoss
        >>> bce_dice = CombinedLoss([keras.losses.BinaryCrossentropy(), SquaredDiceLoss()])
    """

    def __init__(self, losses, weights=None, name="combined_loss", **kwargs):
        kwargs.pop("reduction", None)  # each term reduces itself
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        if not losses:
            raise ValueError("`losses` must name at least one loss; received an empty list")
        self.losses = [
            keras.saving.deserialize_keras_object(loss) if isinstance(loss, dict) else loss
            for loss in losses
        ]
        for i, loss in enumerate(self.losses):
            if not callable(loss):
                raise ValueError(f"`losses[{i}]` must be a callable loss; received {loss!r}")
        weights = [1.0] * len(self.losses) if weights is None else list(weights)
        if len(weights) != len(self.losses):
            raise ValueError(
                f"`weights` must have one entry per loss ({len(self.losses)}); received {len(weights)}"
            )
        self.weights = [check_nonnegative(f"weights[{i}]", w) for i, w in enumerate(weights)]

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        """The weighted sum of the terms; a pixel mask or sample weights go to every term.

        Each term must then be a loss of this library (they weigh pixels inside the loss);
        a Keras loss would multiply its mean by the weights' mean, so it is refused.
        """
        if sample_weight is None and mask is None:
            return super().__call__(y_true, y_pred)
        for i, loss in enumerate(self.losses):
            if not isinstance(loss, SegmentationLoss):
                raise ValueError(
                    f"CombinedLoss: `losses[{i}]` ({type(loss).__name__}) cannot honour a pixel "
                    "mask (`sample_weight`/`mask`): it would return mean(mask) x its unmasked "
                    "value. Use the keras_losses equivalent (e.g. BinaryCrossentropyLoss for "
                    "keras.losses.BinaryCrossentropy)"
                )
        total = 0.0
        for weight, loss in zip(self.weights, self.losses, strict=True):
            total = total + weight * loss(y_true, y_pred, sample_weight=sample_weight, mask=mask)
        return total

    def call(self, y_true, y_pred):
        total = 0.0
        for weight, loss in zip(self.weights, self.losses, strict=True):
            total = total + weight * loss(y_true, y_pred)
        return total

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update(
            {
                "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
                "weights": self.weights,
            }
        )
        return config

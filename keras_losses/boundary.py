"""Boundary loss (Kervadec et al. 2019) and Dice + boundary with the paper's rebalancing.

Both read the signed distance maps of the labels from ``y_true``: build it in the data pipeline
with :func:`keras_losses.distance_maps.attach_distance_maps` (the maps are computed once per
sample, outside the gradient), so ``y_true = concat([labels, phi], -1)`` with one map per
channel of ``y_pred``.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import SegmentationLoss, pooled_mean, register
from keras_losses._checks import check_in_range, check_positive
from keras_losses.dice import DiceLoss
from keras_losses.distance_maps import split_distance_maps


@register
class BoundaryLoss(SegmentationLoss):
    """Mean over the pixels of the predicted probability times the signed distance map.

    Formula (per image; pixels i, classes c; phi < 0 inside the label, > 0 outside, in mm):
        L = mean_c ( sum_i w_i phi_ic p_ic / sum_i w_i )

    Minimal when the prediction fills exactly the labelled region (every negative phi taken,
    no positive one). The value is negative at a good prediction and is only meaningful next
    to a regional loss (:class:`DiceBoundaryLoss`).

    Args:
        include_background: if False (default, as the paper, which applies it to the
            foreground classes), channel 0 is left out (C > 1 only).
        from_logits, activation, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", None).
            ``y_true`` holds the labels followed by C distance maps
            (:func:`~keras_losses.distance_maps.attach_distance_maps`).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        H. Kervadec, J. Bouchtiba, C. Desrosiers, E. Granger, J. Dolz, I. Ben Ayed, "Boundary
        loss for highly unbalanced segmentation", MIDL 2019 (Medical Image Analysis 67,
        101851, 2021), eq. (5) (phi) and eq. (6)-(7) (the loss).

    Example:
        >>> y = np.array([[[[1.0], [0.0], [0.0]]]])  # shape: (1, 1, 3, 1)
        >>> phi = np.array([[[[-1.0], [1.0], [2.0]]]])  # its signed distance map
        >>> p = np.array([[[[1.0], [0.5], [0.0]]]])
        >>> round(float(BoundaryLoss()(np.concatenate([y, phi], -1), p)), 4)  # (-1 + 0.5 + 0) / 3
        -0.1667
    """

    def __init__(self, include_background: bool = False, name: str = "boundary_loss", **kwargs):
        super().__init__(include_background=include_background, name=name, **kwargs)

    def compute(self, y_true, y_pred, sample_weight):
        channels = y_pred.shape[-1]
        labels, phi = split_distance_maps(y_true, channels)
        _, p, w = self.prepare(labels, y_pred, sample_weight)
        phi = ops.cast(phi, "float32")
        if not self.include_background and channels > 1:
            phi = phi[..., 1:]
        w = ops.ones_like(p[..., :1]) if w is None else w
        axes = tuple(range(1, len(p.shape) - 1))
        per_class = ops.sum(w * phi * p, axis=axes) / ops.maximum(ops.sum(w, axis=axes), 1e-12)
        return ops.mean(per_class, axis=-1)  # (batch,)


@register
class DiceBoundaryLoss(SegmentationLoss):
    """``alpha * Dice + (1 - alpha) * Boundary``, alpha lowered during training.

    Formula:
        L = alpha L_Dice + (1 - alpha) L_B

    alpha is a non-trainable ``keras.Variable`` (``self.alpha``) that
    :class:`BoundaryRebalancing` sets at the start of every epoch: 1 at the first epoch, 0.01
    lower after each, never below 0.01 (the paper's "rebalance" schedule).

    Args:
        alpha: the starting weight of the Dice term, in [0, 1]. Default 1.0 (the paper).
        smooth: smoothing constant of the Dice term. Default 1.0 (the library's Dice).
        include_background: both terms leave channel 0 out if False (default).
        from_logits, activation, ignore_class: the input convention of
            :class:`keras_losses._base.SegmentationLoss` (defaults False, "auto", None).
            ``y_true`` holds the labels followed by the C distance maps.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        Kervadec et al., MIDL 2019, Sec. 3 and eq. (8) (a regional loss plus the boundary
        loss, with alpha lowered from 1 by 0.01 per epoch down to 0.01).

    Example:
        >>> loss = DiceBoundaryLoss()
        >>> callbacks = [BoundaryRebalancing(loss)]  # model.fit(..., callbacks=callbacks)
    """

    def __init__(
        self,
        alpha: float = 1.0,
        smooth: float = 1.0,
        include_background: bool = False,
        name: str = "dice_boundary_loss",
        **kwargs,
    ):
        super().__init__(include_background=include_background, name=name, **kwargs)
        self.initial_alpha = check_in_range("alpha", alpha, 0.0, 1.0)
        self.smooth = check_positive("smooth", smooth) if smooth else 0.0
        shared = {
            "from_logits": self.from_logits,
            "activation": self.activation,
            "include_background": self.include_background,
            "ignore_class": self.ignore_class,
        }
        self.dice = DiceLoss(smooth=self.smooth, **shared)
        self.boundary = BoundaryLoss(**shared)
        self.alpha = keras.Variable(
            self.initial_alpha, trainable=False, dtype="float32", name="alpha"
        )

    @property
    def keeps_batch_axis(self) -> bool:
        return False

    def compute(self, y_true, y_pred, sample_weight):
        labels, _ = split_distance_maps(y_true, y_pred.shape[-1])
        dice = self.dice.compute(labels, y_pred, sample_weight)  # pooled over the batch
        boundary = pooled_mean(self.boundary.compute(y_true, y_pred, sample_weight))
        alpha = ops.convert_to_tensor(self.alpha)
        return alpha * dice + (1.0 - alpha) * boundary

    def get_config(self):
        return {**super().get_config(), "alpha": self.initial_alpha, "smooth": self.smooth}


class BoundaryRebalancing(keras.callbacks.Callback):
    """Set ``loss.alpha`` of a :class:`DiceBoundaryLoss` at the start of every epoch.

    Formula (epoch e counted from 0):
        alpha_e = max(minimum, start - step * e)

    The value depends on the epoch number only, so a resumed run continues the schedule. Under
    the JAX backend the train step is traced anew at each epoch so that it uses the new alpha.

    Args:
        loss: the :class:`DiceBoundaryLoss` being trained.
        step: decrease per epoch. Default 0.01 (Kervadec et al.).
        minimum: the floor. Default 0.01 (Kervadec et al.).

    Example:
        >>> schedule = BoundaryRebalancing(DiceBoundaryLoss())
        >>> [round(schedule.value(epoch), 2) for epoch in (0, 1, 99, 200)]
        [1.0, 0.99, 0.01, 0.01]
    """

    def __init__(self, loss: DiceBoundaryLoss, step: float = 0.01, minimum: float = 0.01):
        super().__init__()
        if not isinstance(loss, DiceBoundaryLoss):
            raise ValueError(
                f"BoundaryRebalancing needs a DiceBoundaryLoss; received {type(loss).__name__}"
            )
        self.loss = loss
        self.step = check_in_range("step", step, 0.0, 1.0)
        self.minimum = check_in_range("minimum", minimum, 0.0, 1.0)

    def value(self, epoch: int) -> float:
        return max(self.minimum, self.loss.initial_alpha - self.step * epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.alpha.assign(self.value(epoch))
        if keras.backend.backend() == "jax" and self.model is not None:
            # A JAX train step carries the model's, optimizer's and metrics' variables as its
            # state, not the loss's: it reads alpha once, when it is traced. Tracing it anew
            # (once per epoch) makes the compiled step use the new alpha.
            self.model.make_train_function(force=True)

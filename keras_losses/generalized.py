"""The generalized loss function (GLF) of Seo, Bassenne and Xing.

Its special cases have their own modules on the same soft counts: :class:`DiceLoss`
(``dice.py``), :class:`EffectivenessLoss` (``effectiveness.py``), :class:`TverskyLoss`
(``tversky.py``). Not to be confused with the Generalized Dice loss of Sudre et al.
(:class:`GeneralizedDiceLoss`).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_losses._base import OverlapLoss, register, soft_counts
from keras_losses._checks import check_positive

# Smoothing of the per-image ratios <TP/FP>, <TP/FN>, P_ap/R_an that the loss records for the
# adaptive rule (an empty mask with an empty prediction gives 0/0 -> 1, "balanced").
RATIO_EPS = 1e-6
# Sec. II-C: "The performance metrics are calculated by thresholding the continuous output
# layer values with a threshold 0.5": the threshold of the hard counts recorded for the rule.
HARD_THRESHOLD = 0.5


def image_ratios(tp, fp, fn, alpha_p, alpha_n, eps: float = RATIO_EPS):
    """Per-image ratios (TP/FP, TP/FN, P_ap/R_an) from per-image counts (any backend arrays).

    Formula:
        r_P = (TP + eps) / (FP + eps),   r_N = (TP + eps) / (FN + eps)
        r_B = P_ap / R_an = (TP + alpha_n FN + eps) / (TP + alpha_p FP + eps)
    """
    return (
        (tp + eps) / (fp + eps),
        (tp + eps) / (fn + eps),
        (tp + alpha_n * fn + eps) / (tp + alpha_p * fp + eps),
    )


def glf_from_counts(tp, fp, fn, alpha_p, alpha_n, beta2, smooth_nr, smooth_dr=None):
    """The GLF value from soft counts (any broadcastable shapes; ``smooth_dr`` defaults to
    ``smooth_nr``).

    Formula:
        L = 1 - ((1 + beta2) TP + s_nr) / ((1 + beta2) TP + alpha_p FP + beta2 alpha_n FN + s_dr)
    """
    smooth_dr = smooth_nr if smooth_dr is None else smooth_dr
    num = (1.0 + beta2) * tp
    den = num + alpha_p * fp + beta2 * alpha_n * fn
    return 1.0 - (num + smooth_nr) / (den + smooth_dr)


def _shortest_float(variable) -> float:
    """The shortest decimal that reads back as the float32 value (0.3, not 0.30000001)."""
    return float(np.format_float_positional(np.float32(ops.convert_to_numpy(variable))))


@register
class GLFState(keras.metrics.Metric):
    """The adaptive GLF's state: its three coefficients and the statistics of the last batch.

    A :class:`GeneralizedLoss` keeps its coefficients here (``loss.state``). Compiled into the
    model as a metric (``model.compile(loss=loss, metrics=[loss.state])``;
    :func:`~keras_losses.adaptive.prepare_adaptive_glf` does it), the state is part of what
    the train step carries on every backend, so a rule that assigns the coefficients between
    steps (or inside the step) changes the loss of the next compiled step, also under JAX,
    whose train step carries the model's, optimizer's and metrics' variables but not a loss's
    own. As a metric it also records, at every step, what the adaptive rules read about the
    batch just trained; a plain loss whose state is not compiled records nothing, so that a
    fixed GLF costs what a Dice loss costs.

    Recorded per batch (float32 variables that aggregate by sum, so under ``tf.distribute``
    they hold the global batch): ``counts`` = soft ``[TP, FP, FN]`` summed over the batch;
    ``hard_counts`` = the same with the prediction thresholded at 0.5; ``ratio_sums`` =
    ``[[sum_i r_P,i, sum_i r_N,i, sum_i r_B,i]`` for soft counts, the same for hard counts``]``
    (the per-image ratios of :func:`image_ratios` under the coefficients the step used);
    ``num_images``; ``num_pixels`` (pixels of all images of the batch). None of this enters
    the gradient. ``reset_state`` keeps everything (the coefficients must outlive an epoch; the
    statistics are overwritten at every batch). ``result()`` is the number of images of the
    last recorded batch (logged as ``glf_images``).

    Args:
        alpha_p, alpha_n, beta2: initial coefficients (> 0). Default 1.0 each.
        name: metric name. Default "glf_images".

    Example:
        >>> loss = GeneralizedLoss()
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]], "float32")  # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[0.8], [0.4]], [[0.0], [0.0]]]], "float32")
        >>> loss.state.update_state(y, p)  # what the compiled metric does after each step
        >>> [round(float(v), 4) for v in ops.convert_to_numpy(loss.state.counts)]  # TP, FP, FN
        [0.8, 0.4, 0.2]
    """

    def __init__(self, alpha_p=1.0, alpha_n=1.0, beta2=1.0, name="glf_images", **kwargs):
        super().__init__(name=name, **kwargs)
        init = {
            "alpha_p": check_positive("alpha_p", alpha_p),
            "alpha_n": check_positive("alpha_n", alpha_n),
            "beta2": check_positive("beta2", beta2),
        }
        # Plain variables (not Metric.add_variable's on-read ones): under tf.distribute the
        # coefficients are mirrored and read alike on every replica.
        self.alpha_p, self.alpha_n, self.beta2 = (
            keras.Variable(v, dtype="float32", trainable=False, name=f"{k}_var")
            for k, v in init.items()
        )
        self.counts = keras.Variable(
            [0.0, 0.0, 0.0], dtype="float32", trainable=False, aggregation="sum", name="counts"
        )
        self.hard_counts = keras.Variable(
            [0.0, 0.0, 0.0], dtype="float32", trainable=False, aggregation="sum", name="hard_counts"
        )
        self.ratio_sums = keras.Variable(
            np.zeros((2, 3), "float32"),
            dtype="float32",
            trainable=False,
            aggregation="sum",
            name="ratio_sums",
        )
        # Images and pixels of the last batch (summed over replicas, like `counts`): the rules
        # turn pooled counts into per-image means <FP>, <FN> and scale thresholds by area.
        self.num_images = keras.Variable(
            0.0, dtype="float32", trainable=False, aggregation="sum", name="num_images"
        )
        self.num_pixels = keras.Variable(
            0.0, dtype="float32", trainable=False, aggregation="sum", name="num_pixels"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Record this replica's batch statistics (see the class docstring)."""
        if y_pred.shape[-1] not in (1, None):
            raise ValueError(
                f"GLFState records the statistics of a binary segmentation (one channel of "
                f"probabilities) for the adaptive GLF rules; received y_pred.shape="
                f"{tuple(y_pred.shape)}"
            )
        y_true = ops.stop_gradient(ops.cast(y_true, "float32"))
        y_pred = ops.stop_gradient(ops.cast(y_pred, "float32"))
        alpha_p = ops.convert_to_tensor(self.alpha_p)
        alpha_n = ops.convert_to_tensor(self.alpha_n)
        soft = soft_counts(y_true, y_pred, per_image=True)  # 3 x (batch,)
        hard_pred = ops.cast(y_pred > HARD_THRESHOLD, "float32")
        hard = soft_counts(y_true, hard_pred, per_image=True)
        # The variables sum over replicas, so each gets this replica's sums.
        self.counts.assign(ops.stack([ops.sum(c) for c in soft]))
        self.hard_counts.assign(ops.stack([ops.sum(c) for c in hard]))
        self.ratio_sums.assign(
            ops.stack(
                [
                    ops.stack([ops.sum(r) for r in image_ratios(*soft, alpha_p, alpha_n)]),
                    ops.stack([ops.sum(r) for r in image_ratios(*hard, alpha_p, alpha_n)]),
                ]
            )
        )
        shape = ops.shape(y_pred)
        self.num_images.assign(ops.cast(shape[0], "float32"))
        self.num_pixels.assign(
            ops.cast(ops.size(y_pred), "float32") / ops.cast(shape[-1], "float32")
        )

    def result(self):
        return ops.convert_to_tensor(self.num_images)

    def reset_state(self):
        pass

    def get_config(self):
        return {
            "name": self.name,
            "alpha_p": _shortest_float(self.alpha_p),
            "alpha_n": _shortest_float(self.alpha_n),
            "beta2": _shortest_float(self.beta2),
        }


@register
class GeneralizedLoss(OverlapLoss):
    """Generalized loss function (GLF) for imbalanced segmentation, per class or pooled.

    Formula (per class c; counts over the pixels of the batch, or of one image):
        P_ap = TP_c / (TP_c + alpha_p FP_c)          # weighted precision
        R_an = TP_c / (TP_c + alpha_n FN_c)          # weighted recall
        L_c  = 1 - (1 + beta2) / (1 / P_ap + beta2 / R_an)
             = 1 - ((1 + beta2) TP_c + s_nr) / ((1 + beta2) TP_c + alpha_p FP_c
                                                 + beta2 alpha_n FN_c + s_dr)
        L    = sum_c w_c L_c / sum_c w_c             (class_reduction="mean")

    with soft counts TP = sum(p y), FP = sum(p (1 - y)), FN = sum((1 - p) y), smoothing s_nr,
    s_dr and class weights w_c (1 without ``class_weights``). ``class_reduction="pooled"``
    sums each count over the channels (weighted by w_c) first and gives one L. The three
    coefficients are shared by every class. For one channel (the binary case of the paper)
    L = L_1 whatever ``include_background`` and ``class_reduction`` say.

    The GLF is a Tversky loss 1 - TP / (TP + a FP + b FN) with a = alpha_p / (1 + beta2) and
    b = beta2 alpha_n / (1 + beta2). Special cases: Dice (alpha_p = alpha_n = beta2 = 1),
    Effectiveness (alpha_p = alpha_n = 1, any beta2), Tversky (beta2 = 1, any alpha_p,
    alpha_n). Not the Generalized Dice loss of Sudre et al. (:class:`GeneralizedDiceLoss`),
    which weighs classes by their inverse squared volume.

    Empty prediction on an empty label (TP = FP = FN = 0) gives L_c = 0 when s_nr = s_dr:
    perfect agreement.

    The three coefficients are non-trainable ``keras.Variable``s held by ``loss.state`` (a
    :class:`GLFState` metric), so a callback or train step can ``assign`` them during ``fit``
    and the compiled step uses the new values at once (see :mod:`keras_losses.adaptive`). Under
    JAX the compiled step sees a new value only when ``loss.state`` is compiled into the model
    as a metric (the JAX train step carries metrics' variables, not a loss's own); the adaptive
    rules do this and check it before training. A loss is not a layer, so its variables are not
    saved with the model weights: ``get_config`` carries their current values instead, and a
    saved model reloads with the coefficients it had when it was saved.

    The adaptive rules adapt the binary GLF of the paper: one sigmoid channel of probabilities
    (``from_logits=False``, no ``ignore_class``); they refuse any other configuration before
    training starts. The batch statistics they read (``counts``, ``hard_counts``,
    ``ratio_sums``, ``num_images``, ``num_pixels``) are recorded by ``loss.state`` when it is
    compiled as a metric, not by the loss: a fixed GLF computes its value and nothing else.

    Under ``tf.distribute`` with R replicas, pooled counts are summed over the replicas (a
    differentiable all-reduce) and the value is divided by R, because Keras divides per-sample
    losses by R but returns a scalar loss unchanged: the gradient then equals one device's on
    the global batch.

    Args:
        alpha_p: weight of false positives in the weighted precision (> 0). Default 1.0.
        alpha_n: weight of false negatives in the weighted recall (> 0). Default 1.0.
        beta2: beta^2, relative weight of recall against precision (> 0). Default 1.0.
        per_image: if False (default), pool TP/FP/FN over the whole batch (the paper's
            batch-averaged statistics) and return one value; if True, compute the loss per
            image and let the base class average it (MONAI's ``batch=False``).
        smooth: shorthand for ``smooth_nr = smooth_dr = smooth``. Default 1.0: it bounds the
            gradient at an empty prediction on an empty mask to alpha_p / s per pixel (finite
            in float16), and is small beside the pooled counts of a batch.
        smooth_nr, smooth_dr: numerator and denominator smoothing (MONAI's names). Default None
            (= ``smooth``).
        from_logits, activation, include_background, ignore_class, class_weights,
        class_reduction: the input convention of :class:`keras_losses._base.OverlapLoss`
            (defaults False, "auto", True, None, None, "mean").
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference:
        S. Seo, M. Bassenne, L. Xing, "Closing the gap between deep neural network modeling
        and biomedical decision-making metrics in segmentation via adaptive loss functions",
        IEEE TMI 40(2), 2021, eq. (1) (binary; the per-class mean is this library's convention).

    Example:
        >>> loss = GeneralizedLoss(alpha_p=1.0, alpha_n=1.0, beta2=1.0, smooth=0.0)  # Dice
        >>> y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])    # shape: (1, 2, 2, 1)
        >>> p = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])
        >>> round(float(loss(y, p)), 4)   # 1 - 2*1 / (2*1 + 1 + 0)
        0.3333
        >>> labels = np.array([[[0, 1], [2, 2]]])               # shape: (1, 2, 2), 3 classes
        >>> probs = np.eye(3)[[[[0, 1], [2, 1]]]]               # one pixel of class 2 as 1
        >>> loss = GeneralizedLoss(alpha_p=2.0, smooth=0.0, include_background=False)
        >>> round(float(loss(labels, probs)), 4)   # mean(1 - 2/(2 + 2*1), 1 - 2/(2 + 1))
        0.4167
    """

    def __init__(
        self,
        alpha_p: float = 1.0,
        alpha_n: float = 1.0,
        beta2: float = 1.0,
        per_image: bool = False,
        smooth: float = 1.0,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        name: str = "generalized_loss",
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
        # Non-trainable state that the adaptive rules assign between steps, and the batch
        # statistics they read: a metric, so that a train step can carry it (see GLFState).
        self.state = GLFState(alpha_p, alpha_n, beta2)
        # The same variables as attributes of the loss (what training.fit backs up on resume).
        self.alpha_p_var = self.state.alpha_p
        self.alpha_n_var = self.state.alpha_n
        self.beta2_var = self.state.beta2
        self.hard_counts = self.state.hard_counts
        self.ratio_sums = self.state.ratio_sums
        self.num_images = self.state.num_images
        self.num_pixels = self.state.num_pixels

    # ------------------------------------------------------------------ coefficients
    @property
    def coefficients(self) -> dict[str, float]:
        """Current ``{"alpha_p", "alpha_n", "beta2"}`` as Python floats."""
        return {
            "alpha_p": _shortest_float(self.alpha_p_var),
            "alpha_n": _shortest_float(self.alpha_n_var),
            "beta2": _shortest_float(self.beta2_var),
        }

    def set_coefficients(self, alpha_p=None, alpha_n=None, beta2=None) -> None:
        """Assign new coefficient values (each > 0); ``None`` leaves one unchanged."""
        for name, value, var in (
            ("alpha_p", alpha_p, self.alpha_p_var),
            ("alpha_n", alpha_n, self.alpha_n_var),
            ("beta2", beta2, self.beta2_var),
        ):
            if value is not None:
                var.assign(check_positive(name, value))

    # ------------------------------------------------------------------ loss
    def from_counts(self, tp, fp, fn):
        """The GLF of each class from its soft counts, under the current coefficients."""
        return glf_from_counts(
            tp,
            fp,
            fn,
            ops.convert_to_tensor(self.alpha_p_var),
            ops.convert_to_tensor(self.alpha_n_var),
            ops.convert_to_tensor(self.beta2_var),
            self.smooth_nr,
            self.smooth_dr,
        )

    def record_batch(self, y_true, y_pred) -> None:
        """Record this replica's batch statistics in ``loss.state`` (see :class:`GLFState`),
        as the compiled state metric does after every step."""
        self.state.update_state(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), **self.coefficients}

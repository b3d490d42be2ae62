"""Loss-estimator training: margin ranking loss and the joint objective (Narayanaswamy et al.)."""

from __future__ import annotations

import keras
from keras import ops

from keras_losses._base import register
from keras_losses._checks import (
    check_choice,
    check_class_weights,
    check_nonnegative,
    check_positive,
)

PAIR_REDUCTIONS = ("mean", "sum")
RANK_TARGETS = ("ce", "weighted-ce")


def margin_ranking(true_losses, predicted_losses, margin, pair_reduction="mean"):
    """Per-sample margin ranking loss over all ordered pairs of a batch.

    Formula (pairs i != j):
        I_ij = +1 if l_i > l_j else -1
        r_ij = max(0, -I_ij (lhat_i - lhat_j) + gamma)
    ``pair_reduction="mean"``: sample i gets mean_{j != i} r_ij, so the batch mean is the mean
    over the n(n-1) ordered pairs. ``"sum"``: sample i gets n sum_{j != i} r_ij, so the batch
    mean is the SUM over ordered pairs, eq. (1) read literally (lambda effectively n(n-1) times
    larger). ``true_losses`` are stop-gradient.
    """
    if pair_reduction not in PAIR_REDUCTIONS:
        raise ValueError(
            f"pair_reduction must be one of {', '.join(PAIR_REDUCTIONS)}; received {pair_reduction!r}"
        )
    true = ops.stop_gradient(ops.reshape(ops.cast(true_losses, "float32"), (-1,)))
    lhat = ops.reshape(ops.cast(predicted_losses, "float32"), (-1,))
    sign = ops.where(ops.expand_dims(true, 1) > ops.expand_dims(true, 0), 1.0, -1.0)  # (n, n)
    diff = ops.expand_dims(lhat, 1) - ops.expand_dims(lhat, 0)
    pair = ops.maximum(-sign * diff + margin, 0.0)
    n = ops.shape(pair)[0]
    nf = ops.cast(n, "float32")
    off_diagonal = 1.0 - ops.eye(n, dtype="float32")
    per_sample = ops.sum(pair * off_diagonal, axis=1)  # (n,)
    if pair_reduction == "sum":
        return nf * per_sample
    return per_sample / ops.maximum(nf - 1.0, 1.0)


@register
class MarginRankingLoss(keras.losses.Loss):
    """Margin ranking loss between true per-sample losses and estimated losses.

    Formula (over ordered pairs i != j of a batch):
        L = mean_ij max(0, -I(l_i, l_j) (lhat_i - lhat_j) + gamma),
        I(l_i, l_j) = +1 if l_i > l_j else -1

    The loss is zero when every pair is ranked correctly with a gap of at least gamma; only
    the order of the true losses matters, not their scale.

    Args:
        margin: gamma (>= 0). Default 1.0 (Yoo and Kweon 2019, followed by Narayanaswamy et al.).
        pair_reduction: ``"mean"`` (default) over the ordered pairs, or ``"sum"`` over them
            (eq. (1) writes a sum; see :func:`margin_ranking`).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Inputs:
        y_true: the true per-sample losses l (treated as constants), shape (batch,) or (batch, 1).
        y_pred: the estimated losses lhat, same shape.

    Reference:
        V. Narayanaswamy, J. J. Thiagarajan, D. Rajan, A. Spanias, "Loss estimators improve
        model generalization", arXiv:2103.03788, 2021, eq. (1);
        D. Yoo, I. S. Kweon, "Learning loss for active learning", CVPR 2019.

    Example:
        >>> import numpy as np
        >>> losses = np.array([1.0, 2.0])  # true per-sample losses, shape: (2,)
        >>> ranking = MarginRankingLoss(margin=0.5)
        >>> round(float(ranking(losses, np.array([0.2, 1.5]))), 4)  # right order, gap 1.3 >= 0.5
        0.0
        >>> round(float(ranking(losses, np.array([0.5, 0.2]))), 4)  # wrong order: 0.3 + 0.5
        0.8
    """

    def __init__(self, margin=1.0, pair_reduction="mean", name="margin_ranking_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = check_nonnegative("margin", margin)
        margin_ranking([0.0], [0.0], 0.0, pair_reduction)  # validates pair_reduction
        self.pair_reduction = pair_reduction

    def call(self, y_true, y_pred):
        return margin_ranking(y_true, y_pred, self.margin, self.pair_reduction)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "pair_reduction": self.pair_reduction,
        }


@register
class LossEstimatorLoss(keras.losses.Loss):
    """Joint objective of a classifier with a loss-estimator head: L_CE + lambda L_rank.

    The model's output concatenates the class probabilities and the estimated loss:
    ``y_pred = [p_1, ..., p_C, lhat]``. For each sample the (optionally class-weighted)
    cross-entropy l_i = -w_{y_i} log p_{y_i} is the primary loss; the ranking term compares
    the estimates lhat with l (stop-gradient) through :class:`MarginRankingLoss`.

    Formula:
        L = mean_i c_i + lambda mean_{i != j} max(0, -I(l_i, l_j)(lhat_i - lhat_j) + gamma)
        c_i = -w_{y_i} log p_{y_i}   (the trained cross-entropy, weighted if class_weights)
        l_i = -log p_{y_i}           (rank_target="ce") or c_i (rank_target="weighted-ce")

    Args:
        lambda_: weight of the ranking term (default 0.5, the paper's value).
        margin: gamma of the ranking loss (default 1.0).
        class_weights: optional list of C per-class weights for the cross-entropy.
        rank_target: what the estimator ranks. ``"ce"`` (default): the unweighted per-sample
            cross-entropy, the paper's "l = L_pri = L_CE(F(x), y)" (Sec. 3); ``"weighted-ce"``:
            the class-weighted loss that is trained (Sec. 4.1 weights it), which ranks every
            rare-class sample as harder by its class weight.
        pair_reduction: ``"mean"`` (default) or ``"sum"`` over ordered pairs (see
            :func:`margin_ranking`); eq. (1) writes a sum without saying over which pairs.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Inputs:
        y_true: one-hot labels, shape (batch, C).
        y_pred: shape (batch, C + 1): probabilities then the estimated loss.

    Reference:
        Narayanaswamy et al., "Loss estimators improve model generalization",
        arXiv:2103.03788, 2021, eq. (1) and Sec. 3 (lambda = 0.5).

    Example:
        >>> import numpy as np
        >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])  # one-hot labels, shape: (2, 2)
        >>> y_pred = np.array([[0.5, 0.5, 0.7], [0.2, 0.8, 0.1]])  # probabilities, lhat
        >>> # CE: -log 0.5 and -log 0.8, mean 0.4581; ranking right, gap 0.6 < 1: 0.4 per pair
        >>> round(float(LossEstimatorLoss()(y, y_pred)), 4)  # 0.4581 + 0.5 * 0.4
        0.6581
    """

    def __init__(
        self,
        lambda_=0.5,
        margin=1.0,
        class_weights=None,
        rank_target="ce",
        pair_reduction="mean",
        name="loss_estimator_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if rank_target not in RANK_TARGETS:
            raise ValueError(
                f"rank_target must be one of {', '.join(RANK_TARGETS)}; received {rank_target!r}"
            )
        margin_ranking([0.0], [0.0], 0.0, pair_reduction)  # validates pair_reduction
        self.rank_target = rank_target
        self.pair_reduction = pair_reduction
        self.lambda_ = check_nonnegative("lambda_", lambda_)
        self.margin = check_nonnegative("margin", margin)
        self.class_weights = (
            None
            if class_weights is None
            else [check_positive(f"class_weights[{i}]", w) for i, w in enumerate(class_weights)]
        )

    def call(self, y_true, y_pred):
        c = y_true.shape[-1]
        if y_pred.shape[-1] is not None and c is not None and y_pred.shape[-1] != c + 1:
            raise ValueError(
                "LossEstimatorLoss: `y_pred` must hold C class probabilities and one estimated "
                f"loss, i.e. {c + 1} columns for C={c} classes; received {y_pred.shape[-1]}"
            )
        probs, lhat = y_pred[:, :-1], y_pred[:, -1]
        ce = per_sample_crossentropy(y_true, probs, self.class_weights)
        target = ce
        if self.rank_target == "ce" and self.class_weights is not None:
            target = per_sample_crossentropy(y_true, probs, None)
        return ce + self.lambda_ * margin_ranking(target, lhat, self.margin, self.pair_reduction)

    def get_config(self):
        return {
            **super().get_config(),
            "lambda_": self.lambda_,
            "margin": self.margin,
            "class_weights": self.class_weights,
            "rank_target": self.rank_target,
            "pair_reduction": self.pair_reduction,
        }


def per_sample_crossentropy(y_true, probs, class_weights=None):
    """-w_c sum_c y_c log p_c for each sample; probabilities clipped to [eps, 1 - eps]."""
    eps = keras.config.epsilon()
    y_true = ops.cast(y_true, "float32")
    probs = ops.clip(ops.cast(probs, "float32"), eps, 1.0 - eps)
    terms = -y_true * ops.log(probs)
    if class_weights is not None:
        terms = terms * ops.convert_to_tensor(class_weights, dtype="float32")
    return ops.sum(terms, axis=-1)


NORMALIZATIONS = ("weights", "samples")


@register
class ClassWeightedCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with a weight per class, for imbalanced classes.

    Formula (sample i of a batch of n, true class y_i):
        l_i = -sum_c w_c y_ic log p_ic
        L   = sum_i l_i / sum_i w_{y_i}       (normalization="weights", default)
        L   = sum_i l_i / n                   (normalization="samples")

    ``"weights"`` divides by the sum of the weights of the samples seen (PyTorch's
    ``CrossEntropyLoss(weight=...)``), so the loss keeps the scale of an unweighted
    cross-entropy whatever the weights; ``"samples"`` divides by the number of samples (the
    weighted losses' plain batch mean, which the dermoscopy study trains with).

    Args:
        class_weights: list of C weights >= 0, not all 0 (e.g. inverse class frequencies); a
            weight of 0 leaves that class out.
        normalization: ``"weights"`` (default) or ``"samples"``.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Inputs:
        y_true: one-hot labels (batch, C); y_pred: probabilities (batch, C).

    Reference:
        Narayanaswamy et al. 2021 (class-weighted CE on ISIC 2019), and the standard
        weighted cross-entropy of imbalanced classification.

    Example:
        >>> import numpy as np
        >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])  # shape: (2, 2)
        >>> p = np.array([[0.5, 0.5], [0.2, 0.8]])
        >>> loss = ClassWeightedCategoricalCrossentropy([1.0, 3.0])
        >>> round(float(loss(y, p)), 4)  # (1 * -log 0.5 + 3 * -log 0.8) / (1 + 3)
        0.3406
    """

    def __init__(
        self,
        class_weights,
        normalization: str = "weights",
        name="class_weighted_categorical_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.class_weights = check_class_weights("class_weights", class_weights)
        if self.class_weights is None:
            raise ValueError("`class_weights` must list one weight per class; received none")
        self.normalization = check_choice("normalization", normalization, NORMALIZATIONS)

    def call(self, y_true, y_pred):
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != len(self.class_weights):
            raise ValueError(
                f"ClassWeightedCategoricalCrossentropy: {len(self.class_weights)} class weights "
                f"but `y_pred` has {y_pred.shape[-1]} classes"
            )
        losses = per_sample_crossentropy(y_true, y_pred, self.class_weights)
        if self.normalization == "samples":
            return losses
        # sum_i l_i / sum_i w_{y_i}, returned per sample so that the base class's batch mean
        # gives it: l_i * n / sum_j w_{y_j}.
        w = ops.convert_to_tensor(self.class_weights, dtype="float32")
        sample_w = ops.sum(ops.cast(y_true, "float32") * w, axis=-1)
        total = ops.sum(sample_w)
        n = ops.cast(ops.shape(losses)[0], "float32")
        return ops.where(total > 0, losses * n / ops.where(total > 0, total, 1.0), 0.0)

    def get_config(self):
        return {
            **super().get_config(),
            "class_weights": self.class_weights,
            "normalization": self.normalization,
        }

    @classmethod
    def from_config(cls, config):
        # A configuration saved without `normalization` was trained with the batch mean.
        return cls(**{"normalization": "samples", **config})

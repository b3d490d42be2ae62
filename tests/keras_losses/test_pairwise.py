"""Contrastive, margin ranking and loss-estimator losses against numpy references."""

import itertools

import numpy as np
import pytest

import keras_losses as kl


def contrastive_reference(labels, emb, margin):
    """Mean over ordered pairs i != j, written loop by loop."""
    total, count = 0.0, 0
    for i, j in itertools.permutations(range(len(labels)), 2):
        d = np.linalg.norm(emb[i] - emb[j])
        total += d**2 if labels[i] == labels[j] else max(0.0, margin - d) ** 2
        count += 1
    return total / count


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrastive_matches_numpy(margin, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 7)
    emb = rng.normal(size=(7, 4)).astype("float32") * 0.6
    got = float(kl.ContrastiveLoss(margin=margin)(labels, emb))
    assert got == pytest.approx(contrastive_reference(labels, emb, margin), rel=1e-5)


def test_contrastive_accepts_column_and_one_hot_labels():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 6)
    emb = rng.normal(size=(6, 3)).astype("float32")
    loss = kl.ContrastiveLoss()
    a = float(loss(labels, emb))
    assert float(loss(labels[:, None], emb)) == pytest.approx(a)
    assert float(loss(np.eye(2)[labels], emb)) == pytest.approx(a)


def test_contrastive_hand_value():
    # two same-class points at distance 0.5 and one other at distance 2 / 1.5 from them
    labels = np.array([0, 0, 1])
    emb = np.array([[0.0], [0.5], [2.0]], "float32")
    # ordered pairs: (0,1),(1,0): 0.25 each; (0,2),(2,0): max(0,1-2)^2 = 0; (1,2),(2,1): 0
    assert float(kl.ContrastiveLoss(margin=1.0)(labels, emb)) == pytest.approx(0.5 / 6)


def test_contrastive_gradients_finite_for_identical_embeddings(grad_of):
    labels = np.array([0, 1, 1, 0])
    value, grad = grad_of(kl.ContrastiveLoss(), labels, np.zeros((4, 3), "float32"))
    assert np.isfinite(value) and np.isfinite(grad).all()


def test_contrastive_refuses_non_embedding_shape():
    with pytest.raises(ValueError, match=r"shape \(batch, dim\); received shape \(2, 3, 1\)"):
        kl.ContrastiveLoss()(np.array([0, 1]), np.zeros((2, 3, 1), "float32"))


def ranking_reference(true, lhat, margin):
    total, count = 0.0, 0
    for i, j in itertools.permutations(range(len(true)), 2):
        sign = 1.0 if true[i] > true[j] else -1.0
        total += max(0.0, -sign * (lhat[i] - lhat[j]) + margin)
        count += 1
    return total / count


@pytest.mark.parametrize("margin", [0.0, 0.1, 1.0])
def test_margin_ranking_matches_numpy(margin):
    rng = np.random.default_rng(7)
    true, lhat = rng.random(9).astype("float32"), rng.random(9).astype("float32")
    true[3] = true[4]  # a tie
    got = float(kl.MarginRankingLoss(margin=margin)(true, lhat))
    assert got == pytest.approx(ranking_reference(true, lhat, margin), rel=1e-5)


def test_margin_ranking_zero_when_order_right_with_margin():
    true = np.array([0.1, 0.5, 0.9], "float32")
    assert float(kl.MarginRankingLoss(margin=1.0)(true, 3 * np.array([0.0, 1.0, 2.0], "float32"))) == 0.0


def test_ranking_true_losses_get_no_gradient(grad_of):
    true = np.array([0.2, 0.9, 0.4], "float32")
    lhat = np.array([0.5, 0.1, 0.3], "float32")
    loss = kl.MarginRankingLoss()
    _, grad_lhat = grad_of(loss, true, lhat)
    assert np.abs(grad_lhat).sum() > 0

    def swapped(y, p, sample_weight=None):  # differentiates with respect to the true losses
        return loss(p, y)

    _, grad_true = grad_of(swapped, lhat, true)
    assert grad_true is None or not np.any(grad_true)


def test_loss_estimator_loss_is_ce_plus_half_ranking():
    rng = np.random.default_rng(11)
    y = np.eye(4)[rng.integers(0, 4, 8)].astype("float32")
    logits = rng.normal(size=(8, 4))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
    lhat = rng.random((8, 1)).astype("float32")
    weights = [1.0, 2.0, 0.5, 3.0]
    ce = -(y * np.log(probs) * np.array(weights)).sum(1)
    plain_ce = -(y * np.log(probs)).sum(1)
    y_pred = np.concatenate([probs, lhat], 1)
    # default: the weighted CE is trained, the estimator ranks the unweighted CE (paper Sec. 3)
    expected = ce.mean() + 0.5 * ranking_reference(plain_ce, lhat[:, 0], 1.0)
    got = float(kl.LossEstimatorLoss(lambda_=0.5, class_weights=weights)(y, y_pred))
    assert got == pytest.approx(expected, rel=1e-5)
    expected_w = ce.mean() + 0.5 * ranking_reference(ce, lhat[:, 0], 1.0)
    loss_w = kl.LossEstimatorLoss(lambda_=0.5, class_weights=weights, rank_target="weighted-ce")
    assert float(loss_w(y, y_pred)) == pytest.approx(expected_w, rel=1e-5)
    assert expected_w != pytest.approx(expected, rel=1e-3)  # the two targets rank differently here
    # eq. (1) as a sum over the n(n-1) = 56 ordered pairs
    expected_sum = ce.mean() + 0.5 * 56 * ranking_reference(plain_ce, lhat[:, 0], 1.0)
    loss_sum = kl.LossEstimatorLoss(lambda_=0.5, class_weights=weights, pair_reduction="sum")
    assert float(loss_sum(y, y_pred)) == pytest.approx(expected_sum, rel=1e-5)
    with pytest.raises(ValueError, match="rank_target must be one of ce, weighted-ce"):
        kl.LossEstimatorLoss(rank_target="mse")
    with pytest.raises(ValueError, match="pair_reduction must be one of mean, sum"):
        kl.LossEstimatorLoss(pair_reduction="max")
    # the dermoscopy study's weighting: the batch mean of the weighted losses
    batch_mean = kl.ClassWeightedCategoricalCrossentropy(weights, normalization="samples")
    assert float(batch_mean(y, probs)) == pytest.approx(ce.mean(), rel=1e-5)
    # the default: normalised by the sum of the weights of the samples' classes
    by_weights = float(kl.ClassWeightedCategoricalCrossentropy(weights)(y, probs))
    assert by_weights == pytest.approx(ce.sum() / (y * np.array(weights)).sum(), rel=1e-5)


def test_class_weighted_ce_allows_weight_zero_and_loads_old_configs():
    y = np.eye(3, dtype="float32")[[0, 1, 2, 2]]  # shape: (4, 3)
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]], "float32")
    dropped = kl.ClassWeightedCategoricalCrossentropy([0.0, 1.0, 1.0])(y, p)
    assert float(dropped) == pytest.approx(-(np.log(0.6) + np.log(0.6) + np.log(0.8)) / 3, rel=1e-5)
    saved = {"name": "class_weighted_categorical_crossentropy", "reduction": "sum_over_batch_size", "class_weights": [1.0, 2.0, 3.0]}
    assert kl.ClassWeightedCategoricalCrossentropy.from_config(saved).normalization == "samples"


def test_loss_estimator_loss_checks_columns():
    with pytest.raises(ValueError, match=r"5 columns for C=4 classes; received 4"):
        kl.LossEstimatorLoss()(np.eye(4, dtype="float32"), np.full((4, 4), 0.25, "float32"))

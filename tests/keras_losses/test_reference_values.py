"""Published test values of an independent implementation (MONAI's DiceLoss test table),
reached through the porting table of docs/losses.md.

MONAI lays tensors out channel-first (batch, C, *spatial); the cases are moved to this
library's channel-last layout. MONAI's ``batch=False`` (its default) is ``per_image=True``;
``sigmoid``/``softmax`` are ``from_logits=True`` with that activation; ``to_onehot_y`` is an
integer label map; ``squared_pred`` is SquaredDiceLoss; ``jaccard`` is JaccardLoss with half
MONAI's smoothing (MONAI writes 1 - (2I + s) / (2U + s)).
"""

import numpy as np
import pytest

import keras_losses as kl


def last(x):
    """channel-first -> channel-last."""
    x = np.asarray(x, "float32")
    return np.moveaxis(x, 1, -1)


LOGITS_2x2 = [[[[1.0, -1.0], [-1.0, 1.0]]]]  # shape: (1, 1, 2, 2) channel-first
TARGET_2x2 = [[[[1.0, 0.0], [1.0, 1.0]]]]
LOGITS_B2 = [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]]  # (2, 1, 2, 2)
TARGET_B2 = [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]]
LOGITS_C2 = [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]  # (2, 2, 3)
LABELS_C2 = np.array([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])[:, 0]  # (2, 3) integer map

CASES = [
    # (loss, y_true, y_pred, MONAI's expected value)
    (
        kl.DiceLoss(per_image=True, from_logits=True, smooth_nr=1e-6, smooth_dr=1e-6),
        last(TARGET_2x2),
        last(LOGITS_2x2),
        0.307576,
    ),
    (
        kl.DiceLoss(per_image=True, from_logits=True, smooth_nr=1e-4, smooth_dr=1e-4),
        last(TARGET_B2),
        last(LOGITS_B2),
        0.416657,
    ),
    (
        kl.DiceLoss(per_image=True, include_background=False, smooth=0.0),
        np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        last([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]),
        0.0,
    ),
    (
        kl.DiceLoss(
            per_image=True, from_logits=True, activation="sigmoid", smooth_nr=1e-4, smooth_dr=1e-4
        ),
        LABELS_C2,
        last(LOGITS_C2),
        0.435050,
    ),
    (
        kl.DiceLoss(
            per_image=True, from_logits=True, activation="softmax", smooth_nr=1e-4, smooth_dr=1e-4
        ),
        LABELS_C2,
        last(LOGITS_C2),
        0.383713,
    ),
    (
        kl.SquaredDiceLoss(per_image=True, from_logits=True, smooth=1e-5),
        last(TARGET_2x2),
        last(LOGITS_2x2),
        0.178337,
    ),
    (
        kl.JaccardLoss(per_image=True, from_logits=True, smooth=0.5e-5),
        last(TARGET_2x2),
        last(LOGITS_2x2),
        0.470451,
    ),
]


@pytest.mark.parametrize("loss, y_true, y_pred, expected", CASES)
def test_monai_dice_loss_table(loss, y_true, y_pred, expected):
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_monai_reduction_none_per_class_values():
    # MONAI reduction="none": (batch, C) values [[0.296529, 0.415136], [0.599976, 0.428559]]
    loss = kl.DiceLoss(
        per_image=True,
        from_logits=True,
        activation="sigmoid",
        smooth_nr=1e-4,
        smooth_dr=1e-4,
        class_weights=[1.0, 0.0],
    )
    np.testing.assert_allclose(
        [float(loss(LABELS_C2[i : i + 1], last(LOGITS_C2)[i : i + 1])) for i in range(2)],
        [0.296529, 0.599976],
        rtol=1e-5,
    )
    loss = kl.DiceLoss(
        per_image=True,
        from_logits=True,
        activation="sigmoid",
        smooth_nr=1e-4,
        smooth_dr=1e-4,
        class_weights=[0.0, 1.0],
    )
    np.testing.assert_allclose(
        [float(loss(LABELS_C2[i : i + 1], last(LOGITS_C2)[i : i + 1])) for i in range(2)],
        [0.415136, 0.428559],
        rtol=1e-5,
    )


def test_monai_ignore_index_equals_the_cropped_image():
    probs = np.array(
        [[[0.8, 0.1], [0.1, 0.1]], [[0.1, 0.8], [0.1, 0.1]], [[0.1, 0.1], [0.8, 0.8]]], "float32"
    )  # (C=3, 2, 2)
    logits = np.log(np.moveaxis(probs, 0, -1))[None]  # (1, 2, 2, 3)
    labels = np.array([[[0, 1], [2, 2]]])  # the bottom row is void (ignore label 2)
    loss = kl.DiceLoss(per_image=True, from_logits=True, ignore_class=2, smooth=1e-5)
    cropped = kl.DiceLoss(per_image=True, from_logits=True, smooth=1e-5)(
        labels[:, :1], logits[:, :1]
    )
    assert float(loss(labels, logits)) == pytest.approx(float(cropped), rel=1e-6)

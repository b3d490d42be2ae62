"""HardDice metric: hand values over two batches, both modes; agrees with dice_per_image."""

import numpy as np
import pytest

from evaluation.attacks import dice_per_image
from evaluation.dice_metric import HardDice

# shape: (2, 1, 2, 1); batch 1: image 0 T = [1, 1], P = [1, 0]; image 1 T = [0, 0], P = [1, 0]
T1 = np.array([[1, 1], [0, 0]], "float32").reshape(2, 1, 2, 1)
P1 = np.array([[0.9, 0.2], [0.7, 0.1]], "float32").reshape(2, 1, 2, 1)
# shape: (1, 1, 2, 1); batch 2: T = [1, 0], P = [1, 0]
T2 = np.array([[1, 0]], "float32").reshape(1, 1, 2, 1)
P2 = np.array([[0.8, 0.4]], "float32").reshape(1, 1, 2, 1)


@pytest.mark.parametrize(
    "mode,expected",
    [
        # pooled: TP = 1 + 1, |T| = 2 + 1, |P| = 2 + 1 -> 2 * 2 / 6
        ("pooled", 4 / 6),
        # foreground slices: image 0 of batch 1 (2 * 1 / 3) and batch 2 (1.0); image 1 skipped
        ("foreground_slices", (2 / 3 + 1.0) / 2),
    ],
)
def test_hard_dice_hand_values_over_two_batches(mode, expected):
    m = HardDice(mode=mode)
    m.update_state(T1, P1)
    m.update_state(T2, P2)
    assert float(m.result()) == pytest.approx(expected, abs=1e-6)
    m.reset_state()
    assert float(m.result()) == (1.0 if mode == "pooled" else 0.0)


def test_foreground_slices_mode_equals_dice_per_image_mean():
    rng = np.random.default_rng(0)
    t = (rng.uniform(size=(6, 5, 5, 1)) > 0.6).astype("float32")
    t[2] = 0
    p = rng.uniform(size=(6, 5, 5, 1)).astype("float32")
    m = HardDice(mode="foreground_slices")
    m.update_state(t[:4], p[:4])
    m.update_state(t[4:], p[4:])
    fg = t.reshape(6, -1).any(1)
    assert float(m.result()) == pytest.approx(dice_per_image(t, p)[fg].mean(), abs=1e-6)


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of pooled, foreground_slices"):
        HardDice(mode="mean")

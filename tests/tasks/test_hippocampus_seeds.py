"""Results over seeds (mean, sd, plateau) and the claim checks, on hand-made numbers."""

import numpy as np
import pytest

from tasks.hippocampus.claims import check_claims
from tasks.hippocampus.seeds import plateau, stat


def test_stat_is_the_mean_and_sample_sd_elementwise():
    s = stat([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    assert s["mean"] == [3.0, 2.0]
    assert s["sd"] == pytest.approx([2.0, 0.0])  # sqrt(((1-3)^2 + 0 + (5-3)^2) / 2) = 2
    assert s["per_seed"][2] == [5.0, 2.0]
    assert stat([0.7])["sd"] == 0.0


@pytest.mark.parametrize(
    "curve,plateau_epoch,converged",
    [
        # running means (window 3): 0.3, 0.6, 0.8, 0.833, 0.84 -> the 4th (epochs 4-6) is within 0.01
        ([0.0, 0.3, 0.6, 0.9, 0.9, 0.7, 0.92], 6, True),
        # still rising at the end: the last running mean is the maximum, reached only there
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 6, True),
        # fell off the plateau at the end: 0.9 0.9 0.9 then 0.5 0.5 0.5
        ([0.9, 0.9, 0.9, 0.5, 0.5, 0.5], 3, False),
    ],
)
def test_plateau_by_hand(curve, plateau_epoch, converged):
    p = plateau(curve)
    assert p["plateau_epoch"] == plateau_epoch
    assert p["converged"] is converged
    assert p["best_epoch"] == int(np.argmax(curve)) + 1


def model(clean, values, counts, random, shift=(0.0, 0.0)):
    """A per-loss result on two seeds: seed k adds ``shift[k]`` to every number."""

    def s(x):
        return stat([np.asarray(x, float) + d for d in shift])

    return {
        "clean_dice_foreground_slices": s(clean),
        "clean_dice_attacked_slices": s(clean),
        "value_sweep": {"values": [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], "dice": s(values)},
        "count_sweep": {"n_pixels": [0, 10, 20, 30], "dice": s(counts)},
        "random_sweep": {"n_pixels": [0, 10, 20], "dice": s(random)},
    }


def paper_picture():
    # the paper's picture: Dice collapses, BCE barely moves, BCE+Dice in between
    return {
        "bce": model(0.80, [0.8] * 7, [0.8, 0.79, 0.79, 0.78], [0.8, 0.75, 0.7]),
        "dice": model(
            0.85, [0.85, 0.8, 0.7, 0.3, 0.03, 0.02, 0.01], [0.85, 0.6, 0.4, 0.3], [0.85, 0.3, 0.1]
        ),
        "bce+dice": model(
            0.86, [0.86, 0.85, 0.84, 0.7, 0.6, 0.5, 0.4], [0.86, 0.8, 0.76, 0.72], [0.86, 0.6, 0.5]
        ),
        "bce+dice+focal": model(
            0.84, [0.84, 0.84, 0.83, 0.7, 0.6, 0.5, 0.4], [0.84, 0.8, 0.75, 0.7], [0.84, 0.6, 0.5]
        ),
    }


def test_claims_held_and_not_held_with_the_paper_numbers():
    # the same numbers on both seeds: zero spread, so each interval is the point of the effect
    models = paper_picture()
    claims = check_claims(models, n_fixed=5, fixed_value=0.2)
    tested = [c for c in claims if c["verdict"] != "not tested"]
    assert len(tested) == 9 and all(c["verdict"] == "held" for c in tested), [
        (c["claim"], c["reason"]) for c in tested if c["verdict"] != "held"
    ]
    fig3 = next(c for c in claims if c["claim"] == "fig3-bce+dice-keeps-more-at-v0.6")
    assert fig3["effect"]["per_seed"] == pytest.approx([0.57, 0.57])  # 0.60 - 0.03
    assert fig3["paper_effect"] == 0.55 and fig3["magnitude"] == "larger than the paper's"
    # Dice loss at v = 0.6 keeps 0.2: BCE+Dice is ahead by 0.4, short of the paper's 0.55
    models["dice"]["value_sweep"]["dice"] = stat([[0.85, 0.8, 0.7, 0.3, 0.2, 0.1, 0.05]] * 2)
    fig3 = check_claims(models, 5, 0.2)[4]
    assert fig3["verdict"] == "held" and fig3["magnitude"] == "smaller than the paper's"
    # ... and keeps 0.65: ours is opposite, excluding the paper's effect
    models["dice"]["value_sweep"]["dice"] = stat([[0.85, 0.8, 0.7, 0.7, 0.65, 0.6, 0.5]] * 2)
    assert check_claims(models, 5, 0.2)[4]["verdict"] == "not held"
    assert [c["verdict"] for c in claims if c["verdict"] == "not tested"] == ["not tested"] * 2


def test_a_difference_smaller_than_its_seed_spread_is_inconclusive():
    # Fig. 2, Dice lost from v = 0 to 0.2, Dice loss minus BCE+Dice:
    # seed 0: (0.85 - 0.70) - (0.86 - 0.84) = +0.13; seed 1: (0.85 - 0.80) - (0.86 - 0.76) = -0.05
    models = paper_picture()
    models["dice"]["value_sweep"]["dice"] = stat(
        [[0.85, 0.8, 0.70, 0.3, 0.03, 0.02, 0.01], [0.85, 0.8, 0.80, 0.3, 0.03, 0.02, 0.01]]
    )
    models["bce+dice"]["value_sweep"]["dice"] = stat(
        [[0.86, 0.85, 0.84, 0.7, 0.6, 0.5, 0.4], [0.86, 0.85, 0.76, 0.7, 0.6, 0.5, 0.4]]
    )
    c = next(c for c in check_claims(models, 5, 0.2) if c["claim"] == "fig2-dice-drops-faster")
    assert c["effect"]["per_seed"] == pytest.approx([0.13, -0.05])
    lo, hi = c["effect"]["interval"]
    assert c["verdict"] == "inconclusive" and lo < 0 < hi


def test_claims_missing_a_loss_are_not_tested():
    one = model(0.8, [0.8] * 7, [0.8] * 4, [0.8] * 3, shift=(0.0, 0.01))
    claims = check_claims({"bce": one, "dice": one}, 5, 0.2)
    # dice 0.8 is not > bce 0.8 on any seed: zero effect, touching 0
    assert claims[0]["verdict"] == "inconclusive"
    assert claims[1]["verdict"] == "not tested" and "needs the losses" in claims[1]["reason"]

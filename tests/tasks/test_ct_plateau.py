"""The GLF comparison's stopping rule, its claims by the shared rule, and the Fig. 6 check."""

from __future__ import annotations

import json
import math

import pytest

from keras_losses.adaptive.trajectory import summarize_trajectory
from tasks.ct.claims import judge_claims
from tasks.ct.plateau import PLATEAU_JSON, PlateauStop, plateau_reached, read_plateau, run_stopping
from tasks.ct.reproduction import parse_models


@pytest.mark.parametrize(
    "epoch, best_epoch, spe, patience, steps, expected",
    [
        (20, 10, 50, 10, 500, True),  # 10 validations and 500 steps behind
        (19, 10, 50, 10, 500, False),  # 9 validations behind
        (30, 10, 25, 10, 500, True),  # 20 validations of 25 steps = 500 steps
        (25, 10, 25, 10, 500, False),  # 15 validations but only 375 steps
        (10, 0, 50, 10, 500, True),  # no finite validation yet: counted from the start
    ],
)
def test_plateau_needs_both_patience_and_steps(epoch, best_epoch, spe, patience, steps, expected):
    assert plateau_reached(epoch, best_epoch, spe, patience, steps) is expected


class _Model:
    stop_training = False


def _feed(stopper, values):
    stopper.set_model(_Model())
    for epoch, value in enumerate(values):
        stopper.on_epoch_end(epoch, {"val_dice": value})
        if stopper.model.stop_training:
            return epoch + 1
    return None


def test_stops_at_the_plateau_and_records_where(tmp_path):
    stopper = PlateauStop(tmp_path, steps_per_epoch=50, patience=3, patience_steps=100, max_epochs=20)
    # best at epoch 2; equal values later do not count as better
    stopped = _feed(stopper, [0.1, 0.5, 0.5, 0.4, 0.5, 0.2])
    assert stopped == 5
    state = read_plateau(tmp_path)
    assert state["best_epoch"] == 2 and state["best_step"] == 100 and state["best_value"] == 0.5
    assert state["stopped"] == "plateau" and state["last_step"] == 250
    assert json.loads((tmp_path / PLATEAU_JSON).read_text()) == stopper.get_state()


def test_the_cap_is_recorded_and_the_state_resumes(tmp_path):
    stopper = PlateauStop(tmp_path, steps_per_epoch=10, patience=2, patience_steps=0, max_epochs=4)
    assert _feed(stopper, [0.1, 0.2]) is None
    resumed = PlateauStop(tmp_path, steps_per_epoch=10, patience=2, patience_steps=0, max_epochs=4)
    resumed.set_state(stopper.get_state())
    resumed.set_model(_Model())
    resumed.on_epoch_end(2, {"val_dice": 0.3})
    resumed.on_epoch_end(3, {"val_dice": 0.25})
    state = read_plateau(tmp_path)
    assert state["best_epoch"] == 3 and state["stopped"] == "max_steps" and state["max_steps"] == 40


def test_nan_validation_never_becomes_the_best(tmp_path):
    stopper = PlateauStop(None, steps_per_epoch=1, patience=2, patience_steps=0, max_epochs=9)
    assert _feed(stopper, [math.nan, 0.1, math.nan, math.nan]) == 4
    assert stopper.state["best_epoch"] == 2


def test_bad_stopping_arguments_are_refused():
    with pytest.raises(ValueError, match="patience must be >= 1"):
        PlateauStop(None, steps_per_epoch=50, patience=0, patience_steps=500, max_epochs=100)


def test_run_stopping_reads_history_without_a_plateau_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"steps_per_epoch": 50}))
    (tmp_path / "history.csv").write_text("epoch,val_dice\n1,0.1\n2,0.4\n3,0.3\n")
    assert run_stopping(tmp_path) == {
        "stopped": "epochs",
        "stopped_step": 150,
        "best_step": 100,
        "best_val_dice": 0.4,
    }


def test_models_flag():
    assert parse_models("G(D),D") == ("D", "G(D)")
    with pytest.raises(ValueError, match="--models"):
        parse_models("D,GD")


# ------------------------------------------------------------------ Fig. 6
def _rows(alpha_p, alpha_n, beta2):
    rows = []
    for i in range(len(alpha_p) - 1):
        rows.append(
            {
                "alpha_p": alpha_p[i],
                "alpha_n": alpha_n[i],
                "beta2": beta2[i],
                "next_alpha_p": alpha_p[i + 1],
                "next_alpha_n": alpha_n[i + 1],
                "next_beta2": beta2[i + 1],
            }
        )
    return rows


def test_coefficients_that_never_move_fail_the_fig6_check():
    n = 11
    frozen = _rows([1.0] * n, [1.0] * n, [1.0] + [3.0] * (n - 1))
    fig6 = summarize_trajectory(frozen)["fig6"]
    assert fig6["alphas_in_band_most_of_training"] and fig6["beta2_above_1_most_of_training"]
    assert fig6["moves"]["alpha_p"] == {"rises": 0, "falls": 0}
    assert not fig6["alphas_oscillate"] and not fig6["pattern_held"]


def test_alphas_that_rise_and_fall_around_1_pass_the_fig6_check():
    up_down = [1.0, 1.25, 1.0, 0.75, 1.0, 1.25, 1.0, 0.75, 1.0, 1.25, 1.0]
    rows = _rows(up_down, list(reversed(up_down)), [1.0] + [2.0] * 10)
    fig6 = summarize_trajectory(rows)["fig6"]
    assert fig6["moves"]["alpha_p"] == {"rises": 5, "falls": 5}
    assert fig6["alphas_oscillate"] and fig6["pattern_held"]
    # one alpha that only rose once (and never fell) does not oscillate
    once = _rows(up_down, [1.0] * 5 + [1.5] * 6, [2.0] * 11)
    assert not summarize_trajectory(once)["fig6"]["alphas_oscillate"]


# ------------------------------------------------------------------ claims by the shared rule
def _per_seed(values):
    """values[model] = (precision, recall, dice, tumour_free_dice) per seed, in %."""
    seeds = range(len(next(iter(values.values()))))
    keys = ("precision", "recall", "dice", "tumour_free_dice")
    return {
        s: {m: {k: v[s][i] / 100 for i, k in enumerate(keys)} for m, v in values.items()}
        for s in seeds
    }


def test_glf_claims_are_judged_by_the_shared_rule():
    per_seed = _per_seed(
        {
            "D": [(50, 80, 60, 20), (52, 81, 61, 22), (51, 79, 59, 21)],
            "E": [(50, 82, 60, 20), (50, 83, 60, 20), (50, 84, 60, 20)],
            "T": [(50, 70, 50, 10), (50, 72, 52, 12), (50, 71, 51, 11)],
            "G(D)": [(14, 95, 23, 2), (15, 94, 24, 3), (14, 96, 22, 2)],
            "G(E)": [(51, 90, 70, 30), (52, 92, 71, 35), (50, 91, 72, 33)],
        }
    )
    final = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 3.0}  # Tversky (0.5, 1.5)
    trajectories = {s: {"G(D)": {"final": final}, "G(E)": {"final": final}} for s in range(3)}
    claims = {c["claim"]: c for c in judge_claims(per_seed, trajectories, [0, 1, 2])}
    recall = claims["G(D) recall > best conventional recall"]
    assert recall["best_conventional"] == "E" and recall["verdict"] == "held"
    assert recall["effect"]["per_seed"] == pytest.approx([13, 11, 12])
    assert claims["G(D) Dice > every conventional loss"]["verdict"] == "not held"
    assert claims["G(E) Dice > every conventional loss"]["verdict"] == "held"
    assert claims["G(D) tumour-free Dice > T"]["verdict"] == "not held"
    # spreads 38, 37, 38 % points, far above 2
    assert claims["precision spread < 2 % points"]["verdict"] == "not held"
    end = claims["G(D) Fig. 7 end point"]
    assert end["end_points"] == [[0.5, 1.5]] * 3 and end["verdict"] == "not held"


def test_claims_without_their_models_are_not_tested():
    per_seed = _per_seed({"D": [(50, 80, 60, 20)] * 2, "G(D)": [(14, 95, 23, 2)] * 2})
    claims = {c["claim"]: c for c in judge_claims(per_seed, {}, [0, 1])}
    # two seeds of equal effect: zero spread, the point interval [15, 15] lies above 0
    assert claims["G(D) recall > best conventional recall"]["verdict"] == "held"
    assert claims["G(D) tumour-free Dice > T"]["verdict"] == "not tested"
    assert claims["precision spread < 2 % points"]["verdict"] == "not tested"
    assert claims["G(E) Fig. 7 end point"]["verdict"] == "not tested"

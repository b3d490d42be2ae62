"""Adaptive GLF training: the deterministic rule, logging, resume, figures, and the data and
U-Net helpers the exploratory tests share (test_adaptive_exploratory.py, test_adaptive_hybrid.py)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_losses
from architectures.unet import build_unet
from keras_losses.adaptive import (
    DeterministicGLFCallback,
    band_index,
    glf_statistics,
    plot_coefficients,
    plot_tversky_trajectory,
    prepare_adaptive_glf,
    read_trajectory,
    tversky_coordinates,
)

REPO = Path(__file__).resolve().parents[2]


def blobs(n=8, size=32, seed=0):
    """Images with small bright discs and their masks, shape (n, size, size, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    y = np.zeros((n, size, size, 1), "float32")
    for i in range(n):
        cy, cx = rng.integers(6, size - 6, 2)
        r = rng.integers(2, 5)
        y[i, ..., 0] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    x = (y + 0.3 * rng.standard_normal(y.shape)).astype("float32")
    return x, y


def tiny_unet(seed=1):
    keras.utils.set_random_seed(seed)
    return build_unet((32, 32, 1), depth=2, base_filters=4)


# ---------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    "ratio, band",
    [
        (0.01, 0),
        (1 / 15, 1),
        (0.1, 1),
        (1 / 5, 2),
        (1.0, 2),
        (5.0, 2),
        (10.0, 3),
        (15.0, 3),
        (16.0, 4),
    ],
)
def test_band_edges_are_symmetric_in_log_scale(ratio, band):
    thresholds = (1 / 15, 1 / 5, 5.0, 15.0)
    assert band_index(ratio, thresholds) == band
    assert band_index(1.0 / ratio, thresholds) == 4 - band


# Pooled counts of one batch (tp, fp, fn, images) -> expected factors (alpha_p, alpha_n, beta2).
# Hand computation with default thresholds (1/15, 1/5, 5, 15), statistic "pooled", guard
# "reversed" (freezes while FP/img < 5, FN/img < 1: NOT the paper's) and eps negligible.
# P/R ratio = (TP + alpha_n FN) / (TP + alpha_p FP) at coefficients (1, 1, 1).
RULE_CASES = [
    # TP/FP = 10/200 = 0.05 < 1/15 -> x0.5; TP/FN = 10/40 = 0.25 -> x1; P/R = 50/210 = 0.238 -> x1
    ((10.0, 200.0, 40.0, 4.0), (0.5, 1.0, 1.0)),
    # TP/FP = 100/10 = 10 -> x1.25; TP/FN = 100/5 = 20 -> x1.5; P/R = 105/110 -> x1
    ((100.0, 10.0, 5.0, 1.0), (1.25, 1.5, 1.0)),
    # TP/FP = 1/100 -> x0.5; TP/FN = 1/2 -> x1; P/R = 3/101 = 0.0297 < 1/15 -> beta2 x1.5
    ((1.0, 100.0, 2.0, 1.0), (0.5, 1.0, 1.5)),
    # guard: FP/img = 4/2 = 2 < 5 freezes alpha_p (TP/FP = 25 would give x1.5); FN/img = 0.5 < 1
    # freezes alpha_n; P/R = (100 + 1) / (100 + 4) -> x1
    ((100.0, 4.0, 1.0, 2.0), (1.0, 1.0, 1.0)),
    # P/R = (10 + 400) / (10 + 10) = 20.5 > 15 -> beta2 x0.5; TP/FP = 1 -> x1; TP/FN = 1/40 -> x0.5
    ((10.0, 10.0, 400.0, 1.0), (1.0, 0.5, 0.5)),
]
START = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}


@pytest.mark.parametrize("counts, factors", RULE_CASES)
def test_deterministic_rule_table(counts, factors):
    cb = DeterministicGLFCallback(
        keras_losses.GeneralizedLoss(), guard_mode="reversed", statistic="pooled"
    )
    new, stats, action = cb.next_coefficients(*counts, START)
    assert (new["alpha_p"], new["alpha_n"], new["beta2"]) == pytest.approx(factors)
    tp, fp, fn, _ = counts
    assert stats["tp_fp"] == pytest.approx(tp / fp)
    assert stats["rule_p"] == pytest.approx(tp / fp)
    assert stats["precision"] == pytest.approx(tp / (tp + fp))
    assert stats["recall"] == pytest.approx(tp / (tp + fn))
    assert action == " ".join(f"x{f:g}" for f in factors)


# Guard direction of each mode, on hand-made pooled counts (tp, fp, fn, images). Without a
# guard both cases move both alphas: EARLY has TP/FP = 10/200 < 1/15 (alpha_p x0.5) and
# TP/FN = 10/400 < 1/15 (alpha_n x0.5); LATE has TP/FP = 100/4 = 25 > 15 (x1.5) and
# TP/FN = 100/1 > 15 (x1.5).
EARLY = (10.0, 200.0, 400.0, 4.0)  # <FP> = 50 > 5, <FN> = 100 > 1
LATE = (100.0, 4.0, 1.0, 2.0)  # <FP> = 2 < 5, <FN> = 0.5 < 1
GUARD_CASES = [
    # Fig. 2 caption: "not updated when <FP> > 5 and <FN> > 1, respectively"
    ("literal", EARLY, (1.0, 1.0), "alpha_p alpha_n"),
    ("literal", LATE, (1.5, 1.5), ""),
    ("reversed", EARLY, (0.5, 0.5), ""),
    ("reversed", LATE, (1.0, 1.0), "alpha_p alpha_n"),
    ("off", EARLY, (0.5, 0.5), ""),
    ("off", LATE, (1.5, 1.5), ""),
    ("above", EARLY, (1.0, 1.0), "alpha_p alpha_n"),  # old name of "literal"
    ("below", LATE, (1.0, 1.0), "alpha_p alpha_n"),  # old name of "reversed"
]


@pytest.mark.parametrize("mode, counts, alphas, frozen", GUARD_CASES)
def test_guard_direction_of_each_mode(mode, counts, alphas, frozen):
    cb = DeterministicGLFCallback(
        keras_losses.GeneralizedLoss(), guard_mode=mode, statistic="pooled"
    )
    new, stats, _ = cb.next_coefficients(*counts, START)
    assert (new["alpha_p"], new["alpha_n"]) == alphas
    assert stats["guard"] == frozen


def test_guard_freezes_each_coefficient_on_its_own_count():
    cb = DeterministicGLFCallback(keras_losses.GeneralizedLoss(), statistic="pooled")
    assert cb.guard_mode == "literal"  # the paper's direction is the default
    # <FP> = 200/4 = 50 > 5 freezes alpha_p; <FN> = 0.5/4 <= 1 lets alpha_n move
    new, stats, _ = cb.next_coefficients(10.0, 200.0, 0.5, 4.0, START)
    assert stats["guard"] == "alpha_p"
    assert new["alpha_p"] == 1.0 and new["alpha_n"] == 1.5  # TP/FN = 20 > 15
    # <FP> = 20/4 = 5 exactly is not "> 5": alpha_p moves (TP/FP = 1/20 < 1/15 -> x0.5)
    new, stats, _ = cb.next_coefficients(1.0, 20.0, 0.5, 4.0, START)
    assert stats["guard"] == "" and new["alpha_p"] == 0.5  # TP/FP = 1/20 < 1/15


def test_guard_thresholds_scaled_by_area():
    loss = keras_losses.GeneralizedLoss()
    plain = DeterministicGLFCallback(loss, statistic="pooled")
    scaled = DeterministicGLFCallback(loss, statistic="pooled", guard_scale="area")
    # 128x128 = 1/16 of 512x512: thresholds 5/16 and 1/16 px per image
    assert scaled.guard_thresholds(128 * 128) == pytest.approx((5 / 16, 1 / 16))
    assert plain.guard_thresholds(128 * 128) == (5.0, 1.0)
    counts = (10.0, 8.0, 0.8, 4.0)  # <FP> = 2, <FN> = 0.2: under 5 and 1, over 5/16 and 1/16
    assert plain.next_coefficients(*counts, START, pixels_per_image=16384)[1]["guard"] == ""
    assert (
        scaled.next_coefficients(*counts, START, pixels_per_image=16384)[1]["guard"]
        == "alpha_p alpha_n"
    )
    with pytest.raises(ValueError, match="pixels per image"):
        scaled.next_coefficients(*counts, START)


def test_per_image_mean_and_pooled_ratio_differ_by_hand():
    # shape: 2 images. Image 1: TP 100, FP 1 (ratio 100); image 2: TP 0, FP 99 (ratio ~0).
    tp, fp, fn = [100.0, 0.0], [1.0, 99.0], [10.0, 0.0]
    loss = keras_losses.GeneralizedLoss()
    per_image = DeterministicGLFCallback(loss, guard_mode="off")
    pooled = DeterministicGLFCallback(loss, guard_mode="off", statistic="pooled")
    s_img = per_image.next_coefficients(tp, fp, fn, 2, START)[1]
    s_pool = pooled.next_coefficients(tp, fp, fn, 2, START)[1]
    eps = 1e-6
    assert s_img["rule_p"] == pytest.approx((100 / 1 + eps / (99 + eps)) / 2)  # 50: band 4
    assert s_pool["rule_p"] == pytest.approx(100 / 100)  # 1: band 2
    # image 2 has no tumour and no FN: its TP/FN is 0/0 -> 1 by the smoothing
    assert s_img["rule_n"] == pytest.approx((100 / 10 + 1.0) / 2)
    assert s_pool["rule_n"] == pytest.approx(100 / 10)
    assert per_image.next_coefficients(tp, fp, fn, 2, START)[0]["alpha_p"] == 1.5
    assert pooled.next_coefficients(tp, fp, fn, 2, START)[0]["alpha_p"] == 1.0
    # scalar sums need the per-image means for the per-image form
    with pytest.raises(ValueError, match="ratio_means"):
        per_image.next_coefficients(100.0, 100.0, 10.0, 2, START)


def test_loss_records_per_image_ratios_soft_and_hard():
    # shape: (2, 2, 2, 1)
    y = np.array([[[[1], [1]], [[0], [0]]], [[[0], [0]], [[0], [0]]]], "float32")
    p = np.array([[[[0.9], [0.4]], [[0.6], [0.1]]], [[[0.2], [0.7]], [[0.0], [0.0]]]], "float32")
    loss = keras_losses.GeneralizedLoss(alpha_p=0.5, alpha_n=2.0)
    loss.state.update_state(y, p)  # what the compiled state metric does after a step
    # soft: image 1 TP 1.3, FP 0.7, FN 0.7; image 2 TP 0, FP 0.9, FN 0
    # hard (> 0.5): image 1 TP 1, FP 1, FN 1; image 2 TP 0, FP 1, FN 0
    soft = ([1.3, 0.0], [0.7, 0.9], [0.7, 0.0])
    hard = ([1.0, 0.0], [1.0, 1.0], [1.0, 0.0])
    state = loss.state
    np.testing.assert_allclose(state.counts.numpy(), [1.3, 1.6, 0.7], rtol=1e-6)
    np.testing.assert_allclose(state.hard_counts.numpy(), [1.0, 2.0, 1.0], rtol=1e-6)
    assert float(state.num_images.numpy()) == 2.0 and float(state.num_pixels.numpy()) == 8.0
    for row, (tp, fp, fn) in enumerate((soft, hard)):
        tp, fp, fn = (np.array(v, "float64") for v in (tp, fp, fn))
        eps = 1e-6
        expected = [
            np.sum((tp + eps) / (fp + eps)),
            np.sum((tp + eps) / (fn + eps)),
            np.sum((tp + 2.0 * fn + eps) / (tp + 0.5 * fp + eps)),
        ]
        np.testing.assert_allclose(state.ratio_sums.numpy()[row], expected, rtol=1e-5)
        # the callback's per-image form reads the same means the numpy reference gives
        kind = "soft" if row == 0 else "hard"
        cb = DeterministicGLFCallback(loss, counts=kind, guard_mode="off")
        coefficients = {"alpha_p": 0.5, "alpha_n": 2.0, "beta2": 1.0}
        from_loss = cb.next_coefficients(
            *cb._read_batch()[:4], coefficients, ratio_means=cb._read_batch()[4]
        )[1]
        by_hand = cb.next_coefficients(tp, fp, fn, 2, coefficients)[1]
        for key in ("rule_p", "rule_n", "rule_b"):
            assert from_loss[key] == pytest.approx(by_hand[key], rel=1e-5)


def test_beta2_statistic_with_and_without_beta2():
    # P/R = (TP + FN) / (TP + FP) = 2 / 22 = 0.0909: band 1 (beta2 x1.25).
    # With beta2 = 10, beta2 P/R = 0.909: band 2 (x1), the relative weight is balanced.
    counts = (1.0, 21.0, 1.0, 1.0)
    coefficients = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 10.0}
    loss = keras_losses.GeneralizedLoss()
    p_r = DeterministicGLFCallback(
        loss, guard_mode="off", statistic="pooled", beta2_statistic="p_r"
    )
    weighted = DeterministicGLFCallback(loss, guard_mode="off", statistic="pooled")
    assert weighted.beta2_statistic == "beta2_p_r"  # the default, chosen by the ablation
    assert p_r.next_coefficients(*counts, coefficients)[0]["beta2"] == pytest.approx(12.5)
    new, stats, _ = weighted.next_coefficients(*counts, coefficients)
    assert new["beta2"] == 10.0 and stats["rule_b"] == pytest.approx(10 * 2 / 22)


def test_floor_and_ceiling_keep_a_long_run_alive():
    from keras_losses.adaptive.trajectory import LIMITS

    loss = keras_losses.GeneralizedLoss()
    cb = DeterministicGLFCallback(
        loss, guard_mode="off", statistic="pooled", beta2_statistic="p_r"
    )
    coefficients = dict(START)
    # TP/FP tiny (alpha_p x0.5), TP/FN huge (alpha_n x1.5), P/R huge (beta2 x0.5), forever:
    # without the limits beta2 reaches 0 in float32 after ~150 halvings
    states = []
    for _ in range(300):
        coefficients, stats, _ = cb.next_coefficients(1.0, 1e5, 1e-3, 1.0, coefficients)
        loss.set_coefficients(**coefficients)  # never raises: no coefficient reaches 0
        states.append((stats["alpha_p_bound"], stats["alpha_n_bound"], stats["beta2_bound"]))
    assert coefficients["alpha_p"] == pytest.approx(LIMITS[0])
    assert coefficients["beta2"] == pytest.approx(LIMITS[0])
    assert coefficients["alpha_n"] == pytest.approx(LIMITS[1])
    assert states[0] == ("", "", "") and states[-1] == ("floor", "ceiling", "floor")
    # a user clip is reported as lo/hi, not as the numeric floor/ceiling
    clipped = DeterministicGLFCallback(
        loss, guard_mode="off", statistic="pooled", bounds={"alpha_p": [0.1, 10]}
    )
    stats = clipped.next_coefficients(1.0, 1e5, 1e-3, 1.0, {**START, "alpha_p": 0.1})[1]
    assert stats["alpha_p_bound"] == "lo"


def test_trajectory_summary_counts_bounds_guard_and_fig6_band(tmp_path):
    from keras_losses.adaptive.trajectory import summarize_trajectory

    rows = [
        {"next_alpha_p": 1.0, "next_alpha_n": 1.0, "next_beta2": 2.0, "guard": "alpha_p"},
        {"next_alpha_p": 1e-6, "next_alpha_n": 0.7, "next_beta2": 3.0, "alpha_p_bound": "floor"},
        {"next_alpha_p": 0.1, "next_alpha_n": 5.0, "next_beta2": 0.5, "alpha_p_bound": "lo"},
        {"next_alpha_p": 1.2, "next_alpha_n": 1.0, "next_beta2": 1.5, "guard": "alpha_p alpha_n"},
    ]
    s = summarize_trajectory(rows)
    assert s["final"] == {"alpha_p": 1.2, "alpha_n": 1.0, "beta2": 1.5}
    assert s["at_bound_fraction"]["alpha_p"] == {"floor_or_ceiling": 0.25, "clip_bound": 0.25}
    assert s["max_at_bound_fraction"] == 0.5
    assert s["guard_fraction"] == {"alpha_p": 0.5, "alpha_n": 0.25}
    assert s["fig6"]["alpha_p_in_band_fraction"] == 0.5
    assert s["fig6"]["alpha_n_in_band_fraction"] == 0.75
    assert s["fig6"]["beta2_above_1_fraction"] == 0.75
    assert not s["fig6"]["alphas_in_band_most_of_training"]
    assert s["fig6"]["beta2_above_1_most_of_training"]
    # The path of a glf_trajectory.csv gives the same summary as its rows.
    import csv

    path = tmp_path / "glf_trajectory.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["next_alpha_p", "next_alpha_n", "next_beta2", "guard", "alpha_p_bound"])
        writer.writeheader()
        writer.writerows(rows)
    assert summarize_trajectory(path) == s
    assert summarize_trajectory(str(path)) == s


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"thresholds": (5, 1, 10, 15)}, "strictly increasing"),
        ({"alpha_p_factors": (1, 1, 1)}, "alpha_p_factors"),
        ({"guard_mode": "sideways"}, "guard_mode"),
        ({"statistic": "median"}, "statistic"),
        ({"counts": "fuzzy"}, "counts"),
        ({"beta2_statistic": "r_p"}, "beta2_statistic"),
        ({"guard_scale": "volume"}, "guard_scale"),
        ({"bounds": {"gamma": [1, 2]}}, "bounds"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeterministicGLFCallback(keras_losses.GeneralizedLoss(), **kwargs)


def test_callback_config_round_trip():
    loss = keras_losses.GeneralizedLoss(alpha_p=0.5, beta2=2.0)
    cb = DeterministicGLFCallback(
        loss,
        thresholds=(0.1, 0.5, 2, 10),
        guard_mode="reversed",
        statistic="pooled",
        counts="hard",
        beta2_statistic="beta2_p_r",
        guard_scale="area",
        bounds={"beta2": [0.1, 10]},
    )
    config = keras.saving.serialize_keras_object(cb)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert isinstance(restored, DeterministicGLFCallback)
    assert restored.get_config() == cb.get_config()
    assert restored.loss.coefficients == {"alpha_p": 0.5, "alpha_n": 1.0, "beta2": 2.0}


def test_statistics_formulas():
    s = glf_statistics(6.0, 2.0, 3.0, alpha_p=0.5, alpha_n=2.0, eps=0.0)
    assert s["p_r_ratio"] == pytest.approx((6 / (6 + 0.5 * 2)) / (6 / (6 + 2 * 3)))
    assert s["tp_fn"] == pytest.approx(2.0)


# ---------------------------------------------------------------------------- det in a real run
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_deterministic_run_logs_saves_and_resumes(tmp_path):
    from training.rundir import RunDir

    x, y = blobs(8)
    run = RunDir(tmp_path / "run")
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(
        tiny_unet(), loss, "det", keras.optimizers.Adam(1e-3), run_dir=run
    )
    # plain Keras fit on any backend (training.fit_model, TensorFlow's, has its own tests)
    history_csv = keras.callbacks.CSVLogger(str(run / "history.csv"))
    model.fit(
        x, y, batch_size=4, epochs=2, shuffle=False, validation_data=(x, y), verbose=0,
        callbacks=[*callbacks, history_csv],
    )
    model.save(run / "last.keras")

    rows = read_trajectory(run / "glf_trajectory.csv")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["alpha_p"] == rows[0]["alpha_n"] == rows[0]["beta2"] == 1.0  # starts at Dice
    # each step trains with the coefficients the previous step chose
    for prev, nxt in zip(rows[:-1], rows[1:], strict=True):
        assert [nxt[c] for c in ("alpha_p", "alpha_n", "beta2")] == pytest.approx(
            [prev[f"next_{c}"] for c in ("alpha_p", "alpha_n", "beta2")]
        )
    assert rows[0]["images"] == 4.0
    assert loss.coefficients == pytest.approx(
        {c: rows[-1][f"next_{c}"] for c in ("alpha_p", "alpha_n", "beta2")}, rel=1e-6
    )
    history = _read_csv(run / "history.csv")
    assert float(history[-1]["glf_alpha_p"]) == pytest.approx(
        loss.coefficients["alpha_p"], rel=1e-6
    )
    tb = list((run / "tensorboard" / "glf").glob("events.out.tfevents.*"))
    tags = {
        v.tag
        for f in tb
        for e in tf.compat.v1.train.summary_iterator(str(f))
        for v in e.summary.value
    }
    assert {"glf/alpha_p", "glf/tp_fp", "glf/p_r_ratio"} <= tags

    # the saved model keeps the coefficients
    saved = keras.saving.load_model(run / "last.keras")
    assert saved.loss.coefficients == loss.coefficients

    # resume: a fresh process would rebuild the loss at (1, 1, 1); the callback restores it
    state = json.loads((run / "glf_state.json").read_text())
    assert state["epochs"]["2"]["alpha_p"] == loss.coefficients["alpha_p"]
    resumed_run = RunDir(tmp_path / "run", resume=True)
    loss2 = keras_losses.GeneralizedLoss()
    model2, callbacks2 = prepare_adaptive_glf(
        tiny_unet(), loss2, "det", keras.optimizers.Adam(1e-3), run_dir=resumed_run
    )
    # simulate a run killed after epoch 1: BackupAndRestore would start at epoch index 1
    callbacks2[0].set_model(model2)
    callbacks2[0].on_train_begin()
    callbacks2[0].on_epoch_begin(1)
    assert loss2.coefficients == pytest.approx(
        {c: state["epochs"]["1"][c] for c in ("alpha_p", "alpha_n", "beta2")}
    )
    assert [r["iteration"] for r in callbacks2[0].rows] == [1, 2]


def test_deterministic_counts_are_the_batch_just_trained():
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    net = tiny_unet()
    # learning rate 0: the weights stay those the counts were computed with
    model, callbacks = prepare_adaptive_glf(net, loss, "det", keras.optimizers.SGD(0.0))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    row = callbacks[0].rows[0]
    p_train = keras.ops.convert_to_numpy(net(x, training=True))  # batch statistics, as in the step; weights unchanged
    assert row["tp"] == pytest.approx(float((p_train * y).sum()), rel=1e-4)
    assert row["fp"] == pytest.approx(float((p_train * (1 - y)).sum()), rel=1e-4)


def test_steps_per_execution_is_refused():
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(tiny_unet(), loss, "det", "adam")
    model.compile(optimizer="adam", loss=loss, metrics=[loss.state], steps_per_execution=2)
    with pytest.raises(ValueError, match="steps_per_execution=2"):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)


# ---------------------------------------------------------------------------- figures
def _synthetic_trajectory(path, rule):
    """A trajectory CSV from the rule alone, on counts that drift like early training."""
    from keras_losses.adaptive.trajectory import CSV_FIELDS

    coefficients = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    rows = []
    for it in range(1, 41):
        tp, fp, fn = 5.0 * it, 400.0 / it, 60.0 / it
        new, stats, action = rule.next_coefficients(tp, fp, fn, 4.0, coefficients)
        stats = {k: v for k, v in stats.items() if k in CSV_FIELDS}
        rows.append(
            {"iteration": it, "epoch": 1, "batch": it, **coefficients}
            | {f"next_{c}": v for c, v in new.items()}
            | {"action": action, "tp": tp, "fp": fp, "fn": fn, "images": 4.0, **stats, "score": ""}
        )
        coefficients = new
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_figures_from_trajectories(tmp_path):
    loss = keras_losses.GeneralizedLoss()
    csvs = {
        "det": _synthetic_trajectory(
            tmp_path / "a.csv", DeterministicGLFCallback(loss, statistic="pooled")
        ),
        "det-reversed-guard": _synthetic_trajectory(
            tmp_path / "b.csv",
            DeterministicGLFCallback(loss, guard_mode="reversed", statistic="pooled"),
        ),
    }
    assert read_trajectory(csvs["det-reversed-guard"])[-1]["next_alpha_p"] != 1.0
    fig6 = plot_coefficients(csvs, tmp_path / "fig6.png")
    fig7 = plot_tversky_trajectory(csvs, tmp_path / "fig7.png")
    for png in (fig6, fig7):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        plot_coefficients({"x": tmp_path / "missing.csv"}, tmp_path / "bad.png")


def test_tversky_coordinates():
    a, b = tversky_coordinates(1.0, 1.0, 1.0)
    assert (a, b) == (1.0, 1.0)  # Dice
    a, b = tversky_coordinates(1.0, 1.0, 3.0)
    assert a + b == pytest.approx(2.0)  # Effectiveness line
    assert (a, b) == pytest.approx((0.5, 1.5))


# ---------------------------------------------------------------------------- tf.distribute
@pytest.mark.slow
def test_mirrored_strategy_uses_global_counts(tmp_path):
    """Two logical CPU replicas: the rule sees the counts of the global batch."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_losses
        from architectures.unet import build_unet
        from keras_losses.adaptive import prepare_adaptive_glf
        rng = np.random.default_rng(0)
        y = (rng.random((8, 16, 16, 1)) > 0.8).astype("float32")
        x = rng.random((8, 16, 16, 1)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            net = build_unet((16, 16, 1), depth=1, base_filters=2, batch_norm=False)
            loss = keras_losses.GeneralizedLoss()
            model, cbs = prepare_adaptive_glf(net, loss, "det", keras.optimizers.SGD(0.0))
        p = net.predict(x, verbose=0)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=cbs)
        row = cbs[0].rows[0]
        print("GLOBAL", row["tp"], float((p * y).sum()), row["images"], row["next_alpha_p"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        # a tf.distribute test: TensorFlow whatever backend the suite runs under
        env={
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(REPO),
        },
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("GLOBAL")]
    assert line, out.stderr[-3000:]
    tp_rule, tp_numpy, images, _ = (float(v) for v in line[0].split()[1:])
    assert images == 8.0
    assert tp_rule == pytest.approx(tp_numpy, rel=1e-4)
    assert math.isfinite(tp_rule)

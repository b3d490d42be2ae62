"""Adaptive GLF training: the deterministic rule, the exploratory search, logging, resume, figures."""

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
    ACTIONS,
    DeterministicGLFCallback,
    ExploratoryGLFModel,
    band_index,
    glf_count_derivatives,
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
# Hand computation with default thresholds (1/15, 1/5, 5, 15), guard "below" (FP/img < 5, FN/img < 1)
# and eps negligible. P/R ratio = (TP + alpha_n FN) / (TP + alpha_p FP) at coefficients (1, 1, 1).
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


@pytest.mark.parametrize("counts, factors", RULE_CASES)
def test_deterministic_rule_table(counts, factors):
    cb = DeterministicGLFCallback(keras_losses.GeneralizedLoss())
    start = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    new, stats, action = cb.next_coefficients(*counts, start)
    assert (new["alpha_p"], new["alpha_n"], new["beta2"]) == pytest.approx(factors)
    tp, fp, fn, _ = counts
    assert stats["tp_fp"] == pytest.approx(tp / fp)
    assert stats["precision"] == pytest.approx(tp / (tp + fp))
    assert stats["recall"] == pytest.approx(tp / (tp + fn))
    assert action == " ".join(f"x{f:g}" for f in factors)


def test_guard_modes_and_bounds():
    loss = keras_losses.GeneralizedLoss()
    start = {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    counts = (100.0, 4.0, 1.0, 2.0)  # FP/img = 2, FN/img = 0.5: tiny, the ratios explode
    literal = DeterministicGLFCallback(loss, guard_mode="above")
    assert literal.next_coefficients(*counts, start)[0]["alpha_p"] == 1.5
    off = DeterministicGLFCallback(loss, guard_mode="off")
    assert off.next_coefficients(*counts, start)[0]["alpha_n"] == 1.5
    # the literal guard freezes alpha_p when FP/img > 5 (here 200/4 = 50), where the
    # default lets it move
    early = (10.0, 200.0, 40.0, 4.0)
    assert literal.next_coefficients(*early, start)[0]["alpha_p"] == 1.0
    bounded = DeterministicGLFCallback(loss, guard_mode="off", bounds={"alpha_n": [0.5, 1.2]})
    assert bounded.next_coefficients(*counts, start)[0]["alpha_n"] == pytest.approx(1.2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"thresholds": (5, 1, 10, 15)}, "strictly increasing"),
        ({"alpha_p_factors": (1, 1, 1)}, "alpha_p_factors"),
        ({"guard_mode": "sideways"}, "guard_mode"),
        ({"bounds": {"gamma": [1, 2]}}, "bounds"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeterministicGLFCallback(keras_losses.GeneralizedLoss(), **kwargs)


def test_callback_config_round_trip():
    loss = keras_losses.GeneralizedLoss(alpha_p=0.5, beta2=2.0)
    cb = DeterministicGLFCallback(
        loss, thresholds=(0.1, 0.5, 2, 10), guard_mode="above", bounds={"beta2": [0.1, 10]}
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


def test_count_derivatives_match_autodiff():
    tp, fp, y_sum = tf.Variable(12.0), tf.Variable(30.0), 20.0
    coeffs = np.array([[1.0, 1.0, 1.0], [0.5, 2.0, 1.5], [1.3, 0.7, 0.2]], "float32")
    d_tp, d_fp = glf_count_derivatives(
        tp, fp, y_sum - tp, coeffs[:, 0], coeffs[:, 1], coeffs[:, 2], 1e-6
    )
    for i, (ap, an, b2) in enumerate(coeffs):
        with tf.GradientTape() as tape:
            loss = keras_losses.GeneralizedLoss.from_counts(tp, fp, y_sum - tp, ap, an, b2, 1e-6)
        g_tp, g_fp = tape.gradient(loss, [tp, fp])
        np.testing.assert_allclose([d_tp[i], d_fp[i]], [g_tp, g_fp], rtol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.Adam(1e-2),
        lambda: keras.optimizers.Adam(1e-2, amsgrad=True),
        lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
        lambda: keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.SGD(1e-2),
    ],
)
def test_closed_form_candidate_update_matches_the_optimizer(make):
    net = build_unet((16, 16, 1), depth=1, base_filters=2, batch_norm=False)
    model = ExploratoryGLFModel(net)
    model.compile(optimizer=make(), loss=keras_losses.GeneralizedLoss())
    variables = net.trainable_variables
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second step has non-zero moments
        grads = [tf.constant(rng.standard_normal(v.shape), tf.float32) for v in variables]
        if not model.optimizer.built:
            model.optimizer.build(variables)
        predicted = [np.array(w) for w in model._candidate_weights(grads, variables)]
        model.optimizer.apply(grads, variables)
        for p, v in zip(predicted, variables, strict=True):
            np.testing.assert_allclose(p, v.numpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- exploratory search
def test_exact_search_equals_naive_27_copy_reference():
    x, y = blobs(8)
    runs = {}
    for rule in ("exp", "exp-naive"):
        loss = keras_losses.GeneralizedLoss()
        model, callbacks = prepare_adaptive_glf(
            tiny_unet(), loss, rule, keras.optimizers.Adam(1e-2)
        )
        history = model.fit(
            x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks
        )
        runs[rule] = (callbacks[0].rows, model.network.get_weights(), loss.coefficients, history)
    exact_rows, exact_w, exact_c, _ = runs["exp"]
    naive_rows, naive_w, naive_c, _ = runs["exp-naive"]
    steps, lr = 4, 1e-2
    assert len(exact_rows) == steps
    # the search must choose exactly the same action at every step, and a real one:
    # (1, 1, 1) unchanged after 4 steps would let a search that never moves pass
    assert [r["action"] for r in exact_rows] == [r["action"] for r in naive_rows]
    assert exact_c != pytest.approx({"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0})
    # Weights: the two paths sum the same float32 gradients in a different order, and oneDNN
    # picks the order per CPU. Adam normalises each update to about lr, so a gradient within
    # rounding of zero can move a weight by up to lr either way: one weight of 2,304 differed
    # by 1.06e-5 on another machine. Allow 0.1 % of the largest possible movement per step;
    # a wrong action or a wrong gradient moves weights by O(lr) = 1e-2.
    atol = steps * lr * 1e-3  # 4e-5
    for a, b in zip(exact_w, naive_w, strict=True):  # includes batch-norm moving statistics
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)
    assert exact_c == pytest.approx(naive_c, rel=1e-6)
    for a, b in zip(exact_rows, naive_rows, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)


def test_candidate_scores_leave_state_alone_and_first_order_is_close():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        tiny_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.Adam(1e-3)
    )
    before = [w.copy() for w in model.get_weights()]
    exact, first = (np.array(s) for s in model.candidate_scores(x, y))
    assert exact.shape == first.shape == (len(ACTIONS),)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # a small step: the linearisation is accurate to well under the spread of the scores
    np.testing.assert_allclose(first, exact, rtol=1e-3)


def test_exploratory_refuses_what_it_cannot_do_exactly():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        tiny_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.RMSprop()
    )
    with pytest.raises(ValueError, match="RMSprop"):
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match="per_image"):
        prepare_adaptive_glf(
            tiny_unet(), keras_losses.GeneralizedLoss(per_image=True), "exp", "adam"
        )[0].train_on_batch(x, y)
    with pytest.raises(ValueError, match="rule"):
        prepare_adaptive_glf(tiny_unet(), keras_losses.GeneralizedLoss(), "greedy", "adam")


def test_exploratory_model_saves_and_reloads(tmp_path):
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(
        tiny_unet(), loss, "exp-first-order", "adam", run_dir=tmp_path
    )
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    assert loss.coefficients != {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded, ExploratoryGLFModel) and reloaded.mode == "first-order"
    assert reloaded.loss.coefficients == loss.coefficients
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


# ---------------------------------------------------------------------------- det in a real run
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_deterministic_run_logs_saves_and_resumes(tmp_path):
    from training.fit import fit_model
    from training.rundir import RunDir

    x, y = blobs(8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    run = RunDir(tmp_path / "run")
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(
        tiny_unet(), loss, "det", keras.optimizers.Adam(1e-3), run_dir=run
    )
    fit_model(
        model, ds, ds, run_dir=run, epochs=2, callbacks=callbacks, tensorboard=False, verbose=0
    )

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
    p_train = net(x, training=True).numpy()  # batch statistics, as in the step; weights unchanged
    assert row["tp"] == pytest.approx(float((p_train * y).sum()), rel=1e-4)
    assert row["fp"] == pytest.approx(float((p_train * (1 - y)).sum()), rel=1e-4)


def test_steps_per_execution_is_refused():
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(tiny_unet(), loss, "det", "adam")
    model.compile(optimizer="adam", loss=loss, steps_per_execution=2)
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
        "det": _synthetic_trajectory(tmp_path / "a.csv", DeterministicGLFCallback(loss)),
        "det-literal-guard": _synthetic_trajectory(
            tmp_path / "b.csv", DeterministicGLFCallback(loss, guard_mode="above")
        ),
    }
    assert read_trajectory(csvs["det"])[-1]["next_alpha_p"] != 1.0
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
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)},
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("GLOBAL")]
    assert line, out.stderr[-3000:]
    tp_rule, tp_numpy, images, _ = (float(v) for v in line[0].split()[1:])
    assert images == 8.0
    assert tp_rule == pytest.approx(tp_numpy, rel=1e-4)
    assert math.isfinite(tp_rule)

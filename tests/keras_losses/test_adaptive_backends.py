"""Both adaptive GLF rules in compiled training on the backend under test (KERAS_BACKEND), and
the same values under TensorFlow and JAX; the rules' checks before training starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_losses
from keras_losses.adaptive import (
    DeterministicGLFCallback,
    ExploratoryGLFLogger,
    ExploratoryGLFModel,
    prepare_adaptive_glf,
)
from tests.keras_losses.conftest import needs_search_backend
from tests.keras_losses.test_adaptive import blobs, tiny_unet

REPO = Path(__file__).resolve().parents[2]
COEFFICIENTS = ("alpha_p", "alpha_n", "beta2")


class StateBeforeEachStep(keras.callbacks.Callback):
    """The network's weights and non-trainable state at the start of every train batch."""

    def __init__(self, network):
        super().__init__()
        self.network, self.states = network, []

    def on_train_batch_begin(self, batch, logs=None):
        self.model  # noqa: B018  (under JAX: writes the train state back to the variables)
        self.states.append(
            (
                [keras.ops.convert_to_numpy(v) for v in self.network.trainable_variables],
                [keras.ops.convert_to_numpy(v) for v in self.network.non_trainable_variables],
            )
        )


def glf_gradient(network, weights, non_trainable, x, y, coefficients):
    """d GLF / d weights for the training forward pass, on the backend under test."""
    loss = keras_losses.GeneralizedLoss(**coefficients)

    def value(w):
        p, _ = network.stateless_call(w, non_trainable, x, training=True)
        return loss(y, p)

    if keras.backend.backend() == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(value)([np.asarray(w) for w in weights])]
    if keras.backend.backend() == "torch":
        import torch

        w = [torch.tensor(np.asarray(v), requires_grad=True) for v in weights]
        value(w).backward()
        return [g.detach().numpy() for g in (t.grad for t in w)]
    import tensorflow as tf

    w = [tf.constant(v) for v in weights]
    with tf.GradientTape() as tape:
        tape.watch(w)
        out = value(w)
    return [g.numpy() for g in tape.gradient(out, w)]


@pytest.mark.parametrize("rule", ["det", pytest.param("exp", marks=needs_search_backend)])
def test_compiled_fit_adapts_and_the_new_coefficients_reach_the_gradient(rule):
    """model.fit in compiled mode (no run_eagerly): the coefficients change across steps, and
    each step's weight update is the gradient of the GLF under the coefficients the rule set,
    not under the start values (what a loss whose variables a compiled step froze would give)."""
    x, y = blobs(8)
    lr = 0.05
    net = tiny_unet()
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(net, loss, rule, keras.optimizers.SGD(lr))
    assert not model.run_eagerly
    states = StateBeforeEachStep(net)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[*callbacks, states])
    rows = callbacks[0].rows
    assert len(rows) == 4
    trained_with = [tuple(r[c] for c in COEFFICIENTS) for r in rows]
    assert len(set(trained_with)) > 1, trained_with  # the coefficients changed across steps
    for prev, row in zip(rows[:-1], rows[1:], strict=True):  # each step used the rule's choice
        assert [row[c] for c in COEFFICIENTS] == pytest.approx(
            [prev[f"next_{c}"] for c in COEFFICIENTS], rel=1e-6
        )
    final = [keras.ops.convert_to_numpy(v) for v in net.trainable_variables]
    # the last step: its weights before and after, and the coefficients its update used (the
    # deterministic rule trains with the current ones; the search steps with its chosen action)
    step = len(rows) - 1
    key = "" if rule == "det" else "next_"
    coefficients = {c: rows[step][f"{key}{c}"] for c in COEFFICIENTS}
    assert coefficients != {c: 1.0 for c in COEFFICIENTS}
    weights, non_trainable = states.states[step]
    xb, yb = x[4:], y[4:]  # the last batch (shuffle=False)
    adapted = glf_gradient(net, weights, non_trainable, xb, yb, coefficients)
    start = glf_gradient(net, weights, non_trainable, xb, yb, {c: 1.0 for c in COEFFICIENTS})
    moved = np.concatenate([(w1 - w0).ravel() for w0, w1 in zip(weights, final, strict=True)])
    expected = -lr * np.concatenate([g.ravel() for g in adapted])
    frozen = -lr * np.concatenate([g.ravel() for g in start])
    scale = np.abs(expected).max()
    assert np.abs(expected - frozen).max() > 0.05 * scale  # the coefficients matter here
    np.testing.assert_allclose(moved, expected, atol=1e-3 * scale)


# ---------------------------------------------------------------------------- the same values
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    import keras_losses
    from keras_losses.adaptive import prepare_adaptive_glf
    from tests.keras_losses.test_adaptive import blobs, tiny_unet

    x, y = blobs(8)
    out = {}
    for rule in ("det", "exp"):
        loss = keras_losses.GeneralizedLoss()
        model, callbacks = prepare_adaptive_glf(
            tiny_unet(), loss, rule, keras.optimizers.Adam(1e-2)
        )
        if rule == "exp":
            exact, first = model.candidate_scores(x[:4], y[:4])
            out["scores"] = [np.asarray(exact).tolist(), np.asarray(first).tolist()]
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                            callbacks=callbacks)
        out[rule] = {
            "rows": [{k: r[k] for k in ("alpha_p", "alpha_n", "beta2", "next_alpha_p",
                      "next_alpha_n", "next_beta2", "action", "tp", "fp", "fn")}
                     for r in callbacks[0].rows],
            "loss": [float(v) for v in history.history["loss"]],
        }
    print("RESULT", json.dumps(out))
    """
)


def run_under(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, env=env, timeout=900
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stderr[-3000:]
    return json.loads(line[0][len("RESULT ") :])


@pytest.mark.slow
def test_tensorflow_and_jax_give_the_same_adaptive_training():
    tf_run, jax_run = run_under("tensorflow"), run_under("jax")
    # the 27 candidate scores of the first step (float32 through two compilers)
    for a, b in zip(tf_run["scores"], jax_run["scores"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    for rule in ("det", "exp"):
        for a, b in zip(tf_run[rule]["rows"], jax_run[rule]["rows"], strict=True):
            assert a["action"] == b["action"]
            for key in ("alpha_p", "alpha_n", "beta2", "next_alpha_p", "next_alpha_n", "next_beta2"):
                assert a[key] == pytest.approx(b[key], rel=1e-6)
            for key in ("tp", "fp", "fn"):
                assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-3)
        np.testing.assert_allclose(tf_run[rule]["loss"], jax_run[rule]["loss"], rtol=1e-3)


# ---------------------------------------------------------------------------- checks
def test_deterministic_callback_refuses_a_model_trained_with_another_loss():
    x, y = blobs(4)
    ours = keras_losses.GeneralizedLoss()
    for compiled in (keras_losses.GeneralizedLoss(), keras.losses.BinaryCrossentropy()):
        net = tiny_unet()
        net.compile(optimizer="adam", loss=compiled, metrics=[ours.state])
        with pytest.raises(ValueError, match="does not contain that loss object"):
            net.fit(x, y, epochs=1, verbose=0, callbacks=[DeterministicGLFCallback(ours)])
        assert ours.coefficients == {c: 1.0 for c in COEFFICIENTS}


def test_deterministic_callback_refuses_a_loss_whose_state_is_not_compiled():
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    net = tiny_unet()
    net.compile(optimizer="adam", loss=loss)
    with pytest.raises(ValueError, match=r"loss\.state"):
        net.fit(x, y, epochs=1, verbose=0, callbacks=[DeterministicGLFCallback(loss)])


def test_deterministic_callback_accepts_the_loss_as_a_term():
    x, y = blobs(4)
    glf = keras_losses.GeneralizedLoss()
    combined = keras_losses.CombinedLoss([keras.losses.BinaryCrossentropy(), glf])
    net = tiny_unet()
    net.compile(optimizer="adam", loss=combined, metrics=[glf.state])
    callback = DeterministicGLFCallback(glf)
    net.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.rows[0]["tp"] > 0  # the state recorded the batch


@needs_search_backend
def test_exploratory_logger_refuses_another_loss():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        tiny_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.Adam(1e-3)
    )
    with pytest.raises(ValueError, match="does not contain that loss object"):
        model.fit(
            x, y, epochs=1, verbose=0, callbacks=[ExploratoryGLFLogger(keras_losses.GeneralizedLoss())]
        )


@needs_search_backend
def test_exploratory_compile_carries_the_state_and_drops_a_detached_one():
    loss = keras_losses.GeneralizedLoss()
    model = ExploratoryGLFModel(tiny_unet())
    stale = keras_losses.GLFState()
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy", stale])
    from keras_losses.adaptive.compiled import compiled_metrics

    metrics = compiled_metrics(model)
    assert any(m is loss.state for m in metrics) and not any(m is stale for m in metrics)




@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_exploratory_refuses_other_backends(monkeypatch, backend):
    """Under a backend the search does not support, compile() refuses before any training (not
    a search whose coefficients silently stop changing); runs on every backend."""
    model = ExploratoryGLFModel(tiny_unet())
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    with pytest.raises(ValueError, match=f"TensorFlow and JAX backends; the Keras backend is '{backend}'"):
        model.compile(optimizer="adam", loss=keras_losses.GeneralizedLoss())

"""fit_model in this process: refusals under a strategy, resume bookkeeping, the custom loop."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_losses import GeneralizedLoss
from training.fit import fit_model, loss_variables
from training.rundir import RunDir


def data(n=16, batch=4):
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 1), dtype=np.float32)
    y = (x > 0.7).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def model_and_loss(**compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")]
    )
    loss = GeneralizedLoss(alpha_p=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, **compile_kwargs)
    return model, loss


class Counter(keras.callbacks.Callback):
    """A callback with resumable state, and a GLF coefficient it changes every batch."""

    def __init__(self, loss):
        super().__init__()
        self.loss, self.batches = loss, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        self.loss.set_coefficients(beta2=1.0 + 0.1 * self.batches)

    def get_state(self):
        return {"batches": self.batches}

    def set_state(self, state):
        self.batches = state["batches"]


@pytest.fixture(scope="module")
def mirrored():
    return tf.distribute.MirroredStrategy(devices=["/cpu:0"])


@pytest.mark.parametrize(
    "compile_kwargs, message",
    [
        ({"jit_compile": True}, "jit_compile=True fails under MirroredStrategy"),
        ({"steps_per_execution": 4}, "steps_per_execution=4 fails under MirroredStrategy"),
    ],
)
def test_refuses_what_fails_under_a_strategy(tmp_path, mirrored, compile_kwargs, message):
    with mirrored.scope():
        model, _ = model_and_loss(**compile_kwargs)
    with pytest.raises(ValueError, match=message):
        fit_model(model, data(), None, run_dir=RunDir(tmp_path / "run"), epochs=1, verbose=0)


def test_refuses_a_model_built_outside_the_given_strategy(tmp_path, mirrored):
    model, _ = model_and_loss()
    with pytest.raises(
        ValueError, match="build and compile the model inside `with strategy.scope\\(\\):`"
    ):
        fit_model(
            model,
            data(),
            None,
            run_dir=RunDir(tmp_path / "run"),
            epochs=1,
            strategy=mirrored,
            verbose=0,
        )


def test_resume_restores_loss_variables_and_callback_state(tmp_path):
    model, loss = model_and_loss()
    # the GLF's coefficients (its per-batch statistics live in loss.state, rewritten every step)
    assert {"loss/alpha_p_var", "loss/alpha_n_var", "loss/beta2_var"} <= set(
        loss_variables(model)
    )
    fit_model(
        model,
        data(),
        data(),
        run_dir=RunDir(tmp_path / "run"),
        epochs=2,
        callbacks=[Counter(loss)],
        verbose=0,
    )
    assert loss.coefficients["beta2"] == pytest.approx(1.8)  # 8 batches

    # A new process would build a fresh model: its coefficients and counter start over,
    # and come back from the backup (beta2 = 1.8 after 8 batches, alpha_p = 0.5).
    model2, loss2 = model_and_loss()
    loss2.set_coefficients(alpha_p=3.0)
    counter = Counter(loss2)
    history = fit_model(
        model2,
        data(),
        data(),
        run_dir=RunDir(tmp_path / "run", resume=True),
        epochs=3,
        callbacks=[counter],
        verbose=0,
    )
    assert history.epoch == [2]  # only the third epoch trained
    assert counter.batches == 12 and loss2.coefficients["beta2"] == pytest.approx(2.2)
    assert loss2.coefficients["alpha_p"] == 0.5
    assert int(model2.optimizer.iterations.numpy()) == 12
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    latest = json.loads((tmp_path / "run" / "backup" / "latest.json").read_text())
    assert (
        latest["epoch"] == 3
        and (tmp_path / "run" / "backup" / latest["dir"] / "model.weights.h5").is_file()
    )
    assert sorted(p.name for p in (tmp_path / "run" / "backup").iterdir()) == sorted(
        [latest["dir"], "latest.json"]
    )


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    model, _ = model_and_loss()
    fit_model(
        model, data(), None, run_dir=RunDir(tmp_path / "run"), epochs=1, monitor="loss", verbose=0
    )
    weights = model.get_weights()
    model2, _ = model_and_loss()
    history = fit_model(
        model2,
        data(),
        None,
        run_dir=RunDir(tmp_path / "run", resume=True),
        epochs=1,
        monitor="loss",
        verbose=0,
    )
    assert history.epoch == []
    for a, b in zip(weights, model2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_custom_loop_accepts_a_dataset_function(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 1), dtype=np.float32)
    y = (x > 0.7).astype(np.float32)

    def dataset_fn(ctx):  # per-replica batches, sharded by the pipeline itself
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shard(
            ctx.num_input_pipelines, ctx.input_pipeline_id
        )
        return ds.batch(ctx.get_per_replica_batch_size(4))

    model, _ = model_and_loss()
    with pytest.raises(ValueError, match="a dataset function needs its number of steps per epoch"):
        fit_model(
            model,
            dataset_fn,
            None,
            run_dir=RunDir(tmp_path / "a"),
            epochs=1,
            loop="custom",
            verbose=0,
        )
    history = fit_model(
        model,
        dataset_fn,
        None,
        run_dir=RunDir(tmp_path / "b"),
        epochs=2,
        loop="custom",
        steps_per_epoch=4,
        monitor="loss",
        verbose=0,
        global_batch_size=4,
    )
    assert len(history.history["loss"]) == 2 and int(model.optimizer.iterations.numpy()) == 8

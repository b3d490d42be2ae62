"""A run killed at any point and resumed equals the uninterrupted run, bitwise on the CPU.

Each run is a real process (``RUNNER`` below) that trains a small model with dropout and
batch norm on data the pipeline reshuffles every epoch, with TensorFlow's op determinism on,
so the uninterrupted run is repeatable bit for bit on one machine. A run SIGKILLs itself after
a given number of training batches; ``--resume`` then continues from the last backup. The
final weights (model and optimizer), the step counter and the history must equal those of
the uninterrupted run exactly: the resumed run must see the same batches in the same order,
draw the same dropout masks and continue the optimizer's step count.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EPOCHS, BATCHES = 4, 5  # 5 batches per epoch: 18 examples in batches of 4 (the last one partial)

RUNNER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    out, resume, kill_after, steps = sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
    EPOCHS = int(sys.argv[6])
    import keras, numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    from tasks.common import seed_everything
    from training import fit
    from training.rundir import RunDir

    seed_everything(3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(18, 6)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(18, seed=1, reshuffle_each_iteration=True).batch(4)
    if steps != "all":
        data = data.repeat()  # an endless stream with a fixed number of steps per epoch
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    count = [0]

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            count[0] += 1
            if count[0] == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    fit.fit_model(
        model, data, None, run_dir=RunDir(out, resume=resume), epochs=EPOCHS, monitor="loss",
        callbacks=[Kill()], steps_per_epoch=None if steps == "all" else int(steps), verbose=0,
        tensorboard=False,
    )
    np.savez(os.path.join(out, "final.npz"), *[np.asarray(v) for v in model.variables],
             *[np.asarray(v) for v in model.optimizer.variables])
    """
)


def run(tmp_path: Path, out: Path, *, resume=False, kill_after=0, steps="all"):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, str(script), str(REPO), str(out), "1" if resume else "0", str(kill_after), steps, str(EPOCHS)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def final_state(out: Path) -> list[np.ndarray]:
    with np.load(out / "final.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def history(out: Path) -> list[dict]:
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "steps, kill_after",
    [
        ("all", 2 * BATCHES + 2),  # in epoch 3 of 4: the backup of epoch 2 is the last one
        pytest.param("3", 3 + 1, marks=pytest.mark.slow),  # endless stream, killed in epoch 2
    ],
    ids=["reshuffled-passes", "endless-stream"],
)
def test_killed_and_resumed_run_equals_the_uninterrupted_run(tmp_path, steps, kill_after):
    whole = run(tmp_path, tmp_path / "whole", steps=steps)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run(tmp_path, tmp_path / "resumed", kill_after=kill_after, steps=steps)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run(tmp_path, tmp_path / "resumed", resume=True, steps=steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "resumed")
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(u, v, err_msg=f"variable {i} differs after resume")
    assert history(tmp_path / "whole") == history(tmp_path / "resumed")

"""``train.py`` as a user runs it: killed at every stage and resumed, ``--overwrite``,
``--strategy``, and a NaN loss.

A kill is a real SIGKILL of a ``train.py`` process, sent by the process itself at a fixed
point (a marker) so that no test depends on timing: during an epoch (after a given batch),
right after the last epoch's backup was written, and during the evaluation (before its first
figure). The resume then runs in this process through the same wrapper ``__main__`` uses.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import train
from training import cli

REPO = Path(__file__).resolve().parents[1]
EPOCHS, STEPS = 2, 3
TINY = ["--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", str(EPOCHS),
        "--steps-per-epoch", str(STEPS), "--batch-size", "4", "--no-augment"]  # fmt: skip

# Runs train.py's main in a process that SIGKILLs itself at a marker:
#   batch N       after the N-th training batch (counted over the whole run)
#   backup N      right after the backup of epoch N was written
#   evaluation 0  before the first figure of the test evaluation (eval/) is written
#   devices N     no kill; N logical CPU devices (for --strategy mirrored)
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    stage, at, argv = sys.argv[2], int(sys.argv[3]), sys.argv[4:]

    def kill():
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "devices":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * at)
    from core import io  # every figure is written through core.io.save_figure
    from training import fit

    if stage == "batch":
        count = [0]
        original_batch_end = fit.StopOnNonFinite.on_train_batch_end

        def on_train_batch_end(self, batch, logs=None):
            original_batch_end(self, batch, logs)
            count[0] += 1
            if count[0] == at:
                kill()

        fit.StopOnNonFinite.on_train_batch_end = on_train_batch_end
    if stage == "backup":
        original_epoch_end = fit.RunBackup.on_epoch_end

        def on_epoch_end(self, epoch, logs=None):
            original_epoch_end(self, epoch, logs)
            if epoch + 1 == at:
                kill()

        fit.RunBackup.on_epoch_end = on_epoch_end
    if stage == "evaluation":
        original_save_figure = io.save_figure

        def save_figure(fig, path, *args, **kwargs):
            if Path(path).parent.name == "eval":
                kill()
            return original_save_figure(fig, path, *args, **kwargs)

        io.save_figure = save_figure

    import train
    from training import cli

    sys.exit(cli.run(train.main, argv))
    """
)


def argv_of(patch_dir: Path, out: Path, *extra) -> list[str]:
    return ["--task", "lung", "--loss", "glf-det", "--data-dir", str(patch_dir), "--out", str(out),
            *TINY, *extra]  # fmt: skip


def run_until(tmp_path: Path, stage: str, at: int, argv) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(driver), str(REPO), stage, str(at), *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def trajectory(out: Path) -> list[dict]:
    with open(out / "glf_trajectory.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_finished(out: Path) -> None:
    rows = trajectory(out)
    # the full trajectory: one row per optimizer step, none lost, none twice
    assert [int(r["iteration"]) for r in rows] == list(range(1, EPOCHS * STEPS + 1))
    assert [int(r["epoch"]) for r in rows] == [
        e for e in range(1, EPOCHS + 1) for _ in range(STEPS)
    ]
    with open(out / "history.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(1, EPOCHS + 1))
    completed = json.loads((out / "COMPLETED").read_text())
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert completed["test"] == metrics["models"]["glf-det"]
    for name in ("glf_coefficients.png", "glf_tversky_trajectory.png", "eval/overlays.png"):
        assert (out / name).stat().st_size > 2000, name


# The kill right after the last backup (the case that lost the trajectory) runs by default;
# the other two stages each cost a further train.py process and run with `-m slow`.
@pytest.mark.parametrize(
    "stage, at",
    [
        pytest.param("batch", STEPS + 2, marks=pytest.mark.slow),
        ("backup", EPOCHS),
        pytest.param("evaluation", 0, marks=pytest.mark.slow),
    ],
    ids=["during-an-epoch", "after-the-last-backup", "during-evaluation"],
)
def test_killed_run_resumes_to_a_complete_run(tmp_path, patch_dir, capsys, stage, at):
    out = tmp_path / "run"
    proc = run_until(tmp_path, stage, at, argv_of(patch_dir, out))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (out / "COMPLETED").exists()
    before = trajectory(out) if (out / "glf_trajectory.csv").exists() else []
    assert cli.run(train.main, argv_of(patch_dir, out, "--resume")) == 0, capsys.readouterr().err
    assert_finished(out)
    # what the killed run had logged for its finished epochs is kept as it was
    done = {"batch": 1, "backup": EPOCHS, "evaluation": EPOCHS}[stage]
    kept = [r for r in before if int(r["epoch"]) <= done]
    assert trajectory(out)[: len(kept)] == kept and len(kept) == done * STEPS


@pytest.mark.slow
def test_resumed_train_py_equals_the_uninterrupted_run(tmp_path, patch_dir, capsys):
    """train.py killed by SIGKILL in its second epoch and resumed ends with the weights of
    the uninterrupted run, bit for bit (--deterministic; augmentation and dropout on, data
    reshuffled every epoch): the data stream and the random state continue."""
    import keras
    import numpy as np

    def argv(out, *extra):
        flags = [f for f in argv_of(patch_dir, out, "--deterministic", *extra) if f != "--no-augment"]
        return flags

    whole = tmp_path / "whole"
    assert cli.run(train.main, argv(whole)) == 0, capsys.readouterr().err
    resumed = tmp_path / "resumed"
    proc = run_until(tmp_path, "batch", STEPS + 2, argv(resumed))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert cli.run(train.main, argv(resumed, "--resume")) == 0, capsys.readouterr().err
    a = keras.saving.load_model(whole / "last.keras", compile=False).get_weights()
    b = keras.saving.load_model(resumed / "last.keras", compile=False).get_weights()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_resume_of_a_complete_run_keeps_every_log(tmp_path, patch_dir):
    out = tmp_path / "run"
    assert cli.run(train.main, argv_of(patch_dir, out)) == 0
    rows = trajectory(out)
    assert cli.run(train.main, argv_of(patch_dir, out, "--resume")) == 0  # no epoch left
    assert trajectory(out) == rows
    assert_finished(out)
    # --overwrite replaces the run: a file of the old run is gone, a new complete run is there
    (out / "notes.txt").write_text("old run")
    assert cli.run(train.main, argv_of(patch_dir, out, "--overwrite")) == 0
    assert not (out / "notes.txt").exists()
    assert_finished(out)


def test_train_py_strategy_mirrored_on_two_cpus(tmp_path, patch_dir):
    out = tmp_path / "run"
    proc = run_until(tmp_path, "devices", 2, argv_of(patch_dir, out, "--strategy", "mirrored"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "distribution.json").read_text())
    assert info["strategy"] == "MirroredStrategy" and info["num_replicas"] == 2
    assert info["per_replica_batch_size"] == 2
    assert_finished(out)
    # Console output captured to a file: one progress line per epoch (not one per batch), with
    # the loss, the metrics and the three GLF coefficients, not the rule's statistics.
    lines = proc.stdout.splitlines()
    progress = [line for line in lines if "/step" in line]
    assert len(progress) == EPOCHS and len(lines) < 30, proc.stdout
    assert all("glf_beta2" in line and "glf_precision" not in line for line in progress)


def test_nan_loss_ends_in_one_line_and_exit_status_1(tmp_path, patch_dir, capsys, monkeypatch):
    from training import fit

    original = fit.StopOnNonFinite.on_train_batch_end

    def nan_at_second_batch(self, batch, logs=None):
        if batch == 1:
            logs = {**(logs or {}), "loss": float("nan")}
        original(self, batch, logs)

    monkeypatch.setattr(fit.StopOnNonFinite, "on_train_batch_end", nan_at_second_batch)
    out = tmp_path / "run"
    status = cli.run(train.main, argv_of(patch_dir, out, "--strategy", "one-device"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == cli.EXIT_DIVERGED and len(lines) == 1 and "Traceback" not in err, err
    assert "the loss became nan at epoch 1, batch 2" in lines[0]
    assert not (out / "COMPLETED").exists()

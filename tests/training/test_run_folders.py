"""A run folder cannot lose work: one process owns it (a lock, stale locks taken over),
``--overwrite`` keeps the old run until the new one finished an epoch, and a run that
finished no epoch never blocks a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

import train
from training import cli
from training.rundir import RunDir, RunDirError, aside_path

REPO = Path(__file__).resolve().parents[2]
TINY = ["--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-size", "4", "--no-augment"]  # fmt: skip

# Opens a RunDir (taking its lock) and waits: "hold" until stdin closes, "kill" by SIGKILL.
HOLDER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from training.rundir import RunDir

    run = RunDir(sys.argv[2], resume=True)
    print("locked", flush=True)
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()
    """
)


def hold(tmp_path: Path, out: Path, mode: str = "hold") -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(REPO), str(out), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


def finished_run(folder: Path) -> dict:
    """A finished run's files (as train.py leaves them), and their contents."""
    folder.mkdir(parents=True)
    files = {"config.json": '{"task": "lung"}', "last.keras": "model", "COMPLETED": "{}",
             "notes.txt": "the user's own notes"}  # fmt: skip
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def contents(folder: Path) -> dict:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_two_processes_cannot_both_write_one_run_folder(tmp_path, capsys, patch_dir):
    out = tmp_path / "run"
    finished_run(out)
    holder = hold(tmp_path, out)
    before = contents(out)
    try:
        with pytest.raises(RunDirError, match=f"{out} is in use by PID {holder.pid}"):
            RunDir(out, resume=True)
        argv = ["--task", "lung", "--data-dir", str(patch_dir), "--out", str(out), "--resume", *TINY]
        status = cli.run(train.main, argv)
        err = capsys.readouterr().err
        assert status == 2 and f"in use by PID {holder.pid}" in err and "Traceback" not in err, err
        assert contents(out) == before  # the second process wrote nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    RunDir(out, resume=True).release()  # free once the holder is gone


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    finished_run(out)
    holder = hold(tmp_path, out, "kill")
    assert holder.wait(timeout=60) == -signal.SIGKILL
    lock = out.parent / f".{out.name}.lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the file is still there
    run = RunDir(out, resume=True)
    assert f"left by PID {holder.pid}" in capsys.readouterr().err
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    run.release()
    assert not lock.exists()


def test_seeds_on_their_own_folders_run_side_by_side(tmp_path):
    holder = hold(tmp_path, tmp_path / "study" / "seed-0")
    try:
        RunDir(tmp_path / "study" / "seed-1").release()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_overwrite_with_bad_data_leaves_the_old_run_intact(tmp_path, capsys, patch_dir):
    out = tmp_path / "run"
    before = finished_run(out)
    with h5py.File(patch_dir / "val_patches.h5", "r+") as f:  # a label that is not 0 or 1
        labels = f["labels"][:]
        labels[0, 0, 5, 5] = 0.5
        f["labels"][...] = labels
    argv = ["--task", "lung", "--data-dir", str(patch_dir), "--out", str(out), "--overwrite", *TINY]
    status = cli.run(train.main, argv)
    err = capsys.readouterr().err
    assert status == 2 and "val_patches.h5" in err and "not whole numbers" in err, err
    assert "was kept" in err
    assert contents(out) == before
    assert not aside_path(out).exists()


def test_overwrite_killed_before_its_first_epoch_is_undone_at_the_next_open(tmp_path):
    out = tmp_path / "run"
    before = finished_run(out)
    new = RunDir(out, overwrite=True)  # moves the old run aside ...
    (new / "config.json").write_text("{}")
    new.release()  # ... and dies (SIGKILL: no clean-up runs)
    assert aside_path(out).exists() and not (out / "COMPLETED").exists()
    with pytest.raises(RunDirError, match="already exists"):  # the old run is back
        RunDir(out)
    assert contents(out) == before and not aside_path(out).exists()


def test_overwrite_replaces_the_old_run_once_an_epoch_finished(tmp_path):
    out = tmp_path / "run"
    finished_run(out)
    new = RunDir(out, overwrite=True)
    (new / "last.keras").write_text("new model")
    new.epoch_finished()
    assert not aside_path(out).exists() and contents(out) == {"last.keras": "new model"}
    assert new.close_unfinished().startswith("the unfinished run is in")
    assert contents(out) == {"last.keras": "new model"}


@pytest.mark.parametrize("resume", [False, True], ids=["rerun", "resume"])
def test_a_stub_never_blocks_a_rerun(tmp_path, capsys, resume):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # killed before its first epoch finished
    (out / "split.json").write_text("{}")
    run = RunDir(out, resume=resume)
    assert not run.resuming and not any(out.iterdir())
    assert "finished no epoch; starting it afresh" in capsys.readouterr().err
    run.release()
    # a folder with anything else in it is the user's: refused, never deleted
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already exists"):
        RunDir(out)
    assert (out / "notes.txt").exists()


def test_the_nan_exit_leaves_no_stub(tmp_path, capsys, monkeypatch, patch_dir):
    from training import fit

    def nan(self, batch, logs=None):
        self.message = "Training stopped: the loss became nan at epoch 1, batch 1"
        self.model.stop_training = True

    monkeypatch.setattr(fit.StopOnNonFinite, "on_train_batch_end", nan)
    out = tmp_path / "run"
    argv = ["--task", "lung", "--data-dir", str(patch_dir), "--out", str(out), *TINY]
    assert cli.run(train.main, argv) == cli.EXIT_DIVERGED
    assert "was removed (no epoch had finished)" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    assert cli.run(train.main, argv) == 0  # the rerun needs no --overwrite

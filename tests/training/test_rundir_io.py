"""Run directories refuse to clobber, files are atomic, loading is safe and names the file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core import io
from training.io import load_model, save_model
from training.rundir import RunDir, RunDirError
from training.strategy import chief_from_env


def test_existing_run_dir_is_refused_unless_resume_or_overwrite(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"lr": 1e-3})
    (run / "last.keras").write_bytes(b"an epoch finished")
    with pytest.raises(
        RunDirError, match="already exists; pass --resume to continue it or --overwrite"
    ):
        RunDir(tmp_path / "run")
    assert RunDir(tmp_path / "run", resume=True).resuming
    assert (tmp_path / "run" / "config.json").exists()
    fresh = RunDir(tmp_path / "run", overwrite=True)
    assert not fresh.resuming and not any(fresh.path.iterdir())
    fresh.close_unfinished()  # the new run failed before its first epoch: the old one is back
    assert (tmp_path / "run" / "last.keras").exists()
    with pytest.raises(RunDirError, match="exclude each other"):
        RunDir(tmp_path / "run", resume=True, overwrite=True)


def test_completion_marker(tmp_path):
    run = RunDir(tmp_path / "run")
    assert not run.complete
    run.mark_complete(epochs=3)
    assert run.complete and json.loads((tmp_path / "run" / "COMPLETED").read_text())["epochs"] == 3
    # Resuming reopens the run: it is unfinished until it completes again.
    assert not RunDir(tmp_path / "run", resume=True).complete


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "worker", "index": 0},
            },
            False,
        ),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "chief", "index": 0},
            },
            True,
        ),
    ],
)
def test_chief_follows_tf_config(monkeypatch, tmp_path, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert chief_from_env() is chief
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.keras").write_text("an epoch finished")
    if chief:
        with pytest.raises(RunDirError):
            RunDir(tmp_path / "run")
    else:
        # A non-chief neither refuses nor writes: the chief owns the folder.
        run = RunDir(tmp_path / "other")
        run.write_config({"a": 1})
        run.mark_complete()
        assert not (tmp_path / "other").exists() and run.chief is False


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "history.csv"
    io.write_text(target, "old\n")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]


def test_sigkill_during_write_never_leaves_a_truncated_final_file(tmp_path):
    target = tmp_path / "model.keras"
    code = (
        "import os, signal, sys\n"
        "from core import io\n"
        "with io.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'x' * 1000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], timeout=60)
    assert proc.returncode == -9
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert all(p.name.startswith(".model.") and ".partial" in p.name for p in leftovers)


def test_load_model_missing_corrupt_truncated_and_unsafe(tmp_path):
    import keras

    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope.keras'}: model file not found"):
        load_model(tmp_path / "nope.keras")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"garbage" * 20)
    with pytest.raises(ValueError, match=f"{corrupt}: not a readable .keras model"):
        load_model(corrupt)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    save_model(model, tmp_path / "good.keras")
    reloaded = load_model(tmp_path / "good.keras")
    for a, b in zip(model.get_weights(), reloaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.keras: not a readable .keras model"):
        load_model(tmp_path / "truncated.keras")

    unsafe = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="lambda.keras: cannot load model: .*unsafe"):
        load_model(tmp_path / "lambda.keras")


def test_arrays_round_trip_and_pickles_are_refused(tmp_path):
    io.save_arrays(tmp_path / "a.npz", {"x": np.arange(3), "y": np.eye(2)})
    arrays = io.load_arrays(tmp_path / "a.npz")
    np.testing.assert_array_equal(arrays["x"], np.arange(3))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: holds Python objects"):
        io.load_arrays(tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match="missing.npz: array file not found"):
        io.load_arrays(tmp_path / "missing.npz")


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    from core.io import atomic_folder

    target = tmp_path / "built"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "half.npy").write_bytes(b"x")
        raise RuntimeError("killed mid-build")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("mine")
    assert (target / "a.txt").read_text() == "mine"
    with atomic_folder(target) as tmp:  # another finished copy already there: it is kept
        (tmp / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_a_folder_without_config_is_not_a_run(tmp_path):
    from training.rundir import load_run_config

    (tmp_path / "best.keras").write_bytes(b"")
    with pytest.raises(RunDirError, match=f"{tmp_path} is not a run directory: config.json is missing"):
        load_run_config(tmp_path)


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(RunDirError, match=r"--out .*run is a file; the run directory must be a folder"):
        RunDir(tmp_path / "run")

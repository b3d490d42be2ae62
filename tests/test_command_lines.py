"""Every command line (train, evaluate, predict, reproduce): a user's mistake ends in exit
status 2 and ONE ``error:`` line on stderr that names the problem, never a traceback; a bug
keeps its traceback; ``--debug`` shows it for user errors too.

Most cases call the same wrapper ``__main__`` uses (``training.cli.run(module.main, argv)``)
in this process; one subprocess per command line checks the real entry point, including
that TensorFlow's start-up chatter (cuInit, oneDNN notices) stays off stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import pytest

import evaluate
import predict
import reproduce
import train
from training import cli

REPO = Path(__file__).resolve().parents[1]
SHAPE = (32, 32, 6)  # x, y, slices
TINY = ["--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-size", "2", "--no-augment"]  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))


def write_msd(root: Path, n: int = 4) -> Path:
    """A tiny MSD Task06 folder: HU ramp volumes with a 3x3 tumour on two slices."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        rng = np.random.default_rng(i)
        hu = np.linspace(-1200, 600, SHAPE[0])[:, None, None] + rng.normal(0, 5, SHAPE)
        label = np.zeros(SHAPE, np.uint8)
        label[10:13, 20:23, 2:4] = 1
        name = f"lung_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu.astype(np.int16), np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"training": training, "test": []}))
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def msd(tmp_path) -> Path:
    return write_msd(tmp_path / "Task06_Lung")


@pytest.fixture
def model_file(tmp_path) -> Path:
    """An untrained 32x32 segmentation model saved as a bare .keras file (no run directory)."""
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    path = tmp_path / "models" / "tiny.keras"
    path.parent.mkdir()
    model.save(path)
    return path


def run_cli(capsys, module, argv) -> tuple[int, str]:
    status = cli.run(module.main, [str(a) for a in argv])
    return status, capsys.readouterr().err


def assert_one_error(status: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------ train.py
def test_train_bad_data_dir(capsys, tmp_path):
    status, err = run_cli(
        capsys, train, ["--task", "lung", "--data-dir", tmp_path / "nope", "--out", tmp_path / "r"]
    )
    assert_one_error(status, err, "--data-dir", "nope")
    assert not (tmp_path / "r").exists()


def test_train_missing_file_leaves_no_run_directory(capsys, tmp_path, msd):
    (msd / "imagesTr" / "lung_002.nii.gz").unlink()
    out = tmp_path / "run"
    status, err = run_cli(capsys, train, ["--task", "lung", "--data-dir", msd, "--out", out, *TINY])
    assert_one_error(status, err, "lung_002.nii.gz", "does not exist")
    # the folder this call created held no finished epoch: removed, so the rerun is not refused
    assert not out.exists() and "was removed" in err


def test_train_truncated_nifti(capsys, tmp_path, msd):
    truncate(msd / "imagesTr" / "lung_001.nii.gz")
    status, err = run_cli(
        capsys, train, ["--task", "lung", "--data-dir", msd, "--out", tmp_path / "r", *TINY]
    )
    assert_one_error(status, err, "lung_001.nii.gz", "truncated")


@pytest.mark.parametrize(
    "flags, needle",
    [(["--epochs", "x"], "--epochs"), (["--lr", "-1"], "--lr"), (["--task", "spleen"], "--task"),
     (["--strategy", "tpu"], "--strategy"), (["--resume", "--overwrite"], "--resume")],
    ids=["not-an-int", "negative-lr", "unknown-task", "unknown-strategy", "resume-and-overwrite"],
)  # fmt: skip
def test_train_bad_flag_value(capsys, tmp_path, flags, needle):
    status, err = run_cli(capsys, train, ["--out", tmp_path / "r", *flags])
    assert_one_error(status, err, needle)


def test_train_existing_run_directory(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status, err = run_cli(capsys, train, ["--task", "lung", "--out", out, *TINY])
    assert_one_error(status, err, str(out), "--resume", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"  # never deleted: it was not created here


# --------------------------------------------------------------------- evaluate.py
def test_evaluate_bad_data_dir(capsys, tmp_path, model_file):
    status, err = run_cli(
        capsys, evaluate, [model_file, "--data-dir", tmp_path / "nope", "--out", tmp_path / "e"]
    )
    assert_one_error(status, err, "nope")


def test_evaluate_missing_model(capsys, tmp_path):
    status, err = run_cli(capsys, evaluate, [tmp_path / "runs" / "lung-glf-det"])
    assert_one_error(status, err, "lung-glf-det")


def test_evaluate_truncated_nifti(capsys, tmp_path, msd, model_file):
    truncate(msd / "labelsTr" / "lung_003.nii.gz")
    status, err = run_cli(
        capsys,
        evaluate,
        [model_file, "--data-dir", msd, "--image-size", "32", "--out", tmp_path / "e"],
    )
    assert_one_error(status, err, "lung_003.nii.gz")


@pytest.mark.parametrize(
    "flags, needle", [(["--image-size", "big"], "--image-size"), (["--task", "spleen"], "--task")]
)
def test_evaluate_bad_flag_value(capsys, model_file, flags, needle):
    status, err = run_cli(capsys, evaluate, [model_file, *flags])
    assert_one_error(status, err, needle)


def test_evaluate_needs_a_model(capsys):
    status, err = run_cli(capsys, evaluate, ["--task", "lung"])
    assert_one_error(status, err, "run directory")


# ---------------------------------------------------------------------- predict.py
def test_predict_bad_input_folder(capsys, tmp_path, model_file):
    status, err = run_cli(
        capsys, predict, [model_file, tmp_path / "scans", "--task", "lung", "--out", tmp_path / "p"]
    )
    assert_one_error(status, err, "scans", "does not exist")


def test_predict_missing_model(capsys, tmp_path, msd):
    status, err = run_cli(
        capsys, predict, [tmp_path / "runs" / "lung-glf-det", msd / "imagesTr" / "lung_000.nii.gz"]
    )
    assert_one_error(status, err, "lung-glf-det", "does not exist")


def test_predict_truncated_nifti(capsys, tmp_path, msd, model_file):
    scan = msd / "imagesTr" / "lung_000.nii.gz"
    truncate(scan)
    status, err = run_cli(
        capsys, predict, [model_file, scan, "--task", "lung", "--out", tmp_path / "p"]
    )
    assert_one_error(status, err, "lung_000.nii.gz")


@pytest.mark.parametrize(
    "flags, needle", [(["--threshold", "high"], "--threshold"), ([], "files or folders")]
)
def test_predict_bad_flag_value(capsys, tmp_path, model_file, flags, needle):
    status, err = run_cli(capsys, predict, [model_file, *flags])
    assert_one_error(status, err, needle)


# -------------------------------------------------------------------- reproduce.py
def test_reproduce_bad_data_dir(capsys, tmp_path):
    status, err = run_cli(
        capsys, reproduce, ["glf-lung", "--data-dir", tmp_path / "nope", "--out", tmp_path / "rep"]
    )
    assert_one_error(status, err, "--data-dir", "nope")


def test_reproduce_missing_file(capsys, tmp_path, msd):
    (msd / "labelsTr" / "lung_001.nii.gz").unlink()
    status, err = run_cli(
        capsys, reproduce, ["glf-lung", "--data-dir", msd, "--out", tmp_path / "rep", *TINY]
    )
    assert_one_error(status, err, "lung_001.nii.gz", "does not exist")


def test_reproduce_truncated_nifti(capsys, tmp_path, msd):
    truncate(msd / "imagesTr" / "lung_003.nii.gz")
    status, err = run_cli(
        capsys, reproduce, ["glf-lung", "--data-dir", msd, "--out", tmp_path / "rep", *TINY]
    )
    assert_one_error(status, err, "lung_003.nii.gz", "truncated")


@pytest.mark.parametrize(
    "argv, needle", [(["glf-lung", "--epochs", "0"], "--epochs"), (["glf-spleen"], "glf-spleen")]
)
def test_reproduce_bad_flag_value(capsys, tmp_path, argv, needle):
    status, err = run_cli(capsys, reproduce, [*argv, "--out", tmp_path / "rep"])
    assert_one_error(status, err, needle)


# ------------------------------------------------------------ bugs and --debug
def test_a_bug_keeps_its_traceback(capsys):
    def main(argv):
        return {}["missing"]  # a KeyError: no user's mistake

    with pytest.raises(KeyError):
        cli.run(main, [])


def test_a_value_error_from_a_library_is_a_bug():
    def main(argv):
        np.reshape(np.zeros(3), (2, 2))  # ValueError raised inside NumPy

    with pytest.raises(ValueError):
        cli.run(main, [])


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        cli.run(train.main, ["--task", "lung", "--data-dir", str(tmp_path / "nope"), "--debug"])


def test_nan_loss_is_one_line_with_exit_status_1(capsys, monkeypatch):
    from training.fit import TrainingDiverged

    def main(argv):
        raise TrainingDiverged("Training stopped: the loss became nan at epoch 2, batch 3")

    status = cli.run(main, [])
    err = capsys.readouterr().err
    assert (
        status == 1
        and err.startswith("error: Training stopped: the loss became nan")
        and "Traceback" not in err
    )


# ------------------------------------------------------- the real entry points
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train.py", "--task", "lung", "--data-dir", "{tmp}/nope"], "--data-dir"),
        (["predict.py", "{tmp}/runs/lung-glf-det", "{tmp}/scan.nii.gz"], "lung-glf-det"),
    ],
    ids=["train", "predict"],  # evaluate.py and reproduce.py share the wrapper and start-up
)
def test_command_line_prints_one_line_and_no_tensorflow_chatter(tmp_path, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    proc = subprocess.run([sys.executable, str(REPO / argv[0]), *argv[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr

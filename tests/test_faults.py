"""Faults a hostile or careless user causes or meets, one class per test, on every command
line: each ends in ONE ``error:`` line naming the file or flag, exit status 2 (128 + signal
for a signal), no traceback, and no lost or half-written run.

Most cases run the wrapper ``__main__`` uses (``training.cli.run(module.main, argv)``) in
this process; the signal and two-process cases run real ``train.py`` processes.
The run-folder cases (lock, --overwrite, stubs) are in tests/training/test_run_folders.py.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
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
SHAPE = (32, 32, 6)
TINY = ["--image-size", "32", "--depth", "2", "--base-filters", "4", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-size", "2", "--no-augment"]  # fmt: skip
COMMANDS = ("train", "evaluate", "predict", "reproduce")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))


def write_msd(root: Path, n: int = 4, label_value: float = 1, duplicate: bool = False) -> Path:
    """A tiny MSD Task06 folder: HU ramps with a 3x3 tumour (of ``label_value``) on two slices."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        rng = np.random.default_rng(i)
        hu = np.linspace(-1200, 600, SHAPE[0])[:, None, None] + rng.normal(0, 5, SHAPE)
        label = np.zeros(SHAPE, np.float32)
        label[10:13, 20:23, 2:4] = label_value
        name = f"lung_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu.astype(np.int16), np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    if duplicate:
        training.append(training[0])
    (root / "dataset.json").write_text(json.dumps({"training": training, "test": []}))
    return root


@pytest.fixture
def msd(tmp_path) -> Path:
    return write_msd(tmp_path / "Task06_Lung")


def tiny_model() -> keras.Model:
    inputs = keras.Input((32, 32, 1))
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))


def lung_config() -> dict:
    from tasks.ct.config import CTConfig

    return dataclasses.asdict(CTConfig(task="lung", image_size=32, depth=2, base_filters=4))


def make_run(folder: Path, complete: bool = True) -> Path:
    """A lung run folder as train.py leaves it: config.json, best/last.keras, COMPLETED."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(lung_config()))
    model = tiny_model()
    model.save(folder / "best.keras")
    model.save(folder / "last.keras")
    if complete:
        (folder / "COMPLETED").write_text("{}")
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "runs" / "lung-dice")


def run_cli(capsys, module, argv) -> tuple[int, str]:
    status = cli.run(module.main, [str(a) for a in argv])
    return status, capsys.readouterr().err


def assert_one_error(status: int, err: str, *needles: str, code: int = 2) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def argv_for(command: str, tmp_path: Path, msd: Path, run: Path) -> list:
    """A command line of ``command`` that would succeed on good input."""
    scan = msd / "imagesTr" / "lung_000.nii.gz"
    return {
        "train": ["--task", "lung", "--data-dir", msd, "--out", tmp_path / "new", *TINY],
        "evaluate": [run, "--data-dir", msd, "--out", tmp_path / "eval"],
        "predict": [run, scan, "--out", tmp_path / "preds"],
        "reproduce": ["glf-lung", "--data-dir", msd, "--out", tmp_path / "rep", *TINY],
    }[command]


MODULES = {"train": train, "evaluate": evaluate, "predict": predict, "reproduce": reproduce}


# ------------------------------------------------------ their disk and their permissions
@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC],
                         ids=["permission-denied", "read-only-file-system", "disk-full"])  # fmt: skip
@pytest.mark.parametrize("command", COMMANDS)
def test_a_failing_disk_is_one_line_on_every_command(
    capsys, monkeypatch, tmp_path, msd, run_dir, command, code
):
    """Every atomic write (config, models, metrics, masks, reports) starts with mkstemp: the
    system's error raised there (outside this project's code) names the file and the fix."""
    argv = argv_for(command, tmp_path, msd, run_dir)

    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    status, err = run_cli(capsys, MODULES[command], argv)
    line = assert_one_error(status, err, os.strerror(code))
    assert any(word in line for word in ("permissions", "read-only", "disk is full")), line
    assert not (tmp_path / "new").exists()  # train: the run folder of a failed start is removed


def test_disk_full_inside_keras_while_saving_the_model(capsys, monkeypatch, tmp_path, msd):
    """The first epoch's model save fails inside Keras: one line; no run folder is left
    (no epoch finished), so the rerun is not blocked."""

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", full)
    out = tmp_path / "run"
    status, err = run_cli(capsys, train, ["--task", "lung", "--data-dir", msd, "--out", out, *TINY])
    assert_one_error(status, err, "No space left on device", "disk is full")
    assert not out.exists()


# ------------------------------------------------------------ files that are not what they say
def test_truncated_config_json(capsys, tmp_path, msd, run_dir):
    (run_dir / "config.json").write_text('{"task": "lung", "image_')
    for module, argv in (
        (evaluate, [run_dir, "--task", "lung", "--data-dir", msd, "--out", tmp_path / "e"]),
        (predict, [run_dir, msd / "imagesTr" / "lung_000.nii.gz", "--out", tmp_path / "p"]),
        (train, ["--task", "lung", "--data-dir", msd, "--out", run_dir, "--resume", *TINY]),
    ):
        status, err = run_cli(capsys, module, argv)
        assert_one_error(status, err, "config.json", "not valid JSON")


@pytest.mark.parametrize("command", ["predict", "reproduce", "evaluate"])
def test_out_that_is_a_file(capsys, tmp_path, msd, run_dir, command):
    argv = argv_for(command, tmp_path, msd, run_dir)
    out = Path(argv[argv.index("--out") + 1])
    out.write_text("a file")
    status, err = run_cli(capsys, MODULES[command], argv)
    assert_one_error(status, err, str(out))
    assert out.read_text() == "a file"


def lambda_model(path: Path) -> Path:
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 0 + 0.5)(inputs))
    model.save(path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "lambda-layer", "not-a-model"])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_bad_model_file(capsys, tmp_path, msd, run_dir, command, kind):
    model = run_dir / "best.keras"
    if kind == "truncated":
        model.write_bytes(model.read_bytes()[:2000])
    elif kind == "lambda-layer":
        lambda_model(model)
    else:
        model.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
    status, err = run_cli(capsys, MODULES[command], argv_for(command, tmp_path, msd, model))
    assert_one_error(status, err, "best.keras")


def test_evaluate_checks_the_model_input_size(capsys, tmp_path, msd, run_dir):
    status, err = run_cli(
        capsys, evaluate, [run_dir, "--data-dir", msd, "--image-size", "64", "--out", tmp_path / "e"]
    )
    assert_one_error(status, err, "best.keras", "32x32x1", "64x64x1", "--image-size")


def test_evaluate_batch_size_is_used(capsys, monkeypatch, tmp_path, msd, run_dir):
    from tasks.ct import evaluation

    seen = []
    original = evaluation.predict_counts
    monkeypatch.setattr(
        evaluation, "predict_counts",
        lambda models, data, cfg, batch_size=8: seen.append(batch_size) or original(models, data, cfg, batch_size),
    )  # fmt: skip
    argv = [run_dir, "--data-dir", msd, "--out", tmp_path / "e", "--batch-size"]
    status, err = run_cli(capsys, evaluate, [*argv, "3"])
    assert status == 0 and seen == [3], err
    status, err = run_cli(capsys, evaluate, [*argv, "0"])
    assert_one_error(status, err, "--batch-size")


def test_a_volume_with_an_empty_axis(capsys, tmp_path, msd, run_dir):
    """predict: the empty volume is one error line; the other input is still predicted."""
    empty = tmp_path / "scans" / "empty.nii.gz"
    empty.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((32, 0, 4), np.int16), np.eye(4)), str(empty))
    good = msd / "imagesTr" / "lung_001.nii.gz"
    status, err = run_cli(capsys, predict, [run_dir, empty, good, "--out", tmp_path / "p"])
    assert_one_error(status, err, "empty.nii.gz", "empty axis")
    assert (tmp_path / "p" / "lung_001_mask.nii.gz").exists()
    # train: the same volume in the data set
    nib.save(nib.Nifti1Image(np.zeros((32, 0, 6), np.int16), np.eye(4)), str(msd / "imagesTr" / "lung_002.nii.gz"))
    status, err = run_cli(capsys, train, argv_for("train", tmp_path, msd, run_dir))
    assert_one_error(status, err, "lung_002.nii.gz", "empty axis")


def test_a_symlink_loop(capsys, tmp_path, msd, run_dir):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for module, argv in (
        (train, ["--task", "lung", "--data-dir", loop, "--out", tmp_path / "r", *TINY]),
        (predict, [run_dir, loop, "--out", tmp_path / "p"]),
        (evaluate, [run_dir, "--data-dir", loop, "--out", tmp_path / "e"]),
        (reproduce, ["glf-lung", "--data-dir", loop, "--out", tmp_path / "rep", *TINY]),
    ):
        status, err = run_cli(capsys, module, argv)
        assert_one_error(status, err, "loop")


def test_dataset_json_that_is_a_list(capsys, tmp_path, msd):
    (msd / "dataset.json").write_text(json.dumps([{"image": "a", "label": "b"}]))
    status, err = run_cli(capsys, train, argv_for("train", tmp_path, msd, msd))
    assert_one_error(status, err, "dataset.json", "expected a JSON object")


# ------------------------------------------------------------ unfinished runs
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_an_unfinished_run_is_refused_unless_allowed(capsys, tmp_path, msd, command):
    run = make_run(tmp_path / "runs" / "died-while-saving", complete=False)
    argv = argv_for(command, tmp_path, msd, run)
    status, err = run_cli(capsys, MODULES[command], argv)
    assert_one_error(status, err, str(run), "unfinished", "--allow-unfinished")
    status, err = run_cli(capsys, MODULES[command], [*argv, "--allow-unfinished"])
    assert status == 0 and "warning:" in err and "unfinished run" in err, err


# ------------------------------------------------------------ values checked before conversion
@pytest.mark.parametrize(
    "fault, needles",
    [
        ("label-0.5", ["lung_000.nii.gz", "not whole numbers", "0.5"]),
        ("duplicate-case", ["dataset.json", "listed more than once", "lung_000"]),
        ("no-foreground", ["none of the", "foreground"]),
        ("fractions-above-1", ["--val-fraction + --test-fraction", "below 1"]),
        ("malformed-tf-config", ["TF_CONFIG"]),
    ],
)
def test_values_are_checked_before_they_are_converted(capsys, monkeypatch, tmp_path, fault, needles):
    data = tmp_path / "data"
    extra = []
    if fault == "label-0.5":
        write_msd(data, label_value=0.5)
    elif fault == "duplicate-case":
        write_msd(data, duplicate=True)
    elif fault == "no-foreground":
        write_msd(data, label_value=0)
    elif fault == "fractions-above-1":
        write_msd(data)
        extra = ["--val-fraction", "0.6", "--test-fraction", "0.5"]
    else:
        write_msd(data)
        monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": ')
    out = tmp_path / "run"
    status, err = run_cli(capsys, train, ["--task", "lung", "--data-dir", data, "--out", out, *TINY, *extra])
    assert_one_error(status, err, *needles)
    assert not out.exists()


def test_a_well_formed_tf_config_is_reported(capsys, monkeypatch):
    from training import strategy

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))
    monkeypatch.setattr(strategy, "_REPORTED", [False])
    assert strategy.chief_from_env() is False
    assert "TF_CONFIG: this process is worker 1 of 2 workers, not the chief" in capsys.readouterr().out


@pytest.mark.parametrize("module", [train, evaluate, reproduce, predict])
def test_another_keras_backend_is_refused_before_any_work(capsys, monkeypatch, tmp_path, module):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    out = tmp_path / "run"
    argv = {
        train: ["--task", "lung", "--loss", "dice", "--out", out],
        evaluate: [out],
        reproduce: ["glf-lung", "--out", out],
        predict: [out, tmp_path],
    }[module]
    status, err = run_cli(capsys, module, argv)
    assert_one_error(status, err, "TensorFlow backend", "'jax'", "KERAS_BACKEND=tensorflow")
    assert not out.exists()


def test_fit_model_refuses_another_keras_backend(monkeypatch, tmp_path):
    from training.fit import fit_model

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        fit_model(keras.Sequential(), None, None, run_dir=None, epochs=1)


def test_a_split_with_a_case_in_two_parts(tmp_path):
    from data.ct import _load_split
    from data.validate import DataError

    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["b"]}))
    with pytest.raises(DataError, match="case 'b' is in both 'train' and 'test'"):
        _load_split(path)
    path.write_text(json.dumps({"train": ["a", "a"], "val": ["c"], "test": ["d"]}))
    with pytest.raises(DataError, match="listed more than once: a"):
        _load_split(path)


@pytest.mark.parametrize("layout", ["isic", "ham"])
def test_a_duplicated_image_id_in_the_dermoscopy_csv(tmp_path, layout):
    from data.dermoscopy import HAM_CSV, ISIC_CSV, list_dermoscopy
    from data.validate import DataError

    (tmp_path / "images").mkdir()
    if layout == "isic":
        rows = "image,MEL,NV,BCC,AK,BKL\nA,1,0,0,0,0\nA,0,1,0,0,0\n"
        (tmp_path / ISIC_CSV).write_text(rows)
    else:
        (tmp_path / HAM_CSV).write_text("lesion_id,image_id,dx\nL1,A,mel\nL2,A,nv\n")
    with pytest.raises(DataError, match="listed more than once: A"):
        list_dermoscopy(tmp_path, layout)


def test_training_decodes_images_with_the_check_data_check(tmp_path):
    """A truncated JPEG: OpenCV half-decodes it silently; training refuses it, naming it."""
    import cv2

    from data.dermoscopy import read_rgb
    from data.validate import DataError

    path = tmp_path / "a.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert read_rgb(path).shape == (64, 64, 3)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="a.jpg: cannot decode image"):
        read_rgb(path)


# ------------------------------------------------------------ --resume with changed flags
def test_resume_with_a_changed_flag_names_it(capsys, tmp_path, msd):
    out = tmp_path / "run"
    out.mkdir()
    saved = {**lung_config(), "data_dir": str(msd), "steps_per_epoch": 1, "batch_size": 2,
             "augment": False, "epochs": 1, "lr": 1e30}  # fmt: skip
    (out / "config.json").write_text(json.dumps(saved))
    (out / "last.keras").write_text("an epoch finished")
    argv = ["--task", "lung", "--data-dir", msd, "--out", out, "--resume", *TINY]
    status, err = run_cli(capsys, train, [*argv, "--lr", "1e-3"])
    line = assert_one_error(status, err, "--lr 0.001 (the run has 1e+30)", "--epochs")
    assert "--image-size" not in line  # the flags that agree with the saved run are not named
    assert json.loads((out / "config.json").read_text()) == saved  # nothing written


def test_resume_takes_the_saved_settings_and_allows_epochs():
    from tasks.ct.config import CTConfig
    from training.config import mark_given, resumed_config

    saved = dataclasses.asdict(CTConfig(task="lung", lr=1e-2, epochs=2, image_size=64))
    given = mark_given(CTConfig(task="lung", epochs=5), {"epochs"})  # --resume --epochs 5
    resumed = resumed_config(given, saved, "runs/x")
    assert (resumed.lr, resumed.image_size, resumed.epochs) == (1e-2, 64, 5)
    built_in_code = CTConfig(task="lung", epochs=5)  # every field counts as given
    with pytest.raises(ValueError, match=r"--lr \S+ \(the run has 0.01\); --image-size 128 \(the run has 64\)"):
        resumed_config(built_in_code, saved, "runs/x")


# ------------------------------------------------------------ signals
SIGNALLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    signum, argv = int(sys.argv[2]), sys.argv[3:]
    # a foreground process, as in a terminal: a parent started in the background (nohup,
    # `&` in a script) hands SIGINT down ignored, and Python then keeps it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from training import fit

    original = fit.StopOnNonFinite.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        os.kill(os.getpid(), signum)  # as a batch scheduler or the user would, mid-epoch

    fit.StopOnNonFinite.on_train_batch_end = on_train_batch_end
    import train
    from training import cli

    sys.exit(cli.run(train.main, argv))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_before_the_first_epoch_leaves_no_stub(tmp_path, msd, signum):
    script = tmp_path / "signaller.py"
    script.write_text(SIGNALLER)
    out = tmp_path / "run"
    argv = ["--task", "lung", "--data-dir", str(msd), "--out", str(out), *TINY]
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_LOSSES_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(script), str(REPO), str(int(signum)), *argv],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    name = signal.Signals(signum).name
    assert_one_error(proc.returncode, proc.stderr, f"interrupted by {name}", "was removed", code=128 + signum)
    assert not out.exists()  # the rerun is not blocked

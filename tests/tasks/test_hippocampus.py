"""Hippocampus task end to end on tiny NIfTI volumes: train, evaluate, reproduce, CLI errors."""

import json

import keras
import nibabel as nib
import numpy as np
import pytest

import evaluate
import reproduce
import train
from tasks.hippocampus import config as hip
from training.errors import UsageError


def write_msd(root, n_volumes=6, shape=(12, 14, 4), seed=0):
    """A tiny MSD Task04 folder: bright blobs labelled 1 (left half) and 2 (right half)."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    entries = []
    for i in range(1, n_volumes + 1):
        labels = np.zeros(shape, np.uint8)
        r, c = rng.integers(3, shape[0] - 3), rng.integers(3, shape[1] - 3)
        labels[r - 2 : r + 2, c - 2 : c, 1:] = 1
        labels[r - 2 : r + 2, c : c + 2, 1:] = 2
        image = rng.normal(20, 5, size=shape) + 80 * (labels > 0)
        name = f"hippocampus_{i:03d}.nii.gz"
        dtype = np.float32 if i % 2 else np.uint8
        nib.save(
            nib.Nifti1Image(np.clip(image, 0, 255).astype(dtype), np.eye(4)),
            str(root / "imagesTr" / name),
        )
        nib.save(
            nib.Nifti1Image(labels.astype(np.float32 if i % 3 else np.uint8), np.eye(4)),
            str(root / "labelsTr" / name),
        )
        entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"training": entries}))
    return root


TINY = ["--size", "16", "--depth", "2", "--base-filters", "4", "--epochs", "2", "--batch-size", "8"]
ATTACK = [
    "--n-max",
    "6",
    "--n-step",
    "3",
    "--random-n-step",
    "3",
    "--repetitions",
    "3",
    "--values",
    "0,0.6,1.0",
]


def test_train_then_evaluate_end_to_end(tmp_path):
    data = write_msd(tmp_path / "Task04")
    cache = str(tmp_path / "cache")
    runs = []
    for loss in ("bce", "bce+dice+focal"):
        out = tmp_path / loss
        assert (
            train.main(
                [
                    "--task",
                    "hippocampus",
                    "--loss",
                    loss,
                    "--data-dir",
                    str(data),
                    "--out",
                    str(out),
                    "--cache-dir",
                    cache,
                    *TINY,
                ]
            )
            == 0
        )
        assert (out / "COMPLETED").exists() and (out / "best.keras").exists()
        split = json.loads((out / "split.json").read_text())
        assert len(split["test"]) == 2 and not set(split["test"]) & set(
            split["train"] + split["val"]
        )
        assert json.loads((out / "config.json").read_text())["loss"] == loss
        runs.append(str(out))
    # the saved model reloads with its loss (no custom_objects needed)
    model = keras.saving.load_model(tmp_path / "bce+dice+focal" / "best.keras")
    assert model.loss.get_config()["name"] == "bce_dice_focal"

    evaluate.main(
        ["--task", "hippocampus", "--model", *runs, "--out", str(tmp_path / "eval"), *ATTACK]
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"bce", "bce+dice+focal"}
    for m in metrics["models"].values():
        assert m["value_sweep"]["values"] == pytest.approx([0, 0.6, 1.0])
        assert m["count_sweep"]["n_pixels"] == [0, 3, 6]
        assert len(m["random_sweep"]["std"]) == 3 and m["random_sweep"]["repetitions"] == 3
        # N = 0 is the clean image
        assert m["count_sweep"]["dice"][0] == pytest.approx(m["clean_dice_attacked_slices"])
        assert m["random_sweep"]["std"][0] == pytest.approx(0)
        for d in m["value_sweep"]["dice"] + m["count_sweep"]["dice"]:
            assert 0 <= d <= 1
    for f in metrics["figures"]:
        assert (tmp_path / "eval" / f).stat().st_size > 1000
    assert len(metrics["figures"]) == 7


def test_train_refuses_an_existing_run_and_bad_flags(tmp_path):
    data = write_msd(tmp_path / "Task04", n_volumes=3)
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ValueError, match="already exists"):
        train.main(["--task", "hippocampus", "--data-dir", str(data), "--out", str(out), *TINY])
    # train.main raises the usage error; the command line turns it into one error: line, exit 2
    with pytest.raises(UsageError, match="--loss: invalid choice: 'mse'"):
        train.main(["--task", "hippocampus", "--loss", "mse"])
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth"):
        hip.HippocampusConfig(size=20, depth=3)


def test_check_data_reports_every_bad_file(tmp_path, capsys):
    data = write_msd(tmp_path / "Task04", n_volumes=3)
    bad = nib.load(str(data / "labelsTr" / "hippocampus_002.nii.gz"))
    arr = np.asarray(bad.dataobj).copy()
    arr[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(data / "labelsTr" / "hippocampus_002.nii.gz"))
    with pytest.raises(SystemExit, match="1 problem"):
        train.main(["--task", "hippocampus", "--data-dir", str(data), "--check-data"])
    assert "hippocampus_002" in capsys.readouterr().err


@pytest.mark.slow  # eight models trained and attacked: ~2-4 min on 2 shared cores
def test_reproduce_writes_report_results_and_claims(tmp_path):
    data = write_msd(tmp_path / "Task04", n_volumes=4)
    out = tmp_path / "report"
    argv = [
        "robustness",
        "--quick",
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
        "--epochs",
        "2",
        "--repetitions",
        "2",
        "--max-test-images",
        "3",
        "--seeds",
        "0,1",
    ]
    assert reproduce.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == list(hip.LOSSES) and results["seeds"] == [0, 1]
    for m in results["models"].values():
        for fig in ("fig2", "fig3", "fig5", "fig6"):
            curve = m["curves"][fig]
            assert len(curve["x"]) == len(curve["mean"]) == len(curve["sd"]) > 1
        assert len(m["value_sweep"]["dice"]["per_seed"]) == 2
        assert len(m["training"]["val_dice_per_epoch"]["mean"]) == 2
    assert results["models"]["bce"]["curves"]["fig2"]["x"] == [0.0, 0.1, 0.2]
    tested = [c for c in results["claims"] if c["verdict"] != "not tested"]
    assert len(tested) == 9
    assert all(c["verdict"] in ("held", "not held", "inconclusive") for c in tested)
    assert all(
        len(c.get("effect", c.get("parts", [{}])[0].get("effect"))["per_seed"]) == 2 for c in tested
    )
    assert results["settings"]["quick"] and results["settings"]["attack"]["repetitions"] == 2
    assert results["settings"]["attack"]["ranking"] == "signed"
    assert results["settings"]["train"]["scaling"] == "max"
    for fig in ("fig2_values", "fig3_values", "fig5_count", "fig6_random", "fig1_gradients"):
        assert (out / f"hippocampus_{fig}.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "## The paper's claims" in report and "hippocampus_fig6_random.png" in report
    # finished runs and their evaluations are reused, not redone
    stamp = (out / "models" / "seed-1" / "dice" / "best.keras").stat().st_mtime_ns
    metrics = (out / "seed-1" / "metrics.json").stat().st_mtime_ns
    assert reproduce.main(argv) == 0
    assert (out / "models" / "seed-1" / "dice" / "best.keras").stat().st_mtime_ns == stamp
    assert (out / "seed-1" / "metrics.json").stat().st_mtime_ns == metrics
    # a finished run with other settings is refused, not silently reused
    with pytest.raises(SystemExit, match="other settings"):
        reproduce.main([*argv[:-2], "--seeds", "0", "--max-volumes", "3"])


def test_a_runs_split_naming_volumes_that_are_gone_is_refused(tmp_path):
    """evaluate.py reloads the run's split: a volume removed from the data folder since is named."""
    from data.validate import DataError
    from tasks.hippocampus.training import load_split_slices

    data = write_msd(tmp_path / "Task04", n_volumes=2)
    cfg = {"size": 16, "max_intensity": 0.2, "clip_percentile": 99.5}
    with pytest.raises(
        DataError,
        match=r"Task04: the run's split names volumes that are not there: \['hippocampus_009'\]",
    ):
        load_split_slices(data, cfg, ["hippocampus_001", "hippocampus_009"], tmp_path / "c")

"""The isic task end to end on tiny synthetic data: train.py, evaluate.py, reproduce.py lossest."""

import json

import keras
import numpy as np
import pytest

import keras_losses  # noqa: F401

TINY = [
    "--image-size",
    "32",
    "--width",
    "0.0625",
    "--weights",
    "none",
    "--batch-size",
    "8",
    "--synthetic-per-class",
    "6",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))


def test_config_defaults_are_the_papers():
    from tasks.isic.config import IsicConfig

    c = IsicConfig()
    assert (
        c.lr,
        c.lr_halve_every,
        c.weight_decay,
        c.dropout,
        c.batch_size,
        c.epochs,
        c.lambda_rank,
    ) == (1e-4, 10, 5e-4, 0.4, 64, 50, 0.5)
    assert (c.image_size, c.crop_fraction, c.sog_power, c.val_fraction) == (224, 0.85, 6.0, 0.1)
    assert c.classes == ["MEL", "NV", "BCC", "AK", "DF"]


def test_train_and_evaluate_loss_estimator(tmp_path, assert_png):
    import evaluate
    import train

    run = tmp_path / "run"
    train.main(
        ["--task", "isic", "--loss", "ce+loss-estimator", "--epochs", "2", "--out", str(run), *TINY]
    )
    assert (run / "COMPLETED").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["loss"] == "ce+loss-estimator" and cfg["weight_decay_mode"] == "l2"
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"])
    history = (run / "history.csv").read_text().splitlines()
    assert "val_balanced_accuracy" in history[0] and len(history) == 3
    model = keras.saving.load_model(run / "best.keras")
    assert model.output_shape == (None, 6)
    assert isinstance(model.loss, keras_losses.LossEstimatorLoss) and model.loss.lambda_ == 0.5
    # lr halves every lr_halve_every epochs
    sched = (
        model.optimizer.learning_rate
        if not callable(model.optimizer._learning_rate)
        else model.optimizer._learning_rate
    )
    assert sched.decay_rate == 0.5 and sched.staircase
    out = tmp_path / "eval"
    evaluate.main(
        [
            "--task",
            "isic",
            "--model",
            str(run),
            "--out",
            str(out),
            "--max-ood",
            "10",
            "--temperatures",
            "1,1000",
            "--epsilons",
            "0,0.002",
            "--ood-sets",
            "b-box,natural,histology,new-class",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["odin"]["sets"]) == {"b-box", "natural", "histology", "new-class"}
    assert metrics["odin"]["temperature"] in (1, 1000) and len(metrics["odin"]["grid"]) == 4
    assert set(metrics["new_class_labels"]) == {"BKL", "VASC"}
    assert 0 <= metrics["balanced_accuracy"] <= 100
    assert_png(out / "odin_scores.png")
    # A run whose split names validation images that are gone is refused by name.
    from data.msd import DataError
    from tasks.isic.config import EvalConfig
    from tasks.isic.evaluation import build_eval_data

    split["val"].append("ISIC_GONE")
    (run / "split.json").write_text(json.dumps(split))
    with pytest.raises(DataError, match=r"the run's validation split names images that are not there: \['ISIC_GONE'\]"):
        build_eval_data(run, EvalConfig(ood_sets=["b-box"]))
    from training.rundir import RunDirError

    with pytest.raises(RunDirError, match="already exists"):  # refuses to clobber the run
        train.main(["--task", "isic", "--loss", "ce", "--epochs", "1", "--out", str(run), *TINY])


def test_vanilla_decoupled_weight_decay(tmp_path):
    import train

    run = tmp_path / "vanilla"
    train.main(
        [
            "--task",
            "isic",
            "--loss",
            "ce",
            "--epochs",
            "1",
            "--weight-decay-mode",
            "decoupled",
            "--no-augment",
            "--out",
            str(run),
            *TINY,
        ]
    )
    model = keras.saving.load_model(run / "last.keras")
    assert model.output_shape == (None, 5) and isinstance(model.optimizer, keras.optimizers.AdamW)
    assert isinstance(model.loss, keras_losses.ClassWeightedCategoricalCrossentropy)
    assert not model.losses  # no L2 terms in decoupled mode


def test_check_data_reports_problems(tmp_path, capsys):
    import train
    from data.synthetic_dermoscopy import write_synthetic_isic

    root = write_synthetic_isic(tmp_path / "syn", per_class=2, size=40)
    (root / "images" / "SYN_0000000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit, match="1 problem"):
        train.main(["--task", "isic", "--data-dir", str(root), "--check-data"])
    assert "SYN_0000000.jpg: cannot decode image" in capsys.readouterr().out


def test_missing_class_is_a_clear_error(tmp_path):
    import train
    from data.msd import DataError
    from data.synthetic_dermoscopy import write_synthetic_isic

    root = write_synthetic_isic(tmp_path / "syn", per_class=2, size=40, classes=("MEL", "NV"))
    with pytest.raises(DataError, match="BCC, AK, DF have no images"):
        train.main(["--task", "isic", "--data-dir", str(root), "--out", str(tmp_path / "r"), *TINY])


def test_reproduce_writes_report(tmp_path, assert_png):
    import reproduce

    out = tmp_path / "rep"
    reproduce.main(
        [
            "lossest",
            "--quick",
            "--out",
            str(out),
            "--image-size",
            "32",
            "--width",
            "0.0625",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-ood",
            "8",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    # the paper's numbers as literals (Sec. 4, Findings: 77.9 % vs 73.1 %), not the exported table
    assert results["paper_values"]["balanced_accuracy"] == {"vanilla": 73.1, "proposed": 77.9}
    assert {"vanilla", "proposed"} <= set(results) and "b-box-70" in results["proposed"]["odin"][
        "sets"
    ]
    report = (out / "report.md").read_text()
    assert "| balanced accuracy % | 73.1 |" in report and "Clin-Skin: no equivalent" in report
    assert_png(out / "summary.png")


def test_real_ham10000_check(shared_data, tmp_path):
    from tasks.isic.training import list_records

    inside, held = list_records(
        {"classes": ["MEL", "NV", "BCC", "AK", "DF"], "max_per_class": 5, "seed": 0},
        shared_data / "ham10000",
    )
    assert len(inside) == 25 and {r.label for r in held} == {"BKL", "VASC"}
    assert np.all([r.mask is not None for r in inside])

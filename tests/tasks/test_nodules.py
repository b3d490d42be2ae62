"""The nodules task end to end: train.py, evaluate.py and reproduce.py on tiny settings."""

import argparse
import dataclasses
import json

import keras
import numpy as np
import pytest

import evaluate
import keras_losses  # noqa: F401  (what a user imports before load_model)
import reproduce
import train
from data.nodules import NoduleSpec
from tasks.nodules.config import NodulesConfig, nodule_spec
from tasks.nodules.reproduction import run_overrides
from tasks.nodules.training import train_model, training_fit_light

# Baltatzis et al. 2021, Table 1 as printed: (scenario, D_tr, D_te, loss, (Acc, SE, SP)) in the table's
# order. The reproduction's "paper" column must carry these numbers, whatever
# tasks/nodules/paper.py holds.
PAPER_TABLE1 = [
    (1, (150, 150), (130, 170), "CE", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "CE", (0.62, 0.87, 0.37)),
    (1, (150, 150), (130, 170), "Contrast", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "Contrast", (0.15, 0.30, 0.00)),
    (2, (180, 160), (150, 190), "CE", (0.94, 0.90, 0.98)),
    (2, (180, 160), (190, 150), "CE", (0.96, 0.94, 0.98)),
    (2, (180, 160), (150, 190), "Contrast", (0.27, 0.01, 0.53)),
    (2, (180, 160), (190, 150), "Contrast", (1.00, 1.00, 1.00)),
    (3, (180, 150), (150, 190), "CE", (0.59, 0.35, 0.83)),
]

TINY = ["--epochs", "2", "--n-samples", "24", "--image-size", "32", "--batch-size", "8"]


def test_config_is_validated_with_the_flag_name():
    with pytest.raises(ValueError, match="--train-dist"):
        NodulesConfig(train_dist="180")
    with pytest.raises(ValueError, match="--loss"):
        NodulesConfig(loss="dice")
    assert NodulesConfig(train_dist="180,160").train_dist == [180, 160]


def test_contrastive_train_then_evaluate(tmp_path, assert_png):
    out = tmp_path / "run"
    assert train.main(["--task", "nodules", "--loss", "contrastive", "--train-dist", "180,160", "--out", str(out), *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["loss"] == "contrastive" and config["train_dist"] == [180, 160]
    assert (out / "COMPLETED").exists() and (out / "siamese" / "COMPLETED").exists()
    # The siamese encoder was trained with the contrastive loss; the classifier's encoder is it, frozen.
    encoder = keras.saving.load_model(out / "siamese" / "best.keras")
    assert isinstance(encoder.loss, keras_losses.ContrastiveLoss)
    classifier = keras.saving.load_model(out / "best.keras")
    x = np.random.default_rng(0).uniform(90, 200, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(
        classifier.get_layer("encoder").predict(x, verbose=0), encoder.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )

    # --resume after a finished run trains neither stage again and gives the same classifier.
    stamp = (out / "siamese" / "history.csv").stat().st_mtime_ns, (out / "head" / "history.csv").stat().st_mtime_ns
    assert train.main(["--task", "nodules", "--loss", "contrastive", "--train-dist", "180,160", "--out", str(out),
                       "--resume", *TINY]) == 0
    assert ((out / "siamese" / "history.csv").stat().st_mtime_ns, (out / "head" / "history.csv").stat().st_mtime_ns) == stamp
    np.testing.assert_allclose(keras.saving.load_model(out / "best.keras").predict(x, verbose=0),
                               classifier.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert (out / "COMPLETED").exists() and (out / "siamese" / "COMPLETED").exists()

    ev_out = tmp_path / "eval"
    assert evaluate.main(["--task", "nodules", "--model", str(out), "--test-dist", "150,190", "190,150",
                          "--n-test", "8", "--out", str(ev_out)]) == 0
    metrics = json.loads((ev_out / "metrics.json").read_text())
    assert [r["test"] for r in metrics["results"]] == [[150, 190], [190, 150]]
    for r in metrics["results"]:
        assert r["tp"] + r["fn"] == 4 and r["tn"] + r["fp"] == 4  # 8 samples, balanced
        assert r["acc"] == pytest.approx((r["tp"] + r["tn"]) / 8)
    assert_png(ev_out / "embedding_pca.png")
    assert_png(ev_out / "saliency.png")


def test_ce_run_refuses_to_clobber_and_evaluates_without_figures(tmp_path):
    out = tmp_path / "ce"
    args = ["--task", "nodules", "--loss", "ce", "--out", str(out), *TINY]
    assert train.main(args) == 0
    with pytest.raises(ValueError, match="already exists"):
        train.main(args)
    rc = evaluate.main(["--task", "nodules", "--model", str(out / "best.keras"), "--n-test", "6", "--no-figures"])
    assert rc == 0 and (out / "evaluation" / "metrics.json").exists()
    assert not (out / "evaluation" / "saliency.png").exists()


def test_paper_settings_are_the_defaults():
    cfg = NodulesConfig()
    # Baltatzis et al. 2021, Sec. 3: Adam 1e-4, 100 epochs, batch 32, margin 1, for every network.
    assert (cfg.lr, cfg.head_lr, cfg.epochs, cfg.batch_size, cfg.margin) == (1e-4, 1e-4, 100, 32, 1.0)
    assert cfg.encoder == "classic" and cfg.noise_on == "foreground"
    with pytest.raises(ValueError, match="--encoder"):
        NodulesConfig(encoder="lenet4")
    with pytest.raises(ValueError, match="--noise-on"):
        NodulesConfig(noise_on="background")
    with pytest.raises(ValueError, match="--scale"):
        NodulesConfig(scale=1.5)
    with pytest.raises(ValueError, match="--head-init"):
        NodulesConfig(head_init="he")


def test_resume_refuses_a_run_with_another_head_init(tmp_path):
    from tasks.nodules.reproduction import _check_resumed

    old_run = dataclasses.asdict(NodulesConfig())
    del old_run["head_init"]  # a run saved before head_init existed was started by Glorot
    _check_resumed(old_run, NodulesConfig(head_init="glorot"), tmp_path)
    with pytest.raises(ValueError, match="head_init='glorot'.*asks for 'zeros'"):
        _check_resumed(old_run, NodulesConfig(head_init="zeros"), tmp_path)


def test_generator_settings_reach_the_generator():
    spec = nodule_spec(dataclasses.asdict(NodulesConfig(image_size=32, noise_on="image", spikes=7, spike_height=0.3)))
    assert (spec.size, spec.noise_on, spec.spikes, spec.spike_height) == (32, "image", 7, 0.3)
    # A run saved before these settings existed is regenerated with the generator it was made with.
    assert nodule_spec({"image_size": 64, "noise_sd": 8.0}) == NoduleSpec()


def test_reproduce_overrides_are_typed_and_checked():
    args = argparse.Namespace(set=["noise_on=image", "spikes=7", "scale=0.2"], image_size=32, encoder="modern")
    assert run_overrides(args) == {"noise_on": "image", "spikes": 7, "scale": 0.2, "image_size": 32, "encoder": "modern"}
    with pytest.raises(ValueError, match="--set 'seed=3'"):
        run_overrides(argparse.Namespace(set=["seed=3"], image_size=None, encoder=None))
    with pytest.raises(ValueError, match="spikes expects a int"):
        run_overrides(argparse.Namespace(set=["spikes=many"], image_size=None, encoder=None))


def test_light_fit_trains_the_same_model(tmp_path):
    # training_fit_light keeps the best epoch in memory instead of checkpointing every epoch:
    # same data, seeds and selection, so the same classifier.
    cfg = NodulesConfig(loss="ce", n_samples=24, epochs=3, image_size=32, batch_size=8, encoder="modern")
    full = train_model(cfg, tmp_path / "full", verbose=0)[1]
    light = train_model(cfg, tmp_path / "light", verbose=0, fit=training_fit_light)[1]
    x = np.random.default_rng(4).uniform(90, 200, (3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(light.predict(x, verbose=0), full.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert type(light.get_layer("encoder").get_layer("pool1")).__name__ == "MaxPooling2D"  # --encoder modern
    assert (tmp_path / "light" / "COMPLETED").exists() and (tmp_path / "light" / "last.keras").exists()


@pytest.mark.slow
def test_quick_reproduction_writes_table1(tmp_path, assert_png):
    out = tmp_path / "rep"
    argv = ["nodules", "--quick", "--out", str(out), "--epochs", "1", "--n-samples", "20", "--n-test", "8",
            "--image-size", "32"]
    assert reproduce.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["rows"] and len(results["rows"]) == 9
    keys = ["scenario", "train", "test", "loss", "acc", "se", "sp", "acc_sd", "paper"]
    for row, (scenario, tr, te, loss, paper) in zip(results["rows"], PAPER_TABLE1, strict=True):
        assert list(row) == keys
        assert (row["scenario"], row["train"], row["test"]) == (scenario, list(tr), list(te))
        assert row["loss"] == {"CE": "ce", "Contrast": "contrastive"}[loss]
        assert row["paper"] == {"acc": paper[0], "se": paper[1], "sp": paper[2]}
        for k in ("acc", "se", "sp"):
            assert 0.0 <= row[k] <= 1.0
        assert row["acc"] == pytest.approx((row["se"] + row["sp"]) / 2)  # balanced test sets
        assert row["acc_sd"] == 0.0  # one seed
    report = (out / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| ") and "| D(" in line]
    assert len(table) == 9 and "fig2_embedding_pca.png" in report
    assert_png(out / "fig2_embedding_pca.png")
    assert_png(out / "fig3_saliency.png")
    details = json.loads((out / "details.json").read_text())
    assert details["settings"]["seeds"] == 1 and details["settings"]["epochs"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        reproduce.main(argv)
    assert reproduce.main([*argv, "--resume"]) == 0  # reuses every finished run


def test_image_size_rule_picks_the_nearest_in_log_ratio_and_keeps_32_on_a_tie():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "nodules_image_size.py"
    spec = importlib.util.spec_from_file_location("nodules_image_size", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.choose(11.2, {32: 18.8, 64: 37.6}) == 32
    assert bench.choose(30.0, {32: 18.8, 64: 37.6}) == 64
    assert bench.choose(20.0, {32: 10.0, 64: 40.0}) == 32  # 2x off either way: a tie


def test_image_size_default_depends_on_the_data_source(tmp_path):
    assert NodulesConfig().image_size == 32
    assert NodulesConfig(data_dir=str(tmp_path)).image_size == 64
    assert NodulesConfig(image_size=48).image_size == 48
    assert NodulesConfig().head_output == "sigmoid" and NodulesConfig().saliency == "score"


def test_table1_rows_are_judged_on_the_paper_side_of_0_8():
    from tasks.nodules.reproduction import judge_rows

    rows = [
        {"scenario": 2, "loss": "ce", "train": [180, 160], "test": [150, 190], "paper": {"acc": 0.94}},
        {"scenario": 2, "loss": "contrastive", "train": [180, 160], "test": [150, 190], "paper": {"acc": 0.27}},
    ]
    details = [
        {"per_seed": [{"acc": 0.90}, {"acc": 0.92}, {"acc": 0.95}]},  # generalises on every seed
        {"per_seed": [{"acc": 0.10}, {"acc": 0.90}, {"acc": 0.50}]},  # spread over the line
    ]
    ce, contrastive = judge_rows(rows, details)
    assert ce["direction"] == "greater" and ce["paper_effect"] == pytest.approx(0.14)
    assert ce["verdict"] == "held"
    assert contrastive["direction"] == "less" and contrastive["verdict"] == "inconclusive"

"""The lung/liver task end to end: flags, train.py, evaluate.py and reproduce.py on tiny data."""

import argparse
import csv
import json
import math
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import evaluate
import keras_losses  # noqa: F401  (what a user imports before load_model)
import train
from tasks import ct
from tasks.ct.config import resolve_config
from tasks.ct.training import build_loss

TINY = [
    "--image-size",
    "32",
    "--depth",
    "2",
    "--base-filters",
    "4",
    "--epochs",
    "2",
    "--no-augment",
    "--steps-per-epoch",
    "3",
    "--batch-size",
    "4",
]


def parse(*argv, task="lung"):
    parser = argparse.ArgumentParser()
    ct.add_train_arguments(parser, task)
    return resolve_config(parser.parse_args(list(argv)), task)


def test_defaults_cite_the_paper_and_presets_yield_to_explicit_flags():
    cfg = parse()
    assert (cfg.loss, cfg.arch, cfg.lr, cfg.kernel_stddev, cfg.bias_value) == (
        "glf-det",
        "munet",
        1e-3,
        0.05,
        0.1,
    )
    assert (cfg.bn_momentum, cfg.dropout, cfg.threshold) == (0.9, 0.6, 0.5)
    assert (cfg.alpha_p, cfg.alpha_n, cfg.beta2) == (1.0, 1.0, 1.0)  # Dice start
    paper = parse("--paper")
    assert (paper.image_size, paper.base_filters, paper.steps_per_epoch, paper.lr) == (
        512,
        64,
        0,
        1e-4,
    )
    assert parse("--paper", "--image-size", "256").image_size == 256
    quick = parse("--quick", "--epochs", "5")
    assert (quick.image_size, quick.epochs) == (64, 5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image-size", "100"], "--image-size must be a positive multiple of 2\\*\\*depth = 16"),
        (["--beta2", "0"], "--beta2 must be a positive number"),
        (["--threshold", "1.5"], "--threshold must lie in"),
        (["--paper", "--quick"], "exclude each other"),
        (["--data-dir", "/no/such/folder"], "--data-dir /no/such/folder does not exist"),
        (["--arch", "unet", "--output-layer", "softmax2"], "is an option of --arch munet"),
        (["--exp-top-k", "0"], "--exp-top-k must be in 1..27"),
    ],
)
def test_bad_flags_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_glf_rule_choices_match_the_library():
    from keras_losses.adaptive import deterministic as det
    from tasks.ct import config

    assert config.GUARD_MODES == det.GUARD_MODES
    assert config.STATISTIC_FORMS == det.STATISTIC_FORMS
    assert config.COUNT_KINDS == det.COUNT_KINDS
    assert config.BETA2_STATISTICS == det.BETA2_STATISTICS
    assert config.GUARD_SCALES == det.GUARD_SCALES
    from architectures.munet import OUTPUT_LAYERS
    from keras_losses.adaptive.prepare import RULES

    assert config.OUTPUT_LAYERS == OUTPUT_LAYERS
    assert set(config.EXP_MODES) == set(RULES) - {"det"}
    # the task's defaults are the library's (the paper's reading where the text speaks)
    cb = det.DeterministicGLFCallback(keras_losses.GeneralizedLoss())
    cfg = config.CTConfig()
    assert (cfg.glf_guard, cfg.glf_statistic, cfg.glf_counts, cfg.glf_beta2_statistic) == (
        cb.guard_mode,
        cb.statistic,
        cb.counts,
        cb.beta2_statistic,
    )
    assert cfg.glf_guard == "literal" and cfg.glf_bounds[0] == 0 and cfg.glf_bounds[1] == math.inf


def test_reproduction_g_e_is_the_exploratory_rule_from_dice():
    """G(E) of reproduce.py trains with ExploratoryGLFModel's exact search (paper Fig. 2a),
    from the Dice values (Fig. 6); G(D) with the deterministic callback and the literal guard."""
    from keras_losses.adaptive import DeterministicGLFCallback, ExploratoryGLFModel
    from tasks.ct.config import CTConfig
    from tasks.ct.reproduction import model_overrides
    from tasks.ct.training import build_model, compile_model

    over = model_overrides({"alpha": 0.3, "beta": 0.7}, {"beta2": 2.0})
    assert over["G(E)"]["loss"] == "glf-exp" and over["G(E)"]["exp_mode"] == "exp"
    tiny = {"image_size": 16, "depth": 2, "base_filters": 2}
    cfg = CTConfig(**over["G(E)"], **tiny)
    model, callbacks = compile_model(build_model(cfg), cfg)
    assert isinstance(model, ExploratoryGLFModel) and model.mode == "exact"
    assert model.loss.coefficients == {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    # one step: the exploratory train step ran (it logs the chosen action's search score)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    y = (x > 0.8).astype("float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)
    row = callbacks[0].rows[0]
    assert isinstance(row["score"], float) and math.isfinite(row["score"])
    # the hybrid mode with its k, as reproduce.py --exp-mode exp-hybrid --exp-top-k 2 asks
    over = model_overrides({"alpha": 0.3, "beta": 0.7}, {"beta2": 2.0}, "exp-hybrid")
    cfg = CTConfig(**over["G(E)"], exp_top_k=2, **tiny)
    model, _ = compile_model(build_model(cfg), cfg)
    assert isinstance(model, ExploratoryGLFModel) and (model.mode, model.top_k) == ("hybrid", 2)
    cfg = CTConfig(**over["G(D)"], **tiny)
    model, callbacks = compile_model(build_model(cfg), cfg)
    assert isinstance(callbacks[0], DeterministicGLFCallback)
    assert callbacks[0].guard_mode == "literal" and not callbacks[0].bounds


def test_losses_are_the_glf_special_cases():
    """Dice, effectiveness and Tversky give the GLF's value at the paper's coefficients."""
    rng = np.random.default_rng(0)
    y = (rng.random((2, 8, 8, 1)) > 0.7).astype("float32")
    p = rng.random((2, 8, 8, 1)).astype("float32")

    def same(loss, alpha_p, alpha_n, beta2):
        glf = keras_losses.GeneralizedLoss(alpha_p, alpha_n, beta2)
        return float(loss(y, p)) == pytest.approx(float(glf(y, p)), rel=1e-6)

    assert isinstance(build_loss(parse("--loss", "dice")), keras_losses.DiceLoss)
    assert same(build_loss(parse("--loss", "dice")), 1.0, 1.0, 1.0)
    effectiveness = build_loss(parse("--loss", "effectiveness", "--beta2", "4"))
    assert effectiveness.beta2 == 4.0 and same(effectiveness, 1.0, 1.0, 4.0)
    t = build_loss(parse("--loss", "tversky", "--tversky-alpha", "0.3", "--tversky-beta", "0.7"))
    assert (t.alpha, t.beta) == (0.3, 0.7) and same(t, 0.6, 1.4, 1.0)
    g = build_loss(parse("--loss", "glf", "--alpha-p", "0.5", "--alpha-n", "2", "--beta2", "3"))
    assert g.coefficients == {"alpha_p": 0.5, "alpha_n": 2.0, "beta2": 3.0}


def test_train_glf_det_writes_a_complete_run_directory(patch_dir, tmp_path, assert_png):
    out = tmp_path / "run"
    train.main(
        [
            "--task",
            "lung",
            "--loss",
            "glf-det",
            "--data-dir",
            str(patch_dir),
            "--out",
            str(out),
            *TINY,
        ]
    )
    for name in (
        "config.json",
        "split.json",
        "best.keras",
        "last.keras",
        "history.csv",
        "glf_trajectory.csv",
        "glf_coefficients.png",
        "glf_tversky_trajectory.png",
        "COMPLETED",
        "eval/metrics.json",
        "eval/tumour_slices.png",
        "eval/tumour_free_dice.png",
        "eval/dice_vs_size.png",
        "eval/overlays.png",
    ):
        assert (out / name).is_file(), name
        if name.endswith(".png"):
            assert_png(out / name)
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    config = json.loads((out / "config.json").read_text())
    assert config["loss"] == "glf-det" and config["image_size"] == 32
    split = json.loads((out / "split.json").read_text())
    assert set(split["test"]).isdisjoint(split["train"] + split["val"])
    assert all(
        c.startswith("test_patches") for c in split["test"]
    )  # tests on the other file's patients
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(0.0 <= float(r["val_dice"]) <= 1.0 for r in rows)
    with open(out / "glf_trajectory.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6  # one row per iteration: 2 epochs x 3 steps
    model = keras.saving.load_model(out / "best.keras")
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    assert model.predict_on_batch(x).shape == (2, 32, 32, 1)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert (
        metrics["models"]["glf-det"]["tumour_slices"]["n"] == 16
    )  # 20 test slices, every 5th empty

    # the test metrics against a numpy recount on the test file, read directly
    with h5py.File(patch_dir / "test_patches.h5") as f:
        images, labels = f["images"][()][:, 0, ..., None], f["labels"][()][:, 0, ..., None]
    probs = model.predict_on_batch(images).reshape(20, -1)
    truth = (labels > 0.5).reshape(20, -1)
    tumour = truth.any(1)
    # Evaluation predicts in batches of 8, this recount in one batch of 20: oneDNN may sum a
    # convolution in another order for another batch size or CPU, which moves a probability
    # by float32 rounding (well under 1e-4 for this 2-level, 4-filter net). A pixel that close
    # to the 0.5 threshold may fall either way (an untrained net has many), so the reported
    # metric must lie between the recounts with those pixels all negative and all positive;
    # every other pixel counts exactly.
    ambiguous = np.abs(probs - 0.5) < 1e-4
    recounts = []
    for pred in (probs >= 0.5) & ~ambiguous, (probs >= 0.5) | ambiguous:
        tp, fp, fn = (truth & pred).sum(1), (~truth & pred).sum(1), (truth & ~pred).sum(1)
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
        recall = tp / np.maximum(tp + fn, 1)
        recounts.append((dice[tumour].mean(), recall[tumour].mean(), (fp[~tumour] == 0).mean()))
    got = metrics["models"]["glf-det"]
    reported = (
        got["tumour_slices"]["dice"],
        got["tumour_slices"]["recall"],
        got["tumour_free_slices"]["dice"],
    )
    for value, a, b in zip(reported, *recounts, strict=True):
        assert min(a, b) - 1e-6 <= value <= max(a, b) + 1e-6, (reported, recounts)

    # evaluate.py on two runs' models (the same run twice, labelled) writes metrics and overlays
    ev = tmp_path / "eval"
    result = evaluate.main(
        [
            "--task",
            "lung",
            "--model",
            str(out),
            "--model",
            str(out / "last.keras"),
            "--label",
            "best",
            "--label",
            "last",
            "--out",
            str(ev),
        ]
    )
    assert result == 0
    saved = json.loads((ev / "metrics.json").read_text())
    assert set(saved["models"]) == {"best", "last"}
    assert saved["models"]["best"] == metrics["models"]["glf-det"]
    for png in ("tumour_slices.png", "tumour_free_dice.png", "dice_vs_size.png", "overlays.png"):
        assert_png(ev / png)


def test_existing_run_directory_is_refused(patch_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ValueError, match="already exists"):
        train.main(
            [
                "--task",
                "lung",
                "--loss",
                "dice",
                "--data-dir",
                str(patch_dir),
                "--out",
                str(out),
                *TINY,
            ]
        )


def test_check_data_reports_a_bad_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "bad"
    folder.mkdir()
    with h5py.File(folder / "val_patches.h5", "w") as f:
        f["images"] = np.zeros((4, 1, 32, 32), np.float32)
        f["labels"] = np.zeros((4, 1, 16, 16))
    with pytest.raises(SystemExit):
        train.main(
            ["--task", "lung", "--check-data", "--data-dir", str(folder), "--image-size", "32"]
        )
    assert "val_patches.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_glf_lung_quick(patch_dir, tmp_path, assert_png):
    import reproduce

    out = tmp_path / "report"
    reproduce.main(
        [
            "glf-lung",
            "--quick",
            "--data-dir",
            str(patch_dir),
            "--out",
            str(out),
            "--image-size",
            "32",
            "--depth",
            "2",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--tversky-grid",
            "0.3",
            "--beta2-grid",
            "2,4",
            "--seeds",
            "2",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results["ours"]) == {"D", "E", "T", "G(D)", "G(E)"}
    assert results["settings"]["seeds"] == [0, 1] and set(results["per_seed"]) == {"0", "1"}
    assert results["ours"]["D"]["dice"]["n"] == 2
    claims = {c["claim"]: c for c in results["claims"]}
    assert claims["G(E) recall > best conventional recall"]["verdict"] in (
        "held",
        "not held",
        "inconclusive",
    )
    assert "G(D) tumour-free Dice > T" in claims and "precision spread < 2 % points" in claims
    assert (out / "validation_curves.png").is_file()
    assert set(results["stopping"]["0"]) == {"D", "E", "T", "G(D)", "G(E)"}
    # G(E) is the exploratory rule: its trajectory has the search score in every row
    rows = keras_losses.adaptive.read_trajectory(
        Path(results["runs"]["0"]["G(E)"]) / "glf_trajectory.csv"
    )
    assert rows and all(math.isfinite(r["score"]) for r in rows)
    assert results["selected"]["E"]["beta2"] in (2.0, 4.0)
    report = (out / "report.md").read_text()
    # 88.3: the paper's lung recall of G(D) (Sec. IV), a literal, so a changed paper table fails here
    assert "88.3" in report and "| G(E) |" in report
    for png in (
        "tumour_slices.png",
        "dice_vs_size.png",
        "overlays.png",
        "tumour_free_dice.png",
        "glf_coefficients.png",
    ):
        assert_png(out / png)
    # the study in pieces: a report of one model alone, its finished runs reused
    tiny = ["--image-size", "32", "--depth", "2", "--epochs", "1", "--steps-per-epoch", "2"]
    piece = ["--models", "G(E)", "--resume", "--seeds", "2", "--out", str(out)]
    reproduce.main(["glf-lung", "--quick", "--data-dir", str(patch_dir), *tiny, *piece])
    results = json.loads((out / "results.json").read_text())
    assert set(results["ours"]) == {"G(E)"} and results["settings"]["seeds"] == [0, 1]


@pytest.mark.slow
def test_default_phantom_run_end_to_end(tmp_path):
    out = tmp_path / "phantom"
    train.main(["--task", "lung", "--loss", "glf-det", "--out", str(out), "--quick"])
    assert (out / "COMPLETED").is_file() and (out / "best.keras").is_file()


def test_output_layer_flag_reaches_the_munet():
    from tasks.ct.config import CTConfig
    from tasks.ct.training import build_model

    tiny = {"image_size": 16, "depth": 2, "base_filters": 2}
    names = {layer.name for layer in build_model(CTConfig(**tiny)).layers}
    assert "mask" in names and "mask_logits" not in names
    model = build_model(CTConfig(output_layer="softmax2", **tiny))
    assert "mask_logits" in {layer.name for layer in model.layers}
    assert model.output_shape == (None, 16, 16, 1)


def test_glf_run_ends_with_a_line_on_the_coefficients():
    from tasks.ct.training import trajectory_line

    glf = {
        "steps": 240,
        "final": {"alpha_p": 1.0, "alpha_n": 1e6, "beta2": 0.8685},
        "at_bound_fraction": {
            "alpha_p": {"floor_or_ceiling": 0.0, "clip_bound": 0.0},
            "alpha_n": {"floor_or_ceiling": 0.825, "clip_bound": 0.0},
            "beta2": {"floor_or_ceiling": 0.0, "clip_bound": 0.0},
        },
        "max_at_bound_fraction": 0.825,
        "fig6": {"pattern_held": False},
    }
    line = trajectory_line(glf)
    assert line.startswith("GLF coefficients after 240 steps: alpha_P 1, alpha_N 1e+06, beta^2 0.869;")
    assert "floor/ceiling 1e-06/1e+06: alpha_P 0.0 %, alpha_N 82.5 %, beta^2 0.0 %" in line
    assert "each rising and falling at least once; beta^2 > 1 for most steps): no." in line
    assert line.endswith("see docs/lung.md.")
    glf.update(max_at_bound_fraction=0.1, fig6={"pattern_held": True})
    assert trajectory_line(glf).endswith("most steps): yes.")


def test_small_tumour_range_uses_the_liver_spacing_the_paper_states():
    from tasks.ct.config import CTConfig
    from tasks.ct.evaluation import small_px

    # Fig. 4 caption: 512 px = 30 cm on the liver slices; the lung's 0.78 mm is ours
    liver = small_px(CTConfig(task="liver", image_size=64, pixel_mm=2.0))
    lung = small_px(CTConfig(task="lung", image_size=64, pixel_mm=2.0))
    assert liver == pytest.approx(100 * (300 / 512 / 2) ** 2)
    assert lung == pytest.approx(100 * (0.78 / 2) ** 2)

"""The loss benchmark: its loss table covers the library, the stopping rule, ranks, and the
whole pipeline on tiny data (train, resume, test, results.json, report, figures)."""

import json
import math

import keras
import numpy as np
import pytest

import keras_losses
import reproduce
from tasks.lossbench import losses, report
from tasks.lossbench.runs import PlateauStop, foreground_dice
from tests.tasks.test_hippocampus import write_msd


def test_every_exported_loss_is_benchmarked_or_excluded_with_a_reason():
    entered = {c for s in losses.SPECS for c in s.library_class}
    classes = {
        name
        for name in keras_losses.__all__
        if isinstance(getattr(keras_losses, name), type)
        and issubclass(
            getattr(keras_losses, name), (keras.losses.Loss, keras.callbacks.Callback, keras.Model)
        )
    }
    assert classes - entered - set(losses.NOT_SEGMENTATION) == set()
    assert not entered & set(losses.NOT_SEGMENTATION)


def test_the_doc_lists_every_benchmark_loss():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "loss-benchmark.md").read_text()
    assert [s.name for s in losses.SPECS if f"| {s.name} |" not in doc] == []


def test_adaptive_rules_enter_the_binary_task_only():
    assert all(s.tasks == ("lung",) for s in losses.SPECS if s.adaptive)
    names = [s.name for s in losses.specs_for("hippocampus")]
    assert "G(D)" not in names and "CE" in names
    with pytest.raises(ValueError, match="unknown"):
        losses.specs_for("lung", ["NoSuchLoss"])


class _Model:
    stop_training = False


@pytest.mark.parametrize(
    "values,patience,stops_at",
    [
        ([0.1, 0.2, 0.3, 0.4], 2, None),  # still gaining
        ([0.5, 0.5, 0.5], 2, 3),  # no gain twice after the first epoch
        ([0.5, 0.501, 0.6, 0.6, 0.6], 2, 5),  # +0.001 is not a gain above min_delta 0.002
        ([0.5, float("nan"), 0.49], 2, 3),
    ],
)
def test_plateau_stop_rule(values, patience, stops_at):
    stop = PlateauStop(patience, 0.002)
    stop.set_model(_Model())
    stopped = None
    for epoch, v in enumerate(values):
        stop.on_epoch_end(epoch, {"val_dice": v})
        if stop.model.stop_training and stopped is None:
            stopped = epoch + 1
    assert stopped == stops_at
    restored = PlateauStop(patience, 0.002)
    restored.set_state(json.loads(json.dumps(stop.get_state())))
    assert restored.get_state() == stop.get_state()


def test_foreground_dice_by_hand():
    # shape: (1, 2, 3); class 1: 2 TP of 3 + 2 -> 0.8; class 2: absent in both -> 1
    true = np.array([[[1, 1, 0], [0, 0, 0]]])
    pred = np.array([[[1, 1, 1], [0, 0, 0]]])
    assert foreground_dice(pred, true, 3) == pytest.approx((0.8 + 1.0) / 2)
    assert foreground_dice(pred, true, 1) == pytest.approx(0.8)


def test_ranks_average_ties_and_missing_values_last():
    assert report.ranks({"a": 0.9, "b": 0.8, "c": 0.9, "d": None}, "higher") == {
        "a": 1.5,
        "b": 3.0,
        "c": 1.5,
        "d": 4.0,
    }
    assert report.ranks({"a": 3.0, "b": 1.0}, "lower") == {"a": 2.0, "b": 1.0}


def test_summary_mean_sd_and_empty_counts():
    def metrics(d, h, empty):
        cls = {
            "dice": d,
            "hd95_mm": h,
            "empty_prediction": empty,
            "empty_label": 0,
            "both_empty": 1,
        }
        return {"dice": d, "hd95_mm": h, "per_class": {"tumour": cls}, "plateau": True, "epochs": 3}

    runs = {
        "lung": {
            "A": {"0": metrics(0.5, 4.0, 1), "1": metrics(0.7, 6.0, 0)},
            "B": {"0": metrics(0.4, 2.0, 0)},
        }
    }
    s = report.summarise(runs)["lung"]
    assert s["A"]["dice"]["mean"] == pytest.approx(0.6)
    assert s["A"]["dice"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert s["B"]["dice"]["sd"] is None
    assert (s["A"]["rank_dice"], s["A"]["rank_hd95_mm"]) == (1.0, 2.0)
    assert s["A"]["per_class"]["tumour"]["empty_prediction"] == 1
    assert "| A | 60.0 ± 14.1 | 5.0 ± 1.4 | 1 | 2 | 2 | 2/2 | 1 |" in report.table({"lung": s})


@pytest.fixture
def tiny_data(tmp_path, patch_dir):
    hip = tmp_path / "hip"
    write_msd(hip, n_volumes=6, shape=(12, 14, 4))
    return hip, patch_dir


def test_pipeline_end_to_end_and_resume(tiny_data, tmp_path, assert_png, capsys):
    hip, lung = tiny_data
    out = tmp_path / "bench"
    argv = [
        "loss-benchmark",
        "--quick",
        "--out",
        str(out),
        "--seeds",
        "0",
        "--losses",
        "CE,G(D)",
        "--hippocampus-dir",
        str(hip),
        "--lung-dir",
        str(lung),
        "--size",
        "16",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert reproduce.main([*argv, "--max-runs", "2"]) == 0
    first = json.loads((out / "results.json").read_text())
    assert len(first["remaining_runs"]) == 3 - 2
    assert reproduce.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["remaining_runs"] == []
    assert set(results["summary"]) == {"hippocampus", "lung"}
    assert set(results["summary"]["hippocampus"]) == {"CE"}
    assert set(results["summary"]["lung"]) == {"CE", "G(D)"}
    run = results["runs"]["hippocampus"]["CE"]["0"]
    assert set(run["per_class"]) == {"anterior", "posterior"}
    n_test = len(json.loads((out / "runs/hippocampus/CE/seed0/split.json").read_text())["test"])
    for c in run["per_class"].values():  # every test volume is counted in exactly one case
        assert c["both"] + c["empty_prediction"] + c["empty_label"] + c["both_empty"] == n_test
    assert (out / "runs" / "lung" / "G-D" / "seed0" / "glf_trajectory.csv").exists()
    assert_png(out / "loss_benchmark.png")
    assert_png(out / "loss_benchmark_curves.png")
    assert "| CE |" in (out / "report.md").read_text()
    # a third call trains nothing: every run is read back
    capsys.readouterr()
    assert reproduce.main(argv) == 0
    assert " train " not in capsys.readouterr().out


@pytest.mark.slow
def test_quick_on_the_shipped_data(shared_data, tmp_path, assert_png):
    """The CI command itself: every loss, both tasks, two seeds (minutes)."""
    out = tmp_path / "quick"
    assert (
        reproduce.main(
            ["loss-benchmark", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["remaining_runs"] == []
    assert set(results["summary"]["lung"]) == {s.name for s in losses.specs_for("lung")}
    assert_png(out / "loss_benchmark.png")


def _runs_for_claims(compound_better: bool, glf_gain: float):
    """Two tasks, three seeds; compounds C1, C2 and non-compounds N1, N2 (+ the Seo losses)."""
    from tasks.lossbench import claims

    rng = np.random.default_rng(0)
    runs = {"hippocampus": {}, "lung": {}}
    quality = {"C1": 0.8, "C2": 0.78, "N1": 0.7, "N2": 0.6}
    if not compound_better:
        quality = {"C1": 0.6, "C2": 0.62, "N1": 0.8, "N2": 0.78}
    for task in runs:
        for name, q in quality.items():
            runs[task][name] = {
                str(s): {"dice": q + 0.001 * s, "hd95_mm": 10 * (1 - q)} for s in range(3)
            }
    for name in ("Dice", "Effectiveness", "Tversky"):
        runs["lung"][name] = {
            str(s): {"dice": 0.5 + 0.01 * rng.random(), "hd95_mm": 5.0} for s in range(3)
        }
    for name in ("G(D)", "G(E)"):
        runs["lung"][name] = {
            str(s): {"dice": 0.52 + glf_gain + 0.001 * s, "hd95_mm": 5.0} for s in range(3)
        }
    groups = {"C1": "compound", "C2": "compound", "N1": "region", "N2": "distribution"}
    groups.update({n: "region" for n in ("Dice", "Effectiveness", "Tversky", "G(D)", "G(E)")})
    return claims.judge(runs, groups)


def test_claims_held_and_not_held_by_the_shared_rule():
    held = _runs_for_claims(compound_better=True, glf_gain=0.05)
    assert held["compound-most-robust"]["verdict"] == "held"
    assert held["G(D)-beats-D-E-T"]["verdict"] == "held"
    worse = _runs_for_claims(compound_better=False, glf_gain=-0.1)
    assert worse["compound-most-robust"]["verdict"] == "not held"
    assert worse["G(E)-beats-D-E-T"]["verdict"] == "not held"
    # Seo's Dice, Effectiveness and Tversky enter only the lung task: left out of the ranking
    parts = {p["claim"]: p for p in held["compound-most-robust"]["parts"]}
    assert parts["group"]["effect"]["n"] == 3


def test_claims_without_the_runs_are_not_tested():
    from tasks.lossbench import claims

    out = claims.judge({"lung": {}}, {})
    assert {v["verdict"] for v in out.values()} == {"not tested"}


@pytest.mark.slow
@pytest.mark.parametrize("spec", losses.SPECS, ids=lambda s: s.name)
def test_every_benchmark_loss_trains_a_step_on_both_output_kinds(spec):
    """Each row of the table builds, compiles and takes finite steps on the task's output kind
    (softmax over 3 classes, one sigmoid), with distance maps and schedules where it needs them."""
    from keras_losses.adaptive import prepare_adaptive_glf
    from keras_losses.distance_maps import signed_distance_maps
    from tasks.lossbench.config import BenchConfig
    from tasks.lossbench.data import NUM_CLASSES, one_hot
    from tasks.lossbench.runs import build_network

    rng = np.random.default_rng(0)
    cfg = BenchConfig(depth=2, base_filters=4)
    for task in spec.tasks:
        c = NUM_CLASSES[task]
        ids = np.zeros((4, 16, 16, 1), np.int64)
        ids[:, 4:9, 3:8] = 1
        if c == 3:
            ids[:, 9:12, 3:8] = 2
        x = (rng.random((4, 16, 16, 1)) + ids).astype(np.float32)
        y = one_hot(ids, c)
        if spec.distance_maps:
            y = np.concatenate([y, np.stack([signed_distance_maps(i, c) for i in ids])], -1)
        model = build_network(cfg, c, 16)
        loss = spec.build(c)
        callbacks = []
        if spec.adaptive:
            model, callbacks = prepare_adaptive_glf(model, loss, spec.adaptive, "adam")
        else:
            model.compile(optimizer="adam", loss=loss)
        if spec.schedule is not None:
            callbacks.append(spec.schedule(loss, 8, 4))
        history = model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=callbacks)
        assert all(np.isfinite(history.history["loss"])), (spec.name, task, history.history)

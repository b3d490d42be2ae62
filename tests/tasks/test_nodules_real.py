"""Real nodules in the nodules study (tasks/nodules/real.py, real_reproduction.py): scenarios,
patient-grouped splits, training through the same train_model, evaluate.py and predict.py."""

import json

import numpy as np
import pytest

import evaluate
import predict
import train
from tasks.nodules.config import NodulesConfig
from tasks.nodules.real import SCENARIOS, balance, cue_report, nodules_of, run_sets, split_patients
from tasks.nodules.real_reproduction import verdict_of
from tasks.nodules.sets import training_data
from tests.data.test_lidc import write_table, write_volume

# (texture, calcification, diagnosis) of the nodules of 16 patients, two nodules each
KINDS = [(5, 6, "Malign"), (1, 6, "Benign"), (5, 6, "Benign"), (2, 6, "Malign"), (5, 3, "Benign"), (4, 6, "Malign")]


def real_folder(tmp_path, patients=16):
    folder, rows, k = tmp_path / "lidc", [], 0
    for p in range(patients):
        for n in (1, 2):
            texture, calcification, diagnosis = KINDS[k % len(KINDS)]
            hu = {1: -600.0, 2: -550.0}.get(texture, 300.0 if calcification != 6 else 0.0)
            write_volume(folder, f"P-{p:04d}_R_{n}.nii.gz", hu=hu, radius=(2, 3 + k % 3, 2), shape=(24, 24, 3), centre=(12, 12))
            rows.append((f"P-{p:04d}", n, diagnosis, texture, calcification))
            k += 1
    write_table(folder, rows)
    return folder


def test_patient_split_is_seeded_disjoint_and_sized():
    patients = [f"P{i % 40}" for i in range(100)]
    parts = split_patients(patients, seed=0, val_fraction=0.15, test_fraction=0.35)
    assert set(parts) == set(patients)
    counts = {name: sum(v == name for v in parts.values()) for name in ("train", "val", "test")}
    assert counts == {"train": 20, "val": 6, "test": 14}
    assert split_patients(patients, 0, 0.15, 0.35) == parts
    assert split_patients(patients, 1, 0.15, 0.35) != parts


def test_balance_repeats_the_minority_and_keeps_every_nodule():
    labels = np.array([1] * 3 + [0] * 8)
    idx = np.arange(11)
    out = balance(idx, labels, seed=0)
    assert (labels[out] == 1).sum() == (labels[out] == 0).sum() == 8
    assert set(out) == set(idx)
    counts = np.bincount(out[labels[out] == 1])
    assert sorted(counts[counts > 0]) == [2, 3, 3]  # two whole copies, then 2 of the 3 again
    with pytest.raises(ValueError, match="need both"):
        balance(idx[3:], labels, 0)


def test_scenarios_select_by_attribute_and_never_share_patients(tmp_path):
    folder = real_folder(tmp_path)
    for scenario in SCENARIOS:
        cfg = vars(NodulesConfig(data_dir=str(folder), scenario=scenario, seed=3, cache_dir=str(tmp_path / "c"), image_size=32))
        found, sets = nodules_of(cfg), run_sets(cfg)
        patients = {k: {found.info[i]["patient_id"] for i in v} for k, v in sets.items()}
        tests = set().union(*(patients[k] for k in sets if k not in ("train", "val")))
        assert not patients["train"] & patients["val"] and not patients["train"] & tests and not patients["val"] & tests
        for name, idx in sets.items():
            kinds = {(found.info[i]["texture"], found.info[i]["calcification"], int(found.labels[i])) for i in idx}
            if scenario == "texture" and name in ("train", "val", "tie kept"):
                assert kinds <= {(5, 6, 1), (4, 6, 1), (1, 6, 0)}, name
            if scenario == "texture" and name == "tie reversed":
                assert kinds <= {(2, 6, 1), (5, 6, 0)} and kinds, name
            if scenario == "calcification" and name in ("train", "tie kept"):
                assert kinds <= {(5, 6, 1), (4, 6, 1), (5, 3, 0)}, name
            if scenario == "calcification" and name == "tie broken":
                assert kinds <= {(5, 6, 1), (4, 6, 1), (5, 6, 0)}, name
        x_tr, y_tr, x_va, y_va = training_data(cfg)  # the one place that knows the source
        assert x_tr.shape[1:] == (32, 32) and (y_tr == 1).sum() == (y_tr == 0).sum()


def test_cue_report_is_pearson_r():
    hu = np.array([-600.0, -100.0, 0.0, 250.0])
    labels = np.array([0, 1, 0, 1])
    out = cue_report(0.001 * hu + 0.5, labels, hu)
    assert out["r_hu"] == pytest.approx(1.0)
    assert out["r_label"] == pytest.approx(np.corrcoef(hu, labels)[0, 1])
    assert np.isnan(cue_report(np.ones(4), labels, hu)["r_hu"])


def test_verdict_compares_with_the_synthetic_row_and_the_seed_spread():
    def row(scenario, test, loss, bal, sd):
        return {"scenario": scenario, "test": test, "loss": loss, "balanced_acc": bal, "balanced_acc_sd": sd,
                "n_seeds": 3, "r_hu": 0.1}

    rows = [row("texture", "tie kept", "ce", 0.9, 0.01), row("texture", "tie kept", "contrastive", 0.9, 0.01),
            row("texture", "tie reversed", "ce", 0.60, 0.05), row("texture", "tie reversed", "contrastive", 0.50, 0.05)]
    v = verdict_of(rows)
    ood = {o["loss"]: o for o in v["ood"]}
    # Paper, S2 -> D(150,190): CE 0.94, contrastive 0.27.
    assert ood["ce"]["worse_than_synthetic"] and not ood["contrastive"]["worse_than_synthetic"]
    assert ood["ce"]["synthetic_paper"] == 0.94 and ood["ce"]["real_in_distribution"] == 0.9
    cue = {c["test"]: c for c in v["cue"]}
    # 0.10 apart; 2 standard errors = 2 sqrt((0.05^2 + 0.05^2) / 3) = 0.082 -> differ; 0 apart -> not.
    assert cue["tie reversed"]["differs"] is True and cue["tie kept"]["differs"] is False


def test_real_run_trains_evaluates_and_predicts(tmp_path, assert_png):
    folder = real_folder(tmp_path)
    run = tmp_path / "run"
    assert train.main(["--task", "nodules", "--loss", "ce", "--data-dir", str(folder), "--scenario", "texture",
                       "--epochs", "1", "--image-size", "32", "--cache-dir", str(tmp_path / "c"), "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data_dir"] == str(folder.resolve()) and config["scenario"] == "texture"
    assert config["cache_dir"] == str((tmp_path / "c").resolve())  # evaluate.py may run from another folder
    # evaluate.py: the run's held-out test patients, then every labelled nodule of a folder.
    assert evaluate.main([str(run), "--no-figures"]) == 0
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert [r["test"] for r in metrics["results"]] == ["tie kept", "tie reversed", "all"]
    for r in metrics["results"]:
        assert r["tp"] + r["fn"] == r["n_malignant"] and r["tn"] + r["fp"] == r["n_benign"]
    assert evaluate.main([str(run), "--data-dir", str(folder), "--out", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    (all_nodules,) = ev["results"]
    assert all_nodules["n_malignant"] + all_nodules["n_benign"] == 32
    # The run's own folder holds its training and validation patients: counted and warned about.
    parts = split_patients([f"P-{i:04d}" for i in range(16)], config["seed"], config["val_fraction"], config["test_fraction"])
    assert ev["nodules_of_training_or_validation_patients"] == 2 * sum(v != "test" for v in parts.values()) > 0
    assert_png(tmp_path / "ev" / "saliency.png")
    # predict.py: a folder of nodules the run has never seen, one without a mask, no table.
    new = tmp_path / "new"
    write_volume(new, "X_R_1.nii.gz")
    write_volume(new, "X_R_2.nii.gz", hu=-600.0)
    write_volume(new, "X_R_3.nii.gz", mask=False)
    assert predict.main([str(run), str(new), "--out", str(tmp_path / "pred")]) == 2  # one volume failed
    lines = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()
    assert lines[0].split(",") == ["volume", "slice", "mean_hu", "diagnosis", "p_benign", "p_malignant", "predicted"]
    assert len(lines) == 3 and "X_R_1.nii.gz" in lines[1]
    p = [float(line.split(",")[5]) for line in lines[1:]]
    assert all(0 <= v <= 1 for v in p)


@pytest.mark.slow
def test_nodules_real_reproduction_writes_table_verdict_and_figures(tmp_path, assert_png):
    import reproduce

    folder = real_folder(tmp_path, patients=20)
    out = tmp_path / "rep"
    argv = ["nodules-real", "--data-dir", str(folder), "--out", str(out), "--quick", "--epochs", "1"]
    assert reproduce.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    # control: 1 test; texture and calcification: 3 tests each; two losses
    assert [(r["scenario"], r["test"], r["loss"]) for r in results["rows"][:4]] == [
        ("control", "all", "ce"), ("control", "all", "contrastive"), ("texture", "tie kept", "ce"), ("texture", "tie kept", "contrastive")]
    assert len(results["rows"]) == 14
    for r in results["rows"]:
        assert r["balanced_acc"] == pytest.approx((r["se"] + r["sp"]) / 2, nan_ok=True) and r["n_seeds"] == 1
    assert {o["test"] for o in results["verdict"]["ood"]} == {"tie reversed", "tie broken"}
    assert all(c["differs"] is None for c in results["verdict"]["cue"])  # one seed: no spread to judge by
    report = (out / "report.md").read_text()
    assert "The paper's prediction" in report and report.count("| texture |") == 6
    assert_png(out / "fig_real_pca.png")
    assert_png(out / "fig_real_saliency.png")
    assert list((out / "cache").glob("crops-*.npz"))
    with pytest.raises(FileExistsError, match="--resume"):
        reproduce.main(argv)
    assert reproduce.main([*argv, "--resume"]) == 0

"""Distribution and kill/resume, each in fresh processes running ``tests/training/worker.py``.

The logical CPU devices (2 replicas on one CPU) and ``TF_CONFIG`` must be set before
TensorFlow starts, hence subprocesses.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("worker.py")
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def run_worker(result, *args, env=None, check=True):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(result), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def max_weight_diff(a, b):
    return max(
        float(np.abs(np.array(x) - np.array(y)).max())
        for x, y in zip(a["weights"], b["weights"], strict=True)
    )


# How far a replicated run may drift from one device, derived rather than measured, so that
# it holds on any CPU (oneDNN picks the summation order per machine). Replicas compute every
# per-pixel term exactly as one device does; only the order in which a weight's gradient
# contributions are summed differs (two partial sums all-reduced vs one sum). A float32 sum
# of N terms is off by at most N * u of the sum of their magnitudes (u = 2**-24); Adam's step
# is scale-free, so a relative gradient error d moves a step by at most about lr * d; over T
# steps the weights drift by at most T * lr * N * u. Here: N = 8 images x 16 x 16 pixels,
# lr = 1e-2 (worker.py), T = 8 steps (4 batches x 2 epochs).
SUMMED_TERMS, LEARNING_RATE, STEPS = 8 * 16 * 16, 1e-2, 8
ATOL = STEPS * LEARNING_RATE * SUMMED_TERMS * 2.0**-24  # 9.8e-6; measured: 1.2e-7

# The package's deterministic rule, through its public constructor, with band thresholds that
# every statistic of this data lies far below (ratios stay under 10), so every coefficient
# moves at every step by its lowest band's factor and a rounding difference in the counts
# cannot flip a band: the coefficients must then agree exactly. The guard is off, else it
# would freeze alpha_p and alpha_n (this data has far more than 5 FP per image).
ADAPTIVE = json.dumps({"thresholds": [1e3, 2e3, 3e3, 4e3], "guard_mode": "off"})


def assert_same_training(run, ref, atol=ATOL, coefficients_exact=False):
    """Same per-batch losses, GLF coefficients after every batch, and final weights."""
    assert len(run["trace"]) == len(ref["trace"]) > 0
    for got, want in zip(run["trace"], ref["trace"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], abs=atol)
        for key in ("alpha_p", "alpha_n", "beta2"):
            if coefficients_exact:
                assert got[key] == want[key]
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-5)
        np.testing.assert_allclose(got["counts"], want["counts"], rtol=1e-5, atol=1e-4)
    assert max_weight_diff(run, ref) < atol
    assert run["iterations"] == ref["iterations"]
    np.testing.assert_allclose(run["history"]["val_loss"], ref["history"]["val_loss"], atol=atol)
    # The rule (when the package's) saw the counts of the global batch, not of one replica.
    assert len(run["rule"]) == len(ref["rule"])
    for got, want in zip(run["rule"], ref["rule"], strict=True):
        assert got[3] == want[3] == 8  # images in the global batch
        np.testing.assert_allclose(got[:3], want[:3], rtol=1e-5, atol=1e-4)


def assert_rule_moved_every_coefficient(run):
    """Every coefficient changed at every step (none stuck at a clip, beta2 included)."""
    trace = run["trace"]
    assert len(run["rule"]) == len(trace) == STEPS
    for before, after in zip(trace, trace[1:], strict=False):
        for key in ("alpha_p", "alpha_n", "beta2"):
            assert after[key] != before[key], (key, before, after)


def test_mirrored_on_two_cpus_matches_one_device(tmp_path):
    """2 replicas x 4 images == 1 device x 8 images, through model.fit and the custom loop."""
    result = tmp_path / "result.json"
    run_worker(
        result,
        "--strategy",
        "mirrored",
        "--devices",
        2,
        "--out",
        tmp_path / "run",
        "--compare-default",
        "--adaptive",
        ADAPTIVE,
    )
    runs = json.loads(result.read_text())
    mirrored_fit, default_fit = runs["strategy"], runs["default"]
    assert_rule_moved_every_coefficient(default_fit)
    assert_same_training(mirrored_fit, default_fit, coefficients_exact=True)
    # custom loop, 2 replicas and 1 device
    assert_same_training(runs["custom_strategy"], default_fit, coefficients_exact=True)
    assert_same_training(runs["custom_default"], default_fit, coefficients_exact=True)
    info = json.loads((tmp_path / "run" / "distribution.json").read_text())
    assert info == {
        "strategy": "MirroredStrategy",
        "num_replicas": 2,
        "num_workers": 1,
        "global_batch_size": 8,
        "per_replica_batch_size": 4,
        "loop": "model.fit",
    }
    assert (
        json.loads((tmp_path / "run-custom" / "distribution.json").read_text())["loop"] == "custom"
    )


def test_glf_pooled_over_the_global_batch_matches_one_device(tmp_path):
    """GeneralizedLoss(per_image=False), the paper's batch-pooled GLF, all-reduces its soft
    counts and divides its scalar value by the number of replicas (Keras does not for a
    scalar loss): 2 mirrored replicas train exactly as one device on the global batch."""
    result = tmp_path / "result.json"
    run_worker(
        result,
        "--strategy",
        "mirrored",
        "--devices",
        2,
        "--out",
        tmp_path / "run",
        "--compare-default",
        "--loss",
        "pooled-global",
    )
    runs = json.loads(result.read_text())
    assert_same_training(runs["strategy"], runs["default"])
    assert_same_training(runs["custom_strategy"], runs["default"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_on_loopback_match_one_process(tmp_path):
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(REPO),
            "TF_CONFIG": json.dumps(tf_config),
        }
        args = [
            str(tmp_path / f"worker{index}.json"),
            "--strategy",
            "multi-worker",
            "--out",
            str(tmp_path / "run"),
            "--adaptive",
            ADAPTIVE,
        ]
        if index == 1:  # the non-chief also trains on one device, after the cluster run
            args += ["--single", str(tmp_path / "single")]
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-4000:]
    single = json.loads((tmp_path / "worker1.json").read_text())["single"]
    chief, other = (
        json.loads((tmp_path / f"worker{i}.json").read_text())["strategy"] for i in range(2)
    )
    assert (chief["chief"], other["chief"]) == (True, False)
    assert_rule_moved_every_coefficient(single)
    assert_same_training(chief, single, coefficients_exact=True)
    assert_same_training(other, single, coefficients_exact=True)
    run = tmp_path / "run"
    info = json.loads((run / "distribution.json").read_text())
    assert (info["strategy"], info["num_workers"], info["num_replicas"], info["loop"]) == (
        "MultiWorkerMirroredStrategy",
        2,
        2,
        "custom",
    )
    assert info["per_replica_batch_size"] == 4
    assert (run / "COMPLETED").exists() and (run / "last.keras").exists()
    # Only the chief wrote: no stray files from worker 1.
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["COMPLETED", "backup", "best.keras", "distribution.json", "history.csv", "last.keras"]
    )


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    # Epoch 3 of 4 (index 2), after its 2nd batch: the process kills itself with SIGKILL.
    killed = run_worker(
        tmp_path / "killed.json", "--out", run, "--epochs", 4, "--kill-at", "2,1", check=False
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "killed.json").exists()
    assert not (run / "COMPLETED").exists()
    assert [r["epoch"] for r in read_history(run / "history.csv")] == ["1", "2"]
    assert json.loads((run / "backup" / "latest.json").read_text())["epoch"] == 2
    # Only complete files under final names (temporaries are dot-files ending in .partial*).
    assert not [p for p in run.rglob("*") if ".partial" in p.name and not p.name.startswith(".")]

    # Re-running without --resume refuses the existing folder.
    refused = run_worker(tmp_path / "refused.json", "--out", run, "--epochs", 4, check=False)
    assert (
        refused.returncode != 0 and "pass --resume to continue it or --overwrite" in refused.stderr
    )

    run_worker(
        tmp_path / "resumed.json",
        "--out",
        run,
        "--epochs",
        4,
        "--resume",
        "--reference",
        tmp_path / "reference",
    )
    runs = json.loads((tmp_path / "resumed.json").read_text())
    resumed, reference = runs["strategy"], runs["reference"]
    assert [r["epoch"] for r in read_history(run / "history.csv")] == ["1", "2", "3", "4"]
    assert (run / "COMPLETED").exists()
    # Only epoch 3 was retrained (4 batches of it seen by the callback after resuming: 8).
    assert len(resumed["trace"]) == 8
    # Optimizer state (Adam moments, iterations), GLF coefficients and callback state came
    # back: the resumed run ends exactly where the uninterrupted one does.
    assert resumed["iterations"] == reference["iterations"] == 16
    assert resumed["updates"] == reference["updates"] == 16
    assert resumed["coefficients"] == reference["coefficients"]
    assert max_weight_diff(resumed, reference) == 0.0
    ref_history = read_history(tmp_path / "reference" / "history.csv")
    assert [float(r["val_loss"]) for r in read_history(run / "history.csv")] == [
        float(r["val_loss"]) for r in ref_history
    ]


def test_nan_loss_stops_with_message_and_keeps_last_good_model(tmp_path):
    run = tmp_path / "run"
    # The weights become NaN after epoch 2, batch 1, so the loss of batch 2 is NaN.
    run_worker(tmp_path / "nan.json", "--out", run, "--epochs", 3, "--nan-at", "1,0")
    result = json.loads((tmp_path / "nan.json").read_text())["strategy"]
    assert "the loss became nan at epoch 2, batch 2" in result["error"]
    assert str(run / "last.keras") in result["error"] and "end of epoch 1" in result["error"]
    assert [r["epoch"] for r in read_history(run / "history.csv")] == ["1"]
    assert not (run / "COMPLETED").exists()
    assert json.loads((run / "backup" / "latest.json").read_text())["epoch"] == 1
    from training.io import load_model

    model = load_model(run / "last.keras")
    assert all(np.isfinite(w).all() for w in model.get_weights())

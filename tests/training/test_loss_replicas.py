"""Every segmentation loss gives, on 2 mirrored replicas, the loss and gradient of one device.

A loss pooled over the batch must all-reduce its sums and carry 1/R itself (Keras divides only
per-sample losses by the number of replicas); a loss that ranks the pixels of the whole batch
cannot, and must say so before any update. One subprocess (``loss_replica_worker.py``)
computes every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("loss_replica_worker.py")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(WORKER.parent))
from loss_replica_worker import cases  # noqa: E402

# Losses that rank the pixels of the whole batch: refused under replicas.
REFUSED = {"TopK", "LovaszSoftmax", "LovaszHinge whole batch", "DiceTopK"}
# Tolerance, derived: the replicas sum the same per-pixel float32 terms in two partial sums
# instead of one; a sum of N = 4 x 8 x 8 = 256 terms is off by at most N * 2**-24 = 1.5e-5
# of the sum of magnitudes. Measured: at most 4.3e-7 (loss) and 4.4e-7 (gradient, relative).
RTOL = 1e-4


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicas") / "result.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    env.pop("KERAS_BACKEND", None)  # tf.distribute is TensorFlow's
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", [n for n in cases() if n not in REFUSED])
def test_replicas_give_the_one_device_loss_and_gradient(results, name):
    r = results[name]
    assert "error" not in r, r.get("error")
    assert r["replicas"] == pytest.approx(r["single"], rel=RTOL, abs=1e-6)
    assert r["grad_diff"] <= RTOL * r["grad_max"]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_losses_ranking_the_whole_batch_refuse_replicas(results, name):
    error = results[name].get("error", "")
    assert "replicas sees whole under tf.distribute" in error
    assert "per_image=True" in error

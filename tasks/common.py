"""Flags and helpers shared by every task's command line."""

from __future__ import annotations

import argparse
import os
import random

from training.strategy import STRATEGIES


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags about the run itself, the same for every task."""
    group = parser.add_argument_group("run options")
    group.add_argument("--out", default=None, help="run directory (default: runs/<task>-<loss>)")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    group.add_argument("--overwrite", action="store_true", help="delete --out first if it exists")
    group.add_argument(
        "--strategy", default="auto", choices=STRATEGIES,
        help="tf.distribute strategy: auto (mirrored on several GPUs), one-device, mirrored, "
        "multi-worker (configured by TF_CONFIG) (default: auto)",
    )
    group.add_argument(
        "--check-data", action="store_true",
        help="only validate the data source, report every problem with its file name, and exit",
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (Keras) random generators."""
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def default_out(task: str, loss: str) -> str:
    return os.path.join("runs", f"{task}-{loss}")

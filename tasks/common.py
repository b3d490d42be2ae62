"""Flags and helpers shared by every task's command line."""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

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


MODEL_FILES = ("best.keras", "last.keras")


def model_of_run(path) -> tuple[Path, Path]:
    """``(run directory, model file)`` for a ``--model`` argument.

    A run directory gives its ``best.keras`` (else ``last.keras``); a ``.keras`` file gives
    itself and the folder it lies in. Raises FileNotFoundError naming the path otherwise.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return path.parent, path
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path, path / name
        raise FileNotFoundError(f"{path}: no best.keras or last.keras; is it a finished run directory?")
    raise FileNotFoundError(f"{path}: expected a run directory or an existing .keras model file")


def check_or_train(args, task: str, cfg, check, run_training, data_dir=None) -> Path | None:
    """The ``train()`` of a task: ``--check-data`` runs ``check()`` (which prints every problem
    and returns their count) and exits non-zero on problems; otherwise ``run_training(cfg, out,
    ...)`` into ``--out`` (default ``runs/<task>-<loss>``) and returns the run directory."""
    if getattr(args, "check_data", False):
        problems = check()
        if problems:
            raise SystemExit(f"{problems} problem(s) found in {data_dir}")
        return None
    out = args.out or default_out(task, cfg.loss.replace("+", "-"))
    path = run_training(cfg, out, resume=args.resume, overwrite=args.overwrite, strategy=args.strategy)
    print(f"[{task}] run directory: {path}", flush=True)
    return path

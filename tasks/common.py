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
    group.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its last finished epoch, with its saved settings: "
        "a flag that differs from them is an error, except --epochs and --data-dir",
    )
    group.add_argument(
        "--overwrite", action="store_true",
        help="replace the run in --out: the old run is kept aside until the new one finished "
        "its first epoch, and put back if the new one fails before",
    )
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

# Whether evaluate.py / predict.py were given --allow-unfinished (set by those commands).
_ALLOW_UNFINISHED = [False]


def allow_unfinished(allow: bool) -> None:
    """Let :func:`check_finished` pass unfinished runs (with a warning) for this process."""
    _ALLOW_UNFINISHED[0] = bool(allow)


def add_allow_unfinished_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="use a run that did not finish (no COMPLETED: stopped, failed, or still "
        "training) with its last saved model, with a warning",
    )


def check_finished(run_dir) -> None:
    """Refuse a run directory without ``COMPLETED`` (a run that was stopped, failed while
    saving, or is still training), unless :func:`allow_unfinished`; then warn."""
    import sys

    from training.rundir import COMPLETE_MARKER, CONFIG_FILE

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or (run_dir / COMPLETE_MARKER).is_file():
        return
    if _ALLOW_UNFINISHED[0]:
        print(
            f"warning: {run_dir} is an unfinished run (no {COMPLETE_MARKER}); using its last saved model",
            file=sys.stderr,
            flush=True,
        )
        return
    from core.errors import UserError

    raise UserError(
        f"{run_dir} is an unfinished run (no {COMPLETE_MARKER}: it was stopped, failed while "
        "saving, or is still training): finish it with train.py --resume, or pass "
        "--allow-unfinished to use its last saved model anyway"
    )


def model_of_run(path) -> tuple[Path, Path]:
    """``(run directory, model file)`` for a ``--model`` argument.

    A run directory gives its ``best.keras`` (else ``last.keras``); a ``.keras`` file gives
    itself and the folder it lies in. Raises FileNotFoundError naming the path otherwise, and
    a ``UserError`` for a run that did not finish (:func:`check_finished`).
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        check_finished(path.parent)
        return path.parent, path
    if path.is_dir():
        check_finished(path)
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

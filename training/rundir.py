"""Run directories: one folder per training run, refused when it would clobber another."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from training import io
from training.errors import UserError

COMPLETE_MARKER = "COMPLETED"
CONFIG_FILE = "config.json"

# Every RunDir opened in this process, oldest first: the command-line wrapper
# (training.cli.run) reports the unfinished ones when an error ends the command.
OPENED: list[RunDir] = []


class RunDirError(UserError):
    """A run directory that cannot be used as asked (exists, is not a run, ...)."""


class RunDir:
    """A training run's folder.

    Layout (each task adds its own files):
        config.json      the resolved configuration (task, loss, every hyperparameter)
        split.json       the data split, so evaluation uses the same test cases
        best.keras       the best model by the task's validation metric
        last.keras       the model after the last finished epoch
        history.csv      Keras History, one row per epoch
        tensorboard/     TensorBoard logs
        distribution.json  strategy, replicas, workers, global and per-replica batch size
        backup/          state for ``--resume``: weights + optimizer, loss variables, callback
                         states (kept after the run, so ``--resume --epochs N`` adds epochs)
        COMPLETED        written last; its absence marks an unfinished run

    Args:
        path: the folder.
        resume: continue a run that exists (and did not complete, or add epochs).
        overwrite: delete an existing folder first.
        chief: only the chief writes files under tf.distribute multi-worker training.
            ``None`` (default) decides from ``TF_CONFIG``: the chief task, or worker 0 when
            the cluster has no chief; True without ``TF_CONFIG``. A non-chief never
            creates, refuses or deletes the folder (the chief does; with ``--resume`` every
            worker reads the chief's backup, so the folder must be on shared storage).
    """

    def __init__(
        self, path, resume: bool = False, overwrite: bool = False, chief: bool | None = None
    ):
        from training.strategy import chief_from_env

        self.path = Path(path)
        self.chief = chief_from_env() if chief is None else bool(chief)
        chief = self.chief
        if resume and overwrite:
            raise RunDirError("--resume and --overwrite exclude each other; give one of them")
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} is a file; the run directory must be a folder")
        exists = self.path.exists() and any(self.path.iterdir())
        self.created = False
        if not chief:
            self.resuming = bool(exists and resume)
            OPENED.append(self)
            return
        if exists and not (resume or overwrite):
            raise RunDirError(
                f"Run directory {self.path} already exists; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        if exists and overwrite and chief:
            shutil.rmtree(self.path)
        self.resuming = bool(exists and resume)
        # Created here: nothing of the user's was in the folder before this process.
        self.created = not self.resuming
        if chief:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / COMPLETE_MARKER).unlink(missing_ok=True)
        OPENED.append(self)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def write_config(self, config) -> None:
        """Write the resolved config (a dataclass or dict) as ``config.json``."""
        if dataclasses.is_dataclass(config):
            config = dataclasses.asdict(config)
        if self.chief:
            io.write_json(self / CONFIG_FILE, config)

    def read_config(self) -> dict:
        return io.read_json(self / CONFIG_FILE)

    def mark_complete(self, **summary) -> None:
        if self.chief:
            summary.setdefault("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
            io.write_text(self / COMPLETE_MARKER, json.dumps(summary, indent=2, default=str) + "\n")

    @property
    def complete(self) -> bool:
        return (self / COMPLETE_MARKER).exists()

    def discard_if_unstarted(self) -> bool:
        """Delete the folder if this process created it and no epoch finished in it (no
        model, no backup), so a failed start does not block the next ``train.py`` with
        "already exists". Returns True if it was deleted."""
        if not (self.chief and self.created and self.path.is_dir()) or self.complete:
            return False
        if any((self / name).exists() for name in ("backup", "last.keras", "best.keras")):
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True


def load_run_config(run_dir) -> dict:
    """The ``config.json`` of an existing run directory, with a clear error if absent."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise RunDirError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    return io.read_json(path)


def task_of_run(path) -> str | None:
    """The ``task`` in the ``config.json`` of the run at ``path`` (a run directory or a
    ``.keras`` file inside one); None if there is no readable one."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        task = io.read_json(folder / CONFIG_FILE).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def task_of_runs(argv) -> str | None:
    """The task of the first command-line argument that names a run (``evaluate.py RUN``,
    ``predict.py RUN FILE``), so the task's own flags can be added before parsing."""
    for item in argv:
        if item.startswith("-"):
            continue
        path = Path(item)
        if path.suffix == ".keras" or path.is_dir():
            task = task_of_run(path)
            if task is not None:
                return task
    return None

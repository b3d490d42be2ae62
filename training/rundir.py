"""Run directories: one folder per training run, owned by one process, never lost.

* A lock per run folder (``.<name>.lock`` beside it, an ``flock`` held for the life of the
  run): a second process on the same folder gets "in use by PID ..."; the kernel drops the
  lock of a killed process, so a stale lock file never blocks a rerun.
* ``--overwrite`` moves the old run aside (``.<name>.replaced``) and deletes it only once the
  new run has finished its first epoch; a failure, a signal or a kill before then puts the
  old run back (at once, or when the folder is next opened).
* A folder in which no epoch finished (a stub: config.json, split.json, logs) never blocks a
  rerun: it is removed when the run fails, and replaced when the folder is next opened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from core import io
from core.errors import UserError

COMPLETE_MARKER = "COMPLETED"
CONFIG_FILE = "config.json"
# Files and folders whose presence (anywhere in the run folder, nested runs included) means
# an epoch finished or the run completed: such a folder holds work and is never removed.
PROGRESS_NAMES = ("backup", "last.keras", "best.keras", COMPLETE_MARKER)
# What a run writes before its first epoch ends; a folder holding only these is a stub.
STUB_NAMES = (
    CONFIG_FILE,
    "split.json",
    "distribution.json",
    "history.csv",
    "glf_trajectory.csv",
    "tensorboard",
    "siamese",
    "head",
)

# Every RunDir opened in this process, oldest first: the command-line wrapper
# (training.cli.run) tidies the unfinished ones when an error ends the command.
OPENED: list[RunDir] = []


class RunDirError(UserError):
    """A run directory that cannot be used as asked (exists, is not a run, is in use, ...)."""


def has_progress(path) -> bool:
    """Whether ``path`` (or a run nested in it) holds a finished epoch or a completed run."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(True for name in PROGRESS_NAMES for _ in path.rglob(name))


def is_stub(path) -> bool:
    """A non-empty folder of a run that finished no epoch: only the files written before the
    first epoch ends (and hidden temporary files), nothing else."""
    path = Path(path)
    if not path.is_dir() or has_progress(path):
        return False
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.name in STUB_NAMES for p in entries)


class RunLock:
    """An exclusive ``flock`` on ``.<name>.lock`` beside a run folder, recording who holds it.

    Held per process (opening the same folder twice in one process shares it) until
    :meth:`release`. ``flock`` locks die with their process, so the file a killed run left
    is taken over at once; its PID is reported as stale.
    """

    _held: dict[str, RunLock] = {}

    def __init__(self, lock_path: Path, fd: int):
        self.path, self.fd, self.count = lock_path, fd, 1

    @classmethod
    def acquire(cls, folder: Path) -> RunLock:
        import fcntl

        folder = Path(os.path.abspath(folder))
        lock_path = folder.parent / f".{folder.name}.lock"
        key = str(lock_path)
        if key in cls._held:
            cls._held[key].count += 1
            return cls._held[key]
        folder.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise RunDirError(
                    f"{folder} is in use by PID {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')} (since {owner.get('since', '?')}): wait for that "
                    "run to finish or stop it, or choose another --out"
                ) from None
            except OSError as err:  # a file system without locks (some network mounts)
                print(
                    f"warning: {lock_path} cannot be locked ({err.strerror}); nothing stops "
                    "a second process from writing into this run folder",
                    file=sys.stderr,
                    flush=True,
                )
                break
            # The holder before us may have unlinked the file after we opened it: lock the
            # file that is at lock_path now, or try again.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _read_owner(fd)
        if stale.get("pid") and stale.get("pid") != os.getpid():
            print(
                f"note: {lock_path} was left by PID {stale['pid']} on {stale.get('host', '?')}, "
                "which no longer holds it (killed?); taking it over",
                file=sys.stderr,
                flush=True,
            )
        os.ftruncate(fd, 0)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        lock = cls(lock_path, fd)
        cls._held[key] = lock
        return lock

    def release(self) -> None:
        self.count -= 1
        if self.count > 0 or self.fd < 0:
            return
        self._held.pop(str(self.path), None)
        try:
            os.unlink(self.path)  # while still holding it: see the inode check in acquire
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


def _read_owner(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        owner = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def aside_path(path: Path) -> Path:
    """Where ``--overwrite`` keeps the old run until the new one finished its first epoch."""
    return path.parent / f".{path.name}.replaced"


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
                         states, random state, data position (kept after the run, so
                         ``--resume --epochs N`` adds epochs)
        COMPLETED        written last; its absence marks an unfinished run

    Args:
        path: the folder.
        resume: continue a run that exists (and did not complete, or add epochs).
        overwrite: replace an existing folder: it is moved aside and deleted once the new run
            finished its first epoch (:meth:`epoch_finished`), put back if the new run fails.
        chief: only the chief writes files under tf.distribute multi-worker training.
            ``None`` (default) decides from ``TF_CONFIG``: the chief task, or worker 0 when
            the cluster has no chief; True without ``TF_CONFIG``. A non-chief never
            creates, locks, refuses or deletes the folder (the chief does; with ``--resume``
            every worker reads the chief's backup, so the folder must be on shared storage).
    """

    def __init__(
        self, path, resume: bool = False, overwrite: bool = False, chief: bool | None = None
    ):
        from training.strategy import chief_from_env

        self.path = Path(path)
        self.chief = chief_from_env() if chief is None else bool(chief)
        self.created = self.resuming = False
        self.aside: Path | None = None
        self.lock: RunLock | None = None
        if resume and overwrite:
            raise RunDirError("--resume and --overwrite exclude each other; give one of them")
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} is a file; the run directory must be a folder")
        if not self.chief:
            self.resuming = bool(resume and self.path.is_dir() and any(self.path.iterdir()))
            OPENED.append(self)
            return
        self.lock = RunLock.acquire(self.path)
        OPENED.append(self)
        self._recover_aside()
        if is_stub(self.path):
            print(
                f"note: {self.path} holds a run that finished no epoch; starting it afresh",
                file=sys.stderr,
                flush=True,
            )
            shutil.rmtree(self.path)
        exists = self.path.is_dir() and any(self.path.iterdir())
        if exists and not (resume or overwrite):
            raise RunDirError(
                f"Run directory {self.path} already exists; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        if exists and overwrite:
            self.aside = aside_path(self.path)
            os.rename(self.path, self.aside)
        self.resuming = bool(exists and resume)
        # Created here: nothing of the user's was in the folder before this process.
        self.created = not self.resuming
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / COMPLETE_MARKER).unlink(missing_ok=True)

    def _recover_aside(self) -> None:
        """A run moved aside by an ``--overwrite`` that was killed: put it back if the new run
        finished no epoch, else finish the replacement."""
        aside = aside_path(self.path)
        if not aside.exists():
            return
        if has_progress(self.path):
            shutil.rmtree(aside)
            return
        if self.path.exists():
            shutil.rmtree(self.path)
        os.rename(aside, self.path)
        print(
            f"note: put back the run in {self.path}, which an --overwrite that finished no epoch had moved aside",
            file=sys.stderr,
            flush=True,
        )

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
        return io.read_json(self / CONFIG_FILE, expect=dict)

    def resume_config(self, config):
        """``config`` (a dataclass) as this run continues with it: unchanged for a new run;
        on ``--resume``, the saved settings, where a flag given now that differs from them
        is an error naming it (:func:`training.config.resumed_config` lists the exceptions)."""
        from training.config import resumed_config

        if not self.resuming or not (self / CONFIG_FILE).is_file():
            return config
        return resumed_config(config, self.read_config(), self.path)

    def epoch_finished(self) -> None:
        """Called once an epoch's model and backup are saved: the replaced run goes now."""
        if self.aside is not None and self.chief:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def mark_complete(self, **summary) -> None:
        if self.chief:
            self.epoch_finished()
            summary.setdefault("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
            io.write_text(self / COMPLETE_MARKER, json.dumps(summary, indent=2, default=str) + "\n")
        self.release()  # the run is over: the folder is free for --resume or evaluation

    @property
    def complete(self) -> bool:
        return (self / COMPLETE_MARKER).exists()

    def close_unfinished(self) -> str | None:
        """After a failure: remove the folder if this process created it and no epoch
        finished in it, and put back the run ``--overwrite`` moved aside. Returns a note on
        where things are, or None. Releases the lock."""
        try:
            if not self.chief or self.complete or not (self.created or self.resuming):
                return None  # refused before it was opened for writing: nothing of ours
            note = None
            if self.created and not has_progress(self.path):
                if self.path.is_dir():
                    shutil.rmtree(self.path, ignore_errors=True)
                note = f"{self.path} was removed (no epoch had finished)"
            elif self.path.exists():
                note = f"the unfinished run is in {os.fspath(self.path)} (no COMPLETED; --resume continues it)"
            if self.aside is not None and not has_progress(self.path):
                if self.path.exists():
                    shutil.rmtree(self.path)
                os.rename(self.aside, self.path)
                self.aside = None
                note = f"the previous run in {self.path} was kept (put back)"
            return note
        finally:
            self.release()

    def discard_if_unstarted(self) -> bool:
        """Delete the folder if this process created it and no epoch finished in it, so a
        failed start does not block the next ``train.py``. Returns True if it was deleted."""
        if not (self.chief and self.created and self.path.is_dir()) or self.complete:
            return False
        if has_progress(self.path):
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True

    def release(self) -> None:
        """Give up the lock (the folder stays as it is)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def release_all(opened_before: int = 0) -> None:
    """Release the locks of the run folders opened since ``OPENED[opened_before]``."""
    for run in OPENED[opened_before:]:
        run.release()
    del OPENED[opened_before:]


def load_run_config(run_dir) -> dict:
    """The ``config.json`` of an existing run directory, with a clear error if absent."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise RunDirError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    return io.read_json(path, expect=dict)


def task_of_run(path) -> str | None:
    """The ``task`` in the ``config.json`` of the run at ``path`` (a run directory or a
    ``.keras`` file inside one); None if there is no readable one."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        task = io.read_json(folder / CONFIG_FILE, expect=dict).get("task")
    except (OSError, ValueError):
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

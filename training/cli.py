"""The one wrapper every command line (train, evaluate, predict, reproduce) runs its main in.

A fault a user can cause or meet ends in ONE line on stderr, ``error: <what is wrong, naming
the file or flag, and what to do>``, and a fixed exit status; a bug keeps its full traceback.

====================================================  ===========
fault                                                 exit status
====================================================  ===========
bad flag, bad or missing input file, unusable folder  2
their disk or permissions: permission denied,         2
read-only file system, disk full, quota, symlink
loop, name too long (any ``OSError`` with such an
errno, wherever it is raised)
run folder in use by another process                  2
training diverged (NaN/inf loss)                      1
SIGINT (Ctrl-C), SIGTERM, SIGHUP                      128 + signal (130, 143, 129)
====================================================  ===========

What counts as a user's fault:

* :class:`core.errors.UserError` and its subclasses (``data.validate.DataError``,
  ``training.rundir.RunDirError``, argparse errors through :class:`ArgumentParser`);
* an ``OSError`` whose errno says the disk, the permissions or the path is at fault
  (:data:`USER_ERRNOS`), raised anywhere (TensorFlow, Keras, h5py included), and a
  TensorFlow ``OpError`` whose message carries one of those system messages;
* ``ValueError`` and the file-not-found family raised by this package's own code: the package
  raises them on purpose, with a message naming the flag or file. The same exceptions raised
  inside TensorFlow, Keras or NumPy are bugs until shown otherwise and keep their traceback.

``--debug`` (accepted by every command line) re-raises everything with its traceback.
A run directory this process opened is never left looking complete or blocking a rerun: an
error or a signal after it was opened is reported with where the unfinished run lies, a
folder in which no epoch finished is removed, and a run that ``--overwrite`` had moved aside
is put back (see :mod:`training.rundir`).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import UserError
from training.errors import UsageError

EXIT_USER_ERROR = 2  # the status argparse uses for bad flags
EXIT_DIVERGED = 1  # training ran and failed (NaN loss): not a bad argument
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's status for Ctrl-C

# The signals a user or a batch scheduler sends to stop a run: each ends like Ctrl-C, with
# the run folder left resumable, and exit status 128 + signal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# errno values that mean the user's disk, permissions or path is at fault, with what to do.
USER_ERRNOS = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder; give a file",
    errno.EEXIST: "the path exists; choose another one or remove it",
    errno.EACCES: "check the permissions or choose another location",
    errno.EPERM: "check the permissions or choose another location",
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.ENOSPC: "the disk is full; free space or choose another location",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another location",
    errno.ELOOP: "a symbolic link points to itself (a loop); fix or remove the link",
    errno.ENAMETOOLONG: "the path is too long; choose a shorter one",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.EIO: "the disk reported an input/output error; check the disk",
}

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_OWN_PACKAGES = (
    "keras_losses",
    "architectures",
    "data",
    "evaluation",
    "inference",
    "tasks",
    "training",
)
_OWN_MODULES = ("train.py", "evaluate.py", "predict.py", "reproduce.py")
_FILE_ERRORS = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    FileExistsError,
)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise :class:`UsageError` (one line, exit 2)
    instead of printing the usage block; ``--help`` still prints the full help."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}; see {self.prog} --help")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full Python traceback of any error instead of a one-line message",
    )


def _own_file(filename: str) -> bool:
    path = Path(filename).resolve()
    try:
        relative = path.relative_to(_PROJECT_ROOT)
    except ValueError:
        return False
    if "site-packages" in relative.parts or relative.parts[0].startswith("."):
        return False
    return relative.parts[0] in _OWN_PACKAGES or str(relative) in _OWN_MODULES


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) turned into the same exception as Ctrl-C, so every
    ``finally`` and the run-folder clean-up run as they do for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def _system_error(err: BaseException) -> bool:
    """An error of the user's disk, permissions or path, wherever it was raised."""
    if isinstance(err, OSError) and err.errno in USER_ERRNOS:
        return True
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    if isinstance(err, tf.errors.OpError):
        return any(os.strerror(code) in str(err) for code in USER_ERRNOS if code != errno.ENOENT)
    return False


def is_user_error(err: BaseException) -> bool:
    """True for the errors the package raises on purpose about its input, and for the
    system's errors about the user's disk, permissions or paths (see module doc)."""
    if isinstance(err, UserError) or _system_error(err):
        return True
    if not isinstance(err, (ValueError, *_FILE_ERRORS)):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and _own_file(frames[-1].filename)


def one_line(err: BaseException) -> str:
    """The error as one line; a system error gets the file it names and what to do."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError):
        if err.strerror and err.filename is not None:
            # "[Errno 13] Permission denied: 'x'" -> "Permission denied: x"
            text = f"{err.strerror}: {os.fsdecode(err.filename)}"
            if err.filename2 is not None:
                text += f" -> {os.fsdecode(err.filename2)}"
        elif err.filename and str(err.filename) not in text:
            text = f"{text}: {err.filename}"
        hint = USER_ERRNOS.get(err.errno)
        if hint and not isinstance(err, UserError) and hint not in text:
            text = f"{text} ({hint})"
    elif _system_error(err):
        first = next((line for line in str(err).splitlines() if line.strip()), text)
        text = " ".join(first.split())
    return text


def run(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Call ``main(argv)`` and turn user faults into one ``error:`` line and a fixed status.

    Returns the exit status (``main``'s return value, 0 for None; 2 for a user's fault; 1
    for a diverged run; 128 + signal for SIGINT/SIGTERM/SIGHUP). ``--debug`` in ``argv``
    lets every exception through with its traceback.
    """
    from training import rundir

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    opened_before = len(rundir.OPENED)
    previous = _install_stop_handlers()
    try:
        if not {"-h", "--help"} & set(argv):
            quiet_tensorflow_startup()
            require_tensorflow_backend()
        status = main(argv)
        return 0 if status is None else int(status)
    except KeyboardInterrupt as err:
        _hold_stop_signals(previous)
        signum = getattr(err, "signum", signal.SIGINT)
        note = _unfinished(opened_before)
        if debug:
            raise
        name = signal.Signals(signum).name
        print(f"error: interrupted by {name}{note}", file=sys.stderr, flush=True)
        return 128 + signum
    except Exception as err:  # noqa: BLE001  (sorted into user errors and bugs below)
        from training.fit import TrainingDiverged

        _hold_stop_signals(previous)
        if isinstance(err, TrainingDiverged):
            note = _unfinished(opened_before)
            if debug:
                raise
            print(f"error: {one_line(err)}{note}", file=sys.stderr, flush=True)
            return EXIT_DIVERGED
        if not is_user_error(err):
            # A bug: the run folder is left as it is (with its traceback, for the report).
            rundir.release_all(opened_before)
            raise
        note = _unfinished(opened_before)
        if debug:
            raise
        print(f"error: {one_line(err)}{note}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    finally:
        rundir.release_all(opened_before)
        _restore_stop_handlers(previous)


def _install_stop_handlers() -> dict:
    """SIGTERM and SIGHUP raise :class:`Interrupted` like SIGINT raises KeyboardInterrupt
    (only in the main thread, where Python delivers signals)."""
    import threading

    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    for signum in STOP_SIGNALS:
        if signum == signal.SIGINT:
            continue
        try:
            previous[signum] = signal.signal(signum, _raise_interrupted)
        except (ValueError, OSError):  # pragma: no cover  (signal not supported here)
            pass
    return previous


def _hold_stop_signals(previous: dict) -> None:
    """A second signal while the run folder is tidied is ignored (it would interrupt the
    tidying); only where :func:`_install_stop_handlers` took over the handlers."""
    for signum in (*previous, signal.SIGINT) if previous else ():
        signal.signal(signum, signal.SIG_IGN)


def _restore_stop_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        if handler is not None:
            signal.signal(signum, handler)


def _unfinished(opened_before: int) -> str:
    """Where the run directories this call opened and did not complete lie, if any (a
    folder in which no epoch finished is removed; a run moved aside by ``--overwrite`` is
    put back)."""
    from training import rundir

    notes = []
    for d in rundir.OPENED[opened_before:]:
        try:
            note = d.close_unfinished()
        except OSError as err:  # the disk that failed the run may fail the clean-up too
            note = f"{d.path} could not be tidied ({one_line(err)})"
        if note:
            notes.append(note)
    return "; " + "; ".join(notes) if notes else ""


# TensorFlow's start-up lines that say nothing a user can act on. Lines logged before
# absl::InitializeLog() ignore TF_CPP_MIN_LOG_LEVEL, so they are filtered from stderr instead.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "cuda_platform.cc",  # E0000 ... failed call to cuInit on a machine without a GPU
    "cudart_stub.cc",
    "cuda_executor.cc",
    "cuda_dnn.cc",
    "cuda_fft.cc",
    "cuda_blas.cc",
    "Unable to register cu",
    "computation_placer.cc",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "TF-TRT Warning",
)


def require_tensorflow_backend() -> None:
    """Refuse another Keras backend before any work: the study commands read their data with
    ``tf.data`` and train under ``tf.distribute``."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UserError(
            f"the study commands run on the TensorFlow backend, but Keras is set to {backend!r} "
            "(KERAS_BACKEND or ~/.keras/keras.json): run them with KERAS_BACKEND=tensorflow; the "
            "losses and callbacks of keras_losses also run on JAX in your own model.fit"
        )


def quiet_tensorflow_startup() -> None:
    """Import TensorFlow and probe its devices with stderr captured, then print back every
    captured line except the start-up chatter above (CUDA probing on a machine without a GPU,
    oneDNN and CPU-flag notices). Real errors in that phase still reach stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # cuInit happens here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not any(n in line for n in _STARTUP_NOISE)
    ]
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)


RawDescriptionHelpFormatter = argparse.RawDescriptionHelpFormatter


def enable_determinism() -> None:
    """TensorFlow op determinism: with the run's seed (set by every task), the same command
    gives the same numbers on the same machine and software. Without it, multi-threaded CPU
    kernels sum in a varying order and runs differ (README, Reproducibility)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def model_arguments_optional(parser: argparse.ArgumentParser) -> None:
    """Make the task's ``--model`` optional, so run directories can come as positionals."""
    for action in parser._actions:
        if action.dest == "model":
            action.required = False


def merge_positional_models(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fold the positional ``runs`` into ``args.model`` in the form the task's ``--model``
    takes (a list for repeatable or multi-value flags, one path otherwise)."""
    runs = list(getattr(args, "runs", None) or [])
    action = next(a for a in parser._actions if a.dest == "model")
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
    given = args.model if many else ([args.model] if args.model else [])
    models = list(given or []) + runs
    if not models:
        parser.error("give a run directory (or .keras file) as an argument or with --model")
    if not many and len(models) > 1:
        parser.error(
            f"this task evaluates one model at a time; received {len(models)}: {', '.join(map(str, models))}"
        )
    args.model = models if many else models[0]

"""The one wrapper every command line (train, evaluate, predict, reproduce) runs its main in.

A user's mistake (a bad flag, a missing folder, a truncated file) ends in ONE line on stderr,
``error: <what is wrong, naming the file or flag>``, and exit status 2; a bug keeps its full
traceback. What counts as a user's mistake:

* :class:`training.errors.UserError` and its subclasses (``data.msd.DataError``,
  ``training.rundir.RunDirError``, argparse errors through :class:`ArgumentParser`);
* ``ValueError`` and the file-not-found family (``FileNotFoundError``, ``NotADirectoryError``,
  ``IsADirectoryError``, ``PermissionError``, ``FileExistsError``) raised by this package's own
  code: the package raises them on purpose, with a message naming the flag or file. The same
  exceptions raised inside TensorFlow, Keras or NumPy are bugs until shown otherwise and keep
  their traceback.

``--debug`` (accepted by every command line) re-raises everything with its traceback.
A run directory this process created is never left looking complete: an error after it was
created is reported with where the unfinished run lies (it has no ``COMPLETED``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from training.errors import UsageError, UserError

EXIT_USER_ERROR = 2  # the status argparse uses for bad flags
EXIT_DIVERGED = 1  # training ran and failed (NaN loss): not a bad argument
EXIT_INTERRUPTED = 130

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


def is_user_error(err: BaseException) -> bool:
    """True for the errors the package raises on purpose about its input (see module doc)."""
    if isinstance(err, UserError):
        return True
    if not isinstance(err, (ValueError, *_FILE_ERRORS)):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and _own_file(frames[-1].filename)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


def run(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Call ``main(argv)`` and turn user errors into one ``error:`` line and status 2.

    Returns the exit status (``main``'s return value, 0 for None). ``--debug`` in ``argv``
    lets every exception through with its traceback.
    """
    from training import rundir

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    opened_before = len(rundir.OPENED)
    try:
        if not {"-h", "--help"} & set(argv):
            quiet_tensorflow_startup()
        status = main(argv)
        return 0 if status is None else int(status)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"error: interrupted{_unfinished(opened_before)}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (sorted into user errors and bugs below)
        from training.fit import TrainingDiverged

        if debug:
            raise
        if isinstance(err, TrainingDiverged):
            print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
            return EXIT_DIVERGED
        if not is_user_error(err):
            raise
        print(f"error: {one_line(err)}{_unfinished(opened_before)}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


def _unfinished(opened_before: int) -> str:
    """Where the run directories this call opened and did not complete lie, if any."""
    from training import rundir

    left = [d for d in rundir.OPENED[opened_before:] if d.chief and not d.complete]
    notes = []
    for d in left:
        if d.discard_if_unstarted():
            notes.append(f"{d.path} was removed (no epoch had finished)")
        elif d.path.exists():
            notes.append(
                f"the unfinished run is in {os.fspath(d.path)} (no COMPLETED; --resume continues it)"
            )
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

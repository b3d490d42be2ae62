"""``fit_model``: one training entry point for every task and every ``--strategy``.

What it adds to ``model.fit``:

* run-directory files written atomically: ``last.keras`` every epoch, ``best.keras`` when
  ``monitor`` improves, ``history.csv``, ``distribution.json``, TensorBoard logs;
* ``--resume``: a backup every epoch (model weights, optimizer state and step counter, the
  variables of the compiled loss such as the GLF coefficients, the state of every random
  seed generator of the model (dropout), and the state of every callback that has
  ``get_state()``/``set_state()``), restored before training continues at the next epoch.
  The training data is one stream over all epochs (each pass reshuffled by the pipeline), and
  a resumed run skips the batches of the finished epochs (:func:`training.resume.continue_data`), so a run
  killed at any point and resumed trains on the same batches with the same random numbers
  as the uninterrupted run (tests/training/test_resume_exact.py);
* a NaN/inf guard that stops at the first bad batch and keeps the last good model;
* tf.distribute: the strategy is the one the model was built under (``with
  strategy.scope():``). Default, one-device and mirrored strategies train through
  ``model.fit``; MultiWorkerMirroredStrategy, where ``model.fit`` fails in Keras 3
  (keras-team/keras#20585), trains through :mod:`training.loop`, which runs the same
  ``model.train_step`` and calls the same callbacks.

Callback state hook (for callbacks whose state is not a model/loss variable)::

    class MyCallback(keras.callbacks.Callback):
        def get_state(self) -> dict: ...         # JSON-serialisable, called at each epoch end
        def set_state(self, state: dict): ...    # called on --resume, after on_train_begin

Variables held by the compiled loss (``model.loss``, also inside lists/dicts and wrapper
losses such as ``CombinedLoss``) are saved and restored without any hook.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np

from core import io
from training.io import save_model
from training.resume import assign_random_state, continue_data, random_state
from training.rundir import RunDir

BACKUP_DIR = "backup"
LATEST = "latest.json"


class TrainingDiverged(RuntimeError):
    pass


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN/inf loss, remembering where; the last good model stays saved."""

    def __init__(self, run_dir: RunDir | None = None):
        super().__init__()
        self.message = None
        self.epoch = 0
        self.run_dir = run_dir

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.message is None and loss is not None and not math.isfinite(float(loss)):
            kept = "no epoch had finished, so no model was saved"
            if self.run_dir is not None and (self.run_dir / "last.keras").exists():
                kept = f"the last good model is {self.run_dir / 'last.keras'} (end of epoch {self.epoch})"
            self.message = (
                f"Training stopped: the loss became {float(loss)} at epoch {self.epoch + 1}, "
                f"batch {batch + 1}; {kept}. Lower the learning rate or check the data "
                "(train.py --check-data)."
            )
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """Save ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves.

    Both are written to a temporary name and renamed. History is rewritten as
    ``history.csv`` the same way, so a killed run leaves only complete files.
    """

    def __init__(
        self,
        run_dir: RunDir,
        monitor: str,
        mode: str,
        guard: StopOnNonFinite,
        initial_epoch: int = 0,
    ):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; received {mode!r}")
        self.run_dir, self.monitor, self.mode, self.guard = run_dir, monitor, mode, guard
        rows = _read_history(run_dir / "history.csv") if run_dir.resuming else []
        # Epochs after the restored backup are trained again: forget their rows.
        self.rows = [r for r in rows if int(r["epoch"]) <= initial_epoch]
        values = [float(r[monitor]) for r in self.rows if r.get(monitor) not in (None, "")]
        self.best = (min(values) if mode == "min" else max(values)) if values else None

    def _better(self, value) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.message is not None or not self.run_dir.chief:
            return
        logs = dict(logs or {})
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1]
        self.rows.append({"epoch": epoch + 1, **{k: _scalar(v) for k, v in logs.items()}})
        io.write_csv(self.run_dir / "history.csv", self.rows, _fieldnames(self.rows))
        save_model(self.model, self.run_dir / "last.keras")
        value = logs.get(self.monitor)
        if self._better(None if value is None else float(value)):
            self.best = float(value)
            save_model(self.model, self.run_dir / "best.keras")


class RunBackup(keras.callbacks.Callback):
    """The ``--resume`` state, saved at every epoch end into ``<run>/backup/``.

    Layout: ``backup/latest.json`` names the folder of the newest complete backup,
    ``backup/epoch-NNNN-<token>/`` holds ``model.weights.h5`` (model AND optimizer
    variables: Keras 3 ``save_weights`` includes the optimizer), ``loss_variables.npz``
    (every ``keras.Variable`` of the compiled loss, e.g. the GLF coefficients, which
    ``save_weights`` does not include) and ``callbacks.json`` (``get_state()`` of each
    callback that has one). A backup folder is filled under a temporary name and renamed,
    then ``latest.json`` is replaced atomically: a kill at any moment leaves the previous
    backup intact. Only the chief writes; on resume every worker reads the same backup.
    """

    def __init__(self, run_dir: RunDir, guard: StopOnNonFinite, stateful_callbacks=()):
        super().__init__()
        self.run_dir, self.guard = run_dir, guard
        self.stateful = {_callback_key(i, cb): cb for i, cb in enumerate(stateful_callbacks)}
        self.stateful = {k: cb for k, cb in self.stateful.items() if hasattr(cb, "get_state")}
        self._pending_state: dict | None = None
        self._pending_loss: dict | None = None

    @property
    def root(self) -> Path:
        return self.run_dir / BACKUP_DIR

    # ------------------------------------------------------------------ restore
    def latest(self) -> Path | None:
        path = self.root / LATEST
        if not path.is_file():
            return None
        info = io.read_json(path)
        folder = self.root / info["dir"]
        if not folder.is_dir():
            raise FileNotFoundError(f"{path} names {folder}, which does not exist")
        return folder

    def restore(self, model) -> int:
        """Load the newest backup into ``model``; return the number of finished epochs (0: none)."""
        folder = self.latest()
        if folder is None:
            return 0
        meta = io.read_json(folder / "meta.json")
        if not model.built:
            raise ValueError(
                f"--resume needs a built model to load {folder} into: build it first "
                "(keras.Input, or call it on one batch)"
            )
        if model.optimizer is not None and not model.optimizer.built:
            with model.distribute_strategy.scope():
                model.optimizer.build(model.trainable_variables)
        model.load_weights(folder / "model.weights.h5")
        random_file = folder / "random_state.npz"
        if random_file.is_file():
            assign_random_state(model, io.load_arrays(random_file), folder)
        self._pending_loss = io.load_arrays(folder / "loss_variables.npz")
        _assign_loss_variables(model, self._pending_loss, folder)
        states = folder / "callbacks.json"
        self._pending_state = io.read_json(states) if states.is_file() else {}
        print(
            f"Resuming {self.run_dir.path} after epoch {meta['epoch']} (backup {folder.name})",
            flush=True,
        )
        return int(meta["epoch"])

    def on_train_begin(self, logs=None):
        # After the user callbacks' on_train_begin (this callback comes later in the list),
        # so a callback that resets its loss or state when training starts is overridden.
        if self._pending_loss is not None:
            _assign_loss_variables(self.model, self._pending_loss, self.root)
        for key, state in (self._pending_state or {}).items():
            if key in self.stateful:
                self.stateful[key].set_state(state)
            else:
                warnings.warn(
                    f"--resume: the backup holds state for callback {key!r}, which this run does not have",
                    stacklevel=2,
                )
        self._pending_state = self._pending_loss = None

    # ------------------------------------------------------------------ save
    def on_epoch_end(self, epoch, logs=None):
        if self.guard.message is not None or not self.run_dir.chief:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}-{secrets.token_hex(3)}"
        tmp = self.root / f".{name}.partial"
        tmp.mkdir()
        try:
            self.model.save_weights(tmp / "model.weights.h5")
            io.save_arrays(
                tmp / "loss_variables.npz",
                {
                    k: np.asarray(keras.ops.convert_to_numpy(v))
                    for k, v in loss_variables(self.model).items()
                },
            )
            io.save_arrays(tmp / "random_state.npz", random_state(self.model))
            io.write_json(
                tmp / "callbacks.json", {k: cb.get_state() for k, cb in self.stateful.items()}
            )
            io.write_json(tmp / "meta.json", {"epoch": epoch + 1})
            _fsync_dir(tmp)
            os.rename(tmp, self.root / name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        io.write_json(self.root / LATEST, {"dir": name, "epoch": epoch + 1})
        for old in self.root.iterdir():
            if old.is_dir() and old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        self.run_dir.epoch_finished()  # an --overwrite's old run can go now


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _callback_key(index: int, callback) -> str:
    return f"{index}:{type(callback).__name__}"


def loss_variables(model) -> dict:
    """Every ``keras.Variable`` held by the compiled loss(es), keyed by attribute path."""
    found: dict = {}

    def walk(obj, prefix, seen):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, keras.losses.Loss):
            for name, value in vars(obj).items():
                if isinstance(value, keras.Variable):
                    found[f"{prefix}{name}"] = value
                elif isinstance(value, (keras.losses.Loss, list, tuple, dict)):
                    walk(value, f"{prefix}{name}/", seen)
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                walk(item, f"{prefix}{i}/", seen)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                walk(item, f"{prefix}{key}/", seen)

    walk(getattr(model, "loss", None), "loss/", set())
    return found


def _losses(obj, prefix="loss"):
    """``(path, loss)`` for every ``keras.losses.Loss`` in ``model.loss`` (lists, dicts, wrappers)."""
    if isinstance(obj, keras.losses.Loss):
        yield prefix, obj
        for name, value in vars(obj).items():
            if isinstance(value, (keras.losses.Loss, list, tuple, dict)):
                yield from _losses(value, f"{prefix}/{name}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _losses(item, f"{prefix}/{i}")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _losses(item, f"{prefix}/{key}")


def _assign_loss_variables(model, values: dict, where) -> None:
    variables = loss_variables(model)
    for key, value in values.items():
        if key not in variables:
            warnings.warn(
                f"--resume: {where} holds loss variable {key!r}, which this model's loss does not have",
                stacklevel=2,
            )
            continue
        var = variables[key]
        if tuple(var.shape) != tuple(value.shape):
            raise ValueError(
                f"--resume: loss variable {key!r} has shape {tuple(var.shape)}; the backup in {where} has {value.shape}"
            )
        var.assign(value)


def _scalar(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(np.asarray(value).tolist())


def _fieldnames(rows):
    names = []
    for row in rows:
        names += [k for k in row if k not in names]
    return names


def _read_history(path: Path):
    import csv

    if not Path(path).exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _check_distribution(model, strategy):
    """Refuse the combinations that fail under tf.distribute, with the fix in the message."""
    import tensorflow as tf

    model_strategy = model.distribute_strategy
    if strategy is not None and strategy is not model_strategy:
        raise ValueError(
            f"fit_model(strategy={type(strategy).__name__}) but the model was built under "
            f"{type(model_strategy).__name__}: build and compile the model inside "
            "`with strategy.scope():` (see training/strategy.py)"
        )
    strategy = model_strategy
    # Keras records the strategy whose scope the model was created in (None: no scope).
    if getattr(model, "_distribute_strategy", None) is None:
        return strategy
    name = type(strategy).__name__
    if getattr(model, "jit_compile", False):
        raise ValueError(
            f"jit_compile=True fails under {name}: compile the model with jit_compile=False "
            "(the default jit_compile='auto' already turns XLA off under a strategy)"
        )
    spe = getattr(model, "steps_per_execution", 1)
    spe = int(keras.ops.convert_to_numpy(spe)) if spe is not None else 1
    if spe > 1:
        raise ValueError(
            f"steps_per_execution={spe} fails under {name} and makes batch callbacks fire only "
            "every N steps: compile the model with steps_per_execution=1"
        )
    if strategy.num_replicas_in_sync > 1:
        for key, loss in _losses(model.loss):
            if getattr(loss, "per_image", True) is False and not getattr(
                loss, "global_batch", False
            ):
                warnings.warn(
                    f"{key} ({type(loss).__name__}) pools its counts over each replica's batch and "
                    "returns a scalar, which Keras does not divide by the number of replicas: under "
                    f"{strategy.num_replicas_in_sync} replicas its loss and gradient are "
                    f"{strategy.num_replicas_in_sync}x those of one device (see docs/distribute.md)",
                    stacklevel=3,
                )
        for key, var in loss_variables(model).items():
            if not isinstance(getattr(var, "value", None), tf.distribute.DistributedValues):
                raise ValueError(
                    f"The loss variable {key} was created outside the strategy's scope, so the "
                    f"{strategy.num_replicas_in_sync} replicas would race to assign it: create the "
                    "loss inside `with strategy.scope():` together with the model"
                )
    return strategy


def _static_batch_size(data) -> int | None:
    import tensorflow as tf

    spec = tf.nest.flatten(data.element_spec)[0]
    return spec.shape[0] if spec.shape.rank else None


def _first_batch_size(data) -> int | None:
    import tensorflow as tf

    if not isinstance(data, tf.data.Dataset):
        return None
    for batch in data.take(1):
        return int(tf.shape(tf.nest.flatten(batch)[0])[0])
    return None


def fit_model(
    model: keras.Model,
    train_data,
    validation_data,
    *,
    run_dir: RunDir,
    epochs: int,
    monitor: str = "val_loss",
    mode: str = "min",
    callbacks: list | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    tensorboard: bool = True,
    verbose: int | str = "auto",
    strategy=None,
    loop: str = "auto",
    global_batch_size: int | None = None,
):
    """Train ``model`` with checkpoints, resume, history, TensorBoard and a NaN guard.

    ``train_data``/``validation_data``: ``tf.data.Dataset``s whose elements are GLOBAL
    batches ``(x, y)`` or ``(x, y, sample_weight)``; under a strategy with R replicas each
    replica gets ``global / R`` of every batch. For multi-worker training a function
    ``dataset_fn(input_context) -> dataset of per-replica batches`` is also accepted (then
    give ``steps_per_epoch``), for pipelines that shard their files themselves.

    ``callbacks`` (e.g. the adaptive-GLF callback) run before the checkpoint, so a model
    saved at the end of an epoch carries the state they set. With ``run_dir.resuming`` the
    run continues after the last finished epoch of its backup.

    Args:
        strategy: optional; if given it must be the strategy the model was built under.
        loop: "auto" (``model.fit``, or the custom loop under multi-worker), "fit", or
            "custom" (the :mod:`training.loop` loop under any strategy).
        global_batch_size: the global batch (custom loop only); default: the first batch's size.

    Returns the Keras ``History``. Raises :class:`TrainingDiverged` on a NaN/inf loss.
    """
    from training import strategy as strategies

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"fit_model trains with tf.data and tf.distribute, so it needs the TensorFlow "
            f"backend; Keras runs on {keras.backend.backend()!r}: use model.fit with the "
            "keras_losses callbacks there, or KERAS_BACKEND=tensorflow"
        )
    if loop not in ("auto", "fit", "custom"):
        raise ValueError(f"loop must be 'auto', 'fit' or 'custom'; received {loop!r}")
    strategy = _check_distribution(model, strategy)
    multi_worker = strategies.is_multi_worker(strategy)
    if multi_worker and loop == "fit":
        raise ValueError(
            "loop='fit' is impossible under MultiWorkerMirroredStrategy: Keras 3 model.fit fails "
            "there (keras-team/keras#20585); use loop='auto' or 'custom'"
        )
    if run_dir.chief != strategies.is_chief(strategy):
        if not multi_worker:
            raise ValueError(
                f"TF_CONFIG makes this process a non-chief worker, but the model was built under "
                f"{type(strategy).__name__}: pass --strategy multi-worker and build and compile the "
                "model inside `with strategy.scope():` (or unset TF_CONFIG for a one-machine run)"
            )
        raise ValueError(
            f"{run_dir} was opened with chief={run_dir.chief}, but TF_CONFIG makes this process "
            f"{'the chief' if strategies.is_chief(strategy) else 'a non-chief worker'}: open the "
            "RunDir with chief=None (the default), which reads TF_CONFIG"
        )
    use_loop = loop == "custom" or multi_worker
    verbose = progress_verbosity(verbose)

    guard = StopOnNonFinite(run_dir)
    user_callbacks = list(callbacks or [])
    backup = RunBackup(run_dir, guard, user_callbacks)
    initial_epoch = backup.restore(model) if run_dir.resuming else 0
    if initial_epoch >= epochs:
        print(
            f"{run_dir.path} already holds {initial_epoch} finished epochs (asked for {epochs}); nothing to train",
            flush=True,
        )
    if global_batch_size is None and isinstance(train_data, _dataset_type()):
        # A static batch dimension costs nothing; otherwise peek at one batch, but only
        # when the batch size matters (custom loop, or several replicas).
        global_batch_size = _static_batch_size(train_data)
        if global_batch_size is None and (use_loop or strategy.num_replicas_in_sync > 1):
            global_batch_size = _first_batch_size(train_data)
    if run_dir.chief:
        io.write_json(
            run_dir / "distribution.json",
            {
                **strategies.describe(strategy, global_batch_size),
                "loop": "custom" if use_loop else "model.fit",
            },
        )

    all_callbacks = [guard, *user_callbacks]
    all_callbacks.append(RunCheckpoint(run_dir, monitor, mode, guard, initial_epoch))
    all_callbacks.append(backup)
    if tensorboard and run_dir.chief and _tensorboard_available():
        all_callbacks.append(
            keras.callbacks.TensorBoard(
                str(run_dir / "tensorboard"), update_freq="epoch", write_graph=False
            )
        )
    if use_loop:
        from training.loop import train_loop

        history = train_loop(
            model,
            train_data,
            validation_data,
            strategy=strategy,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=all_callbacks,
            verbose=verbose if run_dir.chief else 0,
            global_batch_size=global_batch_size,
        )
    else:
        train_data, steps_per_epoch = continue_data(train_data, steps_per_epoch, initial_epoch)
        history = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=all_callbacks,
            verbose=verbose,
            # A tf.data pipeline shuffles itself; Keras would only warn that it ignores this.
            shuffle=not isinstance(train_data, _dataset_type()),
        )
    if guard.message is not None:
        raise TrainingDiverged(guard.message)
    return history


def progress_verbosity(verbose, stream=None):
    """``verbose="auto"``: a live progress bar (1) on a terminal, one line per epoch (2)
    otherwise. Keras's bar writes a new line at every update when its output is not a
    terminal, which turns a log file into one line per batch."""
    import sys

    if verbose != "auto":
        return verbose
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


_TENSORBOARD_WARNED = False


def _tensorboard_available() -> bool:
    """TensorFlow 2.21 no longer installs the ``tensorboard`` package; without it Keras's
    TensorBoard callback fails at the first batch, so it is skipped with a warning."""
    import importlib.util

    global _TENSORBOARD_WARNED
    if importlib.util.find_spec("tensorboard") is None:
        if _TENSORBOARD_WARNED:
            return False
        _TENSORBOARD_WARNED = True
        warnings.warn(
            "TensorBoard logs are skipped: the `tensorboard` package is not installed (pip install tensorboard)",
            stacklevel=3,
        )
        return False
    return True


def _dataset_type():
    import tensorflow as tf

    return tf.data.Dataset

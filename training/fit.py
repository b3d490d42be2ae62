"""``fit_model``: Keras ``fit`` with the callbacks every run needs, writing into a RunDir."""

from __future__ import annotations

import math
from pathlib import Path

import keras

from training import io
from training.rundir import RunDir


class TrainingDiverged(RuntimeError):
    pass


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN/inf loss, remembering where; the last good model stays saved."""

    def __init__(self):
        super().__init__()
        self.message = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.message = (
                f"Training stopped: the loss became {float(loss)} at epoch {self.epoch + 1}, "
                f"batch {batch + 1}. The last good model is kept in the run directory; "
                "lower the learning rate or check the data (train.py --check-data)."
            )
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """Save ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves.

    Both are written to a temporary name and renamed. History is rewritten as
    ``history.csv`` the same way, so a killed run leaves only complete files.
    """

    def __init__(self, run_dir: RunDir, monitor: str, mode: str, guard: StopOnNonFinite):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; received {mode!r}")
        self.run_dir, self.monitor, self.mode, self.guard = run_dir, monitor, mode, guard
        self.rows = _read_history(run_dir / "history.csv") if run_dir.resuming else []
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
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        io.write_csv(self.run_dir / "history.csv", self.rows, _fieldnames(self.rows))
        io.save_model(self.model, self.run_dir / "last.keras")
        value = logs.get(self.monitor)
        if self._better(None if value is None else float(value)):
            self.best = float(value)
            io.save_model(self.model, self.run_dir / "best.keras")


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
):
    """Train ``model`` with checkpoints, resume, history, TensorBoard and a NaN guard.

    ``callbacks`` (e.g. the adaptive-GLF callback) run before the checkpoint, so a model
    saved at the end of an epoch carries the state they set. With ``run_dir.resuming`` the
    run continues from the last finished epoch (Keras ``BackupAndRestore``).

    Returns the Keras ``History``. Raises :class:`TrainingDiverged` on a NaN/inf loss.
    """
    guard = StopOnNonFinite()
    all_callbacks = [guard, *(callbacks or [])]
    all_callbacks.append(RunCheckpoint(run_dir, monitor, mode, guard))
    all_callbacks.append(
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), save_freq="epoch", delete_checkpoint=True)
    )
    if tensorboard and run_dir.chief:
        all_callbacks.append(
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), update_freq="epoch", write_graph=False)
        )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    if guard.message is not None:
        raise TrainingDiverged(guard.message)
    return history

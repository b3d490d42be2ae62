"""One run = one loss x task x seed in its own folder: train to the plateau, then test.

Folder ``<out>/runs/<task>/<loss>/seed<k>/``: the files of a :class:`training.rundir.RunDir`
(config.json, history.csv, best.keras, backup/ for resume, COMPLETED) plus ``metrics.json``
(the test metrics). A run with ``metrics.json`` is done and skipped; a run killed while training
continues from its last finished epoch; a trained run without metrics is only evaluated.

The stopping rule, the same for every loss: after every epoch (``steps_per_epoch`` steps) the
mean foreground Dice of the validation cases is measured (hard: argmax or 0.5 threshold, pooled
over the validation set per class, then averaged over the foreground classes); training stops
when it has not exceeded its best by more than ``min_delta`` for ``patience`` epochs, or at
``max_epochs``. The weights of the best validation epoch are tested. A run that reaches
``max_epochs`` while still gaining is recorded as ``plateau: false``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np

from tasks.lossbench.config import BenchConfig, log
from tasks.lossbench.data import CLASS_NAMES, TaskData, one_hot
from tasks.lossbench.losses import LossSpec, run_name

METRICS_FILE = "metrics.json"
TRAIN_SPACING_MM = {"hippocampus": (1.0, 1.0), "lung": (2.0, 2.0)}  # in-plane spacing of a slice


def run_dir_of(out, task: str, spec: LossSpec, seed: int) -> Path:
    return Path(out) / "runs" / task / run_name(spec.name) / f"seed{seed}"


# ------------------------------------------------------------------------------ predictions
def predict_ids(model, x: np.ndarray, num_classes: int, batch_size: int = 64) -> np.ndarray:
    """Class ids ``(n, h, w)``: argmax of a softmax output, or ``p >= 0.5`` of a sigmoid one."""
    prob = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if num_classes == 1:
        return (prob[..., 0] >= 0.5).astype(np.int64)
    return np.argmax(prob, axis=-1)


def foreground_dice(pred_ids: np.ndarray, true_ids: np.ndarray, num_classes: int) -> float:
    """Hard Dice per foreground class pooled over all pixels, averaged over the classes."""
    classes = [1] if num_classes == 1 else range(1, num_classes)
    values = []
    for c in classes:
        p, t = pred_ids == c, true_ids == c
        denom = p.sum() + t.sum()
        values.append(1.0 if denom == 0 else 2.0 * (p & t).sum() / denom)
    return float(np.mean(values))


class ValidationDice(keras.callbacks.Callback):
    """Puts ``val_dice`` (mean foreground Dice of the validation set) into the epoch's logs."""

    def __init__(self, x_val, y_val_ids, num_classes: int):
        super().__init__()
        self.x, self.y, self.num_classes = x_val, y_val_ids, num_classes

    def on_epoch_end(self, epoch, logs=None):
        ids = predict_ids(self.model, self.x, self.num_classes)
        if logs is not None:
            logs["val_dice"] = foreground_dice(ids, self.y, self.num_classes)


class PlateauStop(keras.callbacks.Callback):
    """Stop when ``val_dice`` has not gained more than ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int, min_delta: float):
        super().__init__()
        self.patience, self.min_delta = patience, min_delta
        self.best, self.wait, self.stopped_epoch = -math.inf, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get("val_dice", float("nan")))
        if math.isfinite(value) and value > self.best + self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def set_state(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")


# ----------------------------------------------------------------------------------- model
def build_network(cfg: BenchConfig, num_classes: int, input_size: int) -> keras.Model:
    """The benchmark's U-Net: a sigmoid output for one class, a softmax over C classes."""
    from architectures.unet import build_unet

    net = build_unet(
        (input_size, input_size, 1),
        depth=cfg.depth,
        base_filters=cfg.base_filters,
        out_channels=max(num_classes, 1),
    )
    if num_classes == 1:
        return net
    # The same network with a softmax head over the classes instead of per-channel sigmoids.
    logits_in = net.get_layer("mask").input
    head = keras.layers.Conv2D(
        num_classes, 1, activation="softmax", dtype="float32", name="softmax_mask"
    )
    return keras.Model(net.input, head(logits_in), name="unet_softmax")


def train_dataset(data: TaskData, spec: LossSpec, cfg: BenchConfig, seed: int):
    import tensorflow as tf

    from keras_losses.distance_maps import attach_distance_maps

    y = one_hot(data.y_train, data.num_classes)
    ds = tf.data.Dataset.from_tensor_slices((data.x_train.astype(np.float32), y))
    if spec.distance_maps:
        # once per sample: the maps are cached after the first pass
        ds = ds.map(attach_distance_maps(data.num_classes, TRAIN_SPACING_MM[data.task])).cache()
    ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(cfg.batch_size, drop_remainder=True).prefetch(2)


def train_run(cfg: BenchConfig, spec: LossSpec, data: TaskData, seed: int, path: Path) -> None:
    from core import io
    from keras_losses.adaptive import prepare_adaptive_glf
    from tasks.common import seed_everything
    from training.fit import fit_model
    from training.rundir import RunDir

    seed_everything(seed)
    resume = path.exists() and any(path.iterdir())
    run = RunDir(path, resume=resume)
    run.write_config(
        {"task": data.task, "loss": spec.name, "seed": seed, **dataclasses.asdict(cfg)}
    )
    io.write_json(run / "split.json", data.split)
    model = build_network(cfg, data.num_classes, data.x_train.shape[1])
    loss = spec.build(data.num_classes)
    optimizer = keras.optimizers.Adam(cfg.lr)
    callbacks = [ValidationDice(data.x_val, data.y_val[..., 0], data.num_classes)]
    if spec.adaptive:
        model, glf_callbacks = prepare_adaptive_glf(
            model, loss, spec.adaptive, optimizer, run_dir=run
        )
        callbacks = glf_callbacks + callbacks
    else:
        model.compile(optimizer=optimizer, loss=loss)
    if spec.schedule is not None:
        callbacks.append(
            spec.schedule(loss, cfg.steps_per_epoch * cfg.batch_size, len(data.x_train))
        )
    stop = PlateauStop(cfg.patience, cfg.min_delta)
    callbacks.append(stop)
    if not model.built:  # a wrapped model (exploratory GLF) is built by one call
        model(data.x_train[:1])
    fit_model(
        model,
        train_dataset(data, spec, cfg, seed),
        None,
        run_dir=run,
        epochs=cfg.max_epochs,
        monitor="val_dice",
        mode="max",
        callbacks=callbacks,
        steps_per_epoch=cfg.steps_per_epoch,
        tensorboard=False,
        verbose=0,
    )
    run.mark_complete(
        loss=spec.name,
        epochs=len(_history(path)),
        plateau=stop.stopped_epoch is not None,
        stopped_epoch=stop.stopped_epoch,
    )


# ------------------------------------------------------------------------------ evaluation
def evaluate_run(data: TaskData, path: Path) -> dict:
    """Test metrics of the run's best model: per class Dice and HD95 (mm) with empty counts."""
    from core import io
    from evaluation.surface_distance import hd95, hd95_summary

    model = keras.saving.load_model(path / "best.keras", compile=False)
    pred = predict_ids(model, data.x_test, data.num_classes)
    true = data.y_test[..., 0].astype(np.int64)
    classes = [1] if data.num_classes == 1 else list(range(1, data.num_classes))
    per_class = {}
    for c, cname in zip(classes, CLASS_NAMES[data.task], strict=True):
        dice, hd = [], []
        for idx, spacing in zip(data.test_cases, data.test_spacing, strict=True):
            p, t = pred[idx] == c, true[idx] == c
            if len(spacing) == 2:  # a 2D case (one patch)
                p, t = p[0], t[0]
            if t.any():
                dice.append(2.0 * (p & t).sum() / (p.sum() + t.sum()))
            hd.append(hd95(p, t, spacing))
        per_class[cname] = {
            "dice": float(np.mean(dice)) if dice else None,
            "dice_cases": len(dice),
            **hd95_summary(hd),
        }
    history = _history(path)
    result = {
        "per_class": per_class,
        "dice": float(np.mean([v["dice"] for v in per_class.values() if v["dice"] is not None])),
        "hd95_mm": _mean_or_none([v["hd95_mm"] for v in per_class.values()]),
        "epochs": len(history),
        "best_epoch": int(np.argmax([float(r["val_dice"]) for r in history])) + 1
        if history
        else None,
        "val_dice_curve": [float(r["val_dice"]) for r in history],
        "plateau": _completed(path).get("plateau"),
    }
    io.write_json(path / METRICS_FILE, result)
    return result


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _history(path: Path) -> list[dict]:
    import csv

    file = path / "history.csv"
    if not file.exists():
        return []
    with open(file, newline="") as f:
        return list(csv.DictReader(f))


def _completed(path: Path) -> dict:
    import json

    file = path / "COMPLETED"
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


def run_one(cfg: BenchConfig, spec: LossSpec, data: TaskData, seed: int, out) -> dict:
    """Train (or resume) and test one run; returns its metrics (read back when already done)."""
    from core import io

    path = run_dir_of(out, data.task, spec, seed)
    if (path / METRICS_FILE).exists():
        return io.read_json(path / METRICS_FILE)
    if not (path / "COMPLETED").exists():
        log(f"train {data.task} / {spec.name} / seed {seed} -> {path}")
        train_run(cfg, spec, data, seed, path)
    return evaluate_run(data, path)

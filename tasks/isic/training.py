"""Dermoscopy records, the VGG-16 (+ loss-estimator head), and training."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
from pathlib import Path

from tasks.isic.config import IsicConfig, log
from training.config import add_arguments, from_args


def resolve_data_dir(cfg) -> Path:
    from data.synthetic_dermoscopy import synthetic_isic_dir

    if cfg.get("data_dir"):
        return Path(cfg["data_dir"])
    root = synthetic_isic_dir(cfg.get("synthetic_per_class", 40), 96, cfg.get("seed", 0))
    log(f"no --data-dir: using the built-in synthetic dermoscopy set in {root}")
    return root


def list_records(cfg: dict, data_dir: Path):
    from data.dermoscopy import list_dermoscopy, subsample
    from data.validate import DataError

    records, missing = list_dermoscopy(data_dir, cfg.get("layout", "auto"))
    if missing:
        log(
            f"{len(missing)} listed images are missing from {data_dir} (first: {', '.join(missing[:5])}); using the {len(records)} present"
        )
    records = subsample(records, cfg.get("max_per_class"), cfg.get("seed", 0))
    classes = list(cfg["classes"])
    present = {r.label for r in records}
    absent = [c for c in classes if c not in present]
    if absent:
        raise DataError(
            f"{data_dir}: in-distribution classes {', '.join(absent)} have no images (--classes {','.join(classes)})"
        )
    inside = [r for r in records if r.label in classes]
    held_out = [r for r in records if r.label not in classes]
    return inside, held_out


def crop_shape(cfg: dict) -> str:
    """The run's crop shape; a run whose config predates the option was trained on the square."""
    return cfg.get("crop_shape", "square")


def load(records, cfg: dict):
    from data.dermoscopy import load_images

    return load_images(
        records,
        cfg["image_size"],
        cfg["crop_fraction"],
        cfg["sog_power"] or None,
        crop_shape=crop_shape(cfg),
    )


def check_data(cfg: IsicConfig) -> int:
    from data.dermoscopy import check_images

    data_dir = resolve_data_dir(dataclasses.asdict(cfg))
    inside, held = list_records(dataclasses.asdict(cfg), data_dir)
    problems = check_images(inside + held)
    for p in problems:
        print(p)
    counts = {
        c: sum(r.label == c for r in inside + held)
        for c in sorted({r.label for r in inside + held})
    }
    log(
        f"checked {len(inside) + len(held)} images in {data_dir}: {counts}; {len(problems)} problem(s)"
    )
    return len(problems)


# ------------------------------------------------------------------------------------ model
def weights_loaded(weights: str) -> str:
    """What ``--weights`` resolves to on this machine: the file's path, or a sentence saying
    the network starts from random weights (``imagenet`` without a cached file does)."""
    from architectures.vgg import resolve_weights

    path = resolve_weights(weights)
    if path is not None:
        return str(path)
    if str(weights).lower() == "imagenet":
        return "none: random initialization (ImageNet weights requested but not found in ~/.keras/models)"
    return "none: random initialization"


def build_model(cfg: IsicConfig, num_classes: int, class_weights, steps_per_epoch: int):
    import keras

    import keras_losses
    from architectures.vgg import build_vgg16_classifier

    estimator = cfg.loss == "ce+loss-estimator"
    l2 = cfg.weight_decay / 2 if cfg.weight_decay_mode == "l2" else 0.0
    model = build_vgg16_classifier(
        (cfg.image_size, cfg.image_size, 3),
        num_classes,
        loss_estimator=estimator,
        weights=cfg.weights,
        width=cfg.width,
        dropout=cfg.dropout,
        l2=l2,
        head=cfg.head,
        init=cfg.init,
        batch_norm=cfg.batch_norm,
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.lr,
        decay_steps=max(1, cfg.lr_halve_every * steps_per_epoch),
        decay_rate=0.5,
        staircase=True,
    )
    if cfg.weight_decay_mode == "decoupled":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    weights = class_weights if cfg.class_weighted_ce else None
    if estimator:
        loss = keras_losses.LossEstimatorLoss(
            lambda_=cfg.lambda_rank,
            margin=cfg.margin,
            class_weights=weights,
            rank_target=cfg.rank_target,
            pair_reduction=cfg.pair_reduction,
        )
    elif weights is not None:
        # The study's weighting: the weighted losses' batch mean (not normalised by the weights).
        loss = keras_losses.ClassWeightedCategoricalCrossentropy(weights, normalization="samples")
    else:
        loss = keras.losses.CategoricalCrossentropy()
    model.compile(optimizer=optimizer, loss=loss)
    return model


def predict_probs(model, images, batch_size: int = 64):
    """Class probabilities (the loss estimate, if any, is dropped)."""
    import numpy as np

    from architectures.vgg import probs_model

    out = probs_model(model).predict(
        np.asarray(images, np.float32), batch_size=batch_size, verbose=0
    )
    return out


def _balanced_accuracy_callback(images, labels, num_classes, batch_size):
    import keras
    import numpy as np

    from evaluation.ood import balanced_accuracy

    class ValBalancedAccuracy(keras.callbacks.Callback):
        """Adds ``val_balanced_accuracy`` to the epoch logs (the checkpoint monitors it)."""

        def on_epoch_end(self, epoch, logs=None):
            if not hasattr(self, "_probs"):  # one sub-model, so predict is traced once
                from architectures.vgg import probs_model

                self._probs = probs_model(self.model)
            pred = np.argmax(
                self._probs.predict(
                    np.asarray(images, np.float32), batch_size=batch_size, verbose=0
                ),
                axis=1,
            )
            value = balanced_accuracy(labels, pred, num_classes)
            if logs is not None:
                logs["val_balanced_accuracy"] = value
            print(f"  epoch {epoch + 1}: val_balanced_accuracy {100 * value:.2f} %", flush=True)

    return ValBalancedAccuracy()


# ------------------------------------------------------------------------------------ training
def run_training(cfg: IsicConfig, out, *, resume=False, overwrite=False, strategy="auto") -> Path:
    """Train one model; returns its run directory (config.json, split.json, best.keras, ...).

    ``split.json`` holds train / val / test image ids (grouped by lesion); only train and val are
    read here: val chooses the checkpoint, test is left for the evaluation.
    """
    import numpy as np

    from core import io
    from data.dermoscopy import (
        Augment,
        class_loss_shares,
        inverse_frequency_weights,
        lesion_split_test,
        make_dataset,
    )
    from tasks.common import seed_everything
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import make_strategy

    strat = make_strategy(strategy)
    run = RunDir(out, resume=resume, overwrite=overwrite)
    cfg = run.resume_config(cfg)  # --resume: the saved settings; a changed flag is an error
    seed_everything(cfg.seed)
    conf = dataclasses.asdict(cfg)
    data_dir = resolve_data_dir(conf)
    inside, _ = list_records(conf, data_dir)
    classes = list(cfg.classes)
    labels = np.array([classes.index(r.label) for r in inside])
    if run.resuming and (run / "split.json").exists():
        from data import validate

        split = io.read_json(run / "split.json", expect=dict)
        validate.raise_problems(validate.check_disjoint(split, run / "split.json"))
    else:
        parts = lesion_split_test(
            labels, [r.lesion_id for r in inside], cfg.val_fraction, cfg.test_fraction, cfg.seed
        )
        split = {
            key: [inside[i].image_id for i in idx]
            for key, idx in zip(("train", "val", "test"), parts, strict=True)
        }
    loaded = weights_loaded(cfg.weights)
    log(f"VGG-16 weights: {loaded}")
    run.write_config(
        {"task": "isic", **conf, "data_dir_used": str(data_dir), "weights_loaded": loaded}
    )
    io.write_json(run / "split.json", split)
    by_id = {r.image_id: i for i, r in enumerate(inside)}
    tr = np.array([by_id[i] for i in split["train"]])
    va = np.array([by_id[i] for i in split["val"]])
    images, _ = load([inside[i] for i in np.concatenate([tr, va])], conf)
    x_tr, x_va = images[: len(tr)], images[len(tr) :]
    y_tr, y_va = labels[tr], labels[va]
    counts = np.bincount(y_tr, minlength=len(classes))
    log(
        f"{len(tr)} training / {len(va)} validation / {len(split.get('test', []))} test images; "
        "training counts " + ", ".join(f"{c} {n}" for c, n in zip(classes, counts, strict=True))
    )
    class_weights = inverse_frequency_weights(y_tr, len(classes))
    shares = class_loss_shares(counts, cfg.balanced_sampling, cfg.class_weighted_ce)
    log(
        "share of the training loss per class (equal per-sample losses): "
        + ", ".join(f"{c} {100 * s:.1f} %" for c, s in zip(classes, shares, strict=True))
    )
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(tr) / cfg.batch_size))
    aug = (
        Augment(rotation_deg=cfg.rotation_deg, translation=cfg.translation) if cfg.augment else None
    )
    train_ds = make_dataset(
        x_tr,
        y_tr,
        len(classes),
        cfg.batch_size,
        training=True,
        seed=cfg.seed,
        balanced=cfg.balanced_sampling,
        augment=aug,
    )
    val_ds = make_dataset(x_va, y_va, len(classes), cfg.batch_size, training=False)
    with strat.scope():
        model = build_model(cfg, len(classes), class_weights, steps)
    io.write_json(run / "class_weights.json", dict(zip(classes, class_weights, strict=True)))
    callback = _balanced_accuracy_callback(x_va, y_va, len(classes), cfg.batch_size)
    fit_model(
        model,
        train_ds,
        val_ds,
        run_dir=run,
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        monitor="val_balanced_accuracy",
        mode="max",
        callbacks=[callback],
        verbose=2,
        tensorboard=importlib.util.find_spec("tensorboard") is not None,  # TF 2.21 wheels lack it
    )
    run.mark_complete(loss=cfg.loss, epochs=cfg.epochs, train_images=len(tr))
    return run.path


def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, IsicConfig)


def train(args) -> Path | None:
    from tasks.common import check_or_train

    cfg = from_args(IsicConfig, args)
    return check_or_train(
        args, "isic", cfg, lambda: check_data(cfg), run_training, data_dir=cfg.data_dir
    )

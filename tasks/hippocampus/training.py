"""Build the U-Net and the loss, load the MSD Task04 slices, and train."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path

from tasks.hippocampus.config import HippocampusConfig, log
from training.config import add_arguments, from_args


def build_loss(cfg: HippocampusConfig):
    """The loss named by ``cfg.loss``: BCE, squared Dice, or their sums (with focal)."""
    import keras

    import keras_losses as kl

    def dice():
        return kl.SquaredDiceLoss(per_image=cfg.dice_per_image, smooth=cfg.dice_smooth)

    if cfg.loss == "bce":
        return keras.losses.BinaryCrossentropy()
    if cfg.loss == "dice":
        return dice()
    terms = [keras.losses.BinaryCrossentropy(), dice()]
    if cfg.loss == "bce+dice+focal":
        terms.append(
            kl.BinaryFocalLoss(
                alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, apply_class_balancing=True
            )
        )
    return kl.CombinedLoss(terms, name=cfg.loss.replace("+", "_"))


def build_model(cfg: HippocampusConfig):
    import keras

    from architectures.unet import build_unet
    from evaluation.dice_metric import HardDice

    model = build_unet((cfg.size, cfg.size, 1), depth=cfg.depth, base_filters=cfg.base_filters)
    # Hard Dice every epoch (history.csv: dice, val_dice, val_dice_fg): the convergence measure
    # and the best-model criterion, the same for every loss (loss values are not comparable).
    metrics = [HardDice(name="dice"), HardDice("foreground_slices", name="dice_fg")]
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=build_loss(cfg), metrics=metrics)
    return model


# ---------------------------------------------------------------------------------------- data
def slice_settings(cfg):
    from data.hippocampus import SliceSettings

    return SliceSettings(
        size=cfg["size"],
        max_intensity=cfg["max_intensity"],
        # runs written before `scaling` existed were trained on the percentile scaling
        scaling=cfg.get("scaling", "percentile"),
        clip_percentile=cfg["clip_percentile"],
    )


def cache_dir_of(value):
    from data.hippocampus import default_cache_dir

    return Path(value) if value else default_cache_dir()


def load_split_slices(data_dir, cfg: dict, ids, cache_dir=None):
    """Slices of the volumes ``ids`` (a split list) as ``(images, masks, volume_index)``."""
    from data.hippocampus import list_cases, load_slices
    from data.validate import DataError

    by_id = {c.case_id: c for c in list_cases(data_dir)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(
            f"{data_dir}: the run's split names volumes that are not there: {missing[:5]}"
        )
    return load_slices(
        [by_id[i] for i in ids], slice_settings(cfg), cache_dir_of(cache_dir), log=log
    )


def check_data(data_dir, cfg: HippocampusConfig) -> int:
    """Decode every case, print every problem with its file name; returns the problem count."""
    from data.hippocampus import decode_case, list_cases
    from data.validate import DataError

    problems, cases = [], list_cases(data_dir, cfg.max_volumes)
    settings = slice_settings(dataclasses.asdict(cfg))
    for case in cases:
        try:
            decode_case(case, settings)
        except DataError as err:
            problems.append(str(err))
            print(err, file=sys.stderr)
    log(f"checked {len(cases)} volumes in {data_dir}: {len(problems)} problem(s)")
    return len(problems)


# ------------------------------------------------------------------------------------ training
def run_training(
    cfg: HippocampusConfig, out, *, resume=False, overwrite=False, strategy="auto"
) -> Path:
    """Train one model; returns its run directory (config.json, split.json, best.keras, ...)."""
    from core import io
    from data import validate
    from data.hippocampus import list_cases, make_dataset, split_cases
    from tasks.common import seed_everything
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import make_strategy

    run = RunDir(out, resume=resume, overwrite=overwrite)
    cfg = run.resume_config(cfg)  # --resume: the saved settings; a changed flag is an error
    seed_everything(cfg.seed)
    cases = list_cases(cfg.data_dir, cfg.max_volumes)
    if run.resuming and (run / "split.json").exists():
        split = io.read_json(run / "split.json", expect=dict)
        validate.raise_problems(validate.check_disjoint(split, run / "split.json"))
    else:
        split = split_cases(
            [c.case_id for c in cases], cfg.test_fraction, cfg.seed, cfg.val_fraction
        )
    run.write_config({"task": "hippocampus", **dataclasses.asdict(cfg)})
    io.write_json(run / "split.json", split)
    conf = dataclasses.asdict(cfg)
    x_train, y_train, _ = load_split_slices(cfg.data_dir, conf, split["train"], cfg.cache_dir)
    validate.raise_problems(validate.check_foreground(
        int(y_train.reshape(len(y_train), -1).any(axis=1).sum()), len(y_train), cfg.data_dir, "training slices'"
    ))  # fmt: skip
    log(
        f"{len(split['train'])} training volumes -> {len(x_train)} slices; "
        f"{len(split['val'])} validation, {len(split['test'])} test volumes; loss {cfg.loss}"
    )
    train_ds = make_dataset(x_train, y_train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_ds, monitor = None, "loss"
    if split["val"]:
        x_val, y_val, _ = load_split_slices(cfg.data_dir, conf, split["val"], cfg.cache_dir)
        val_ds, monitor = make_dataset(x_val, y_val, cfg.batch_size, shuffle=False), "val_dice"
    strategy = make_strategy(strategy)
    with strategy.scope():
        model = build_model(cfg)
    fit_model(
        model,
        train_ds,
        val_ds,
        run_dir=run,
        epochs=cfg.epochs,
        monitor=monitor,
        mode="max" if monitor == "val_dice" else "min",
        verbose=2,
        strategy=strategy,
        tensorboard=importlib.util.find_spec("tensorboard") is not None,
    )
    run.mark_complete(loss=cfg.loss, epochs=cfg.epochs, train_slices=len(x_train))
    return run.path


def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, HippocampusConfig)


def train(args) -> Path | None:
    from tasks.common import check_or_train

    cfg = from_args(HippocampusConfig, args)
    return check_or_train(
        args,
        "hippocampus",
        cfg,
        lambda: check_data(cfg.data_dir, cfg),
        run_training,
        data_dir=cfg.data_dir,
    )

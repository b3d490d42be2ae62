"""Rajput (2021): robustness of BCE, Dice, BCE+Dice and BCE+Dice+Focal to gradient pixel attacks.

A 2D U-Net is trained on MSD Task04 hippocampus slices with each loss; then the N input
pixels of largest gradient (of the predicted output w.r.t. the input) are overwritten, and
Dice is measured as N and the written value grow (the paper's Figures 1-7).

    python train.py --task hippocampus --loss dice --data-dir .../Task04_Hippocampus
    python evaluate.py --task hippocampus --model runs/hippocampus-bce runs/hippocampus-dice
    python reproduce.py robustness --data-dir .../Task04_Hippocampus --quick

Reference:
    V. Rajput, "Robustness of different loss functions and their impact on networks learning
    capability", arXiv:2110.08322, 2021.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tasks.common import model_of_run
from training.config import add_arguments, from_args, option

LOSSES = ("bce", "dice", "bce+dice", "bce+dice+focal")
PAPER = "Rajput 2021, arXiv:2110.08322"
DEFAULT_DATA = "../shared/data/msd_hippocampus/Task04_Hippocampus"


@dataclass
class HippocampusConfig:
    """Data, model and training settings of one hippocampus run."""

    data_dir: str = option(
        DEFAULT_DATA, "MSD Task04_Hippocampus folder (dataset.json, imagesTr, labelsTr)"
    )
    loss: str = option("dice", f"training loss; {PAPER} compares all four", choices=LOSSES)
    size: int = option(
        64, "slices are zero-padded to size x size (the largest Task04 slice is 43x59)"
    )
    max_intensity: float = option(
        0.2, f"intensities scaled per volume to [0, max_intensity] ({PAPER}, Sec. 3: 0.2)"
    )
    clip_percentile: float = option(
        99.5,
        "percentile of a volume mapped to max_intensity (our choice: robust to bright outliers)",
    )
    test_fraction: float = option(
        1 / 3, f"fraction of volumes held out for testing ({PAPER}: 131 of 394, about 1/3)"
    )
    val_fraction: float = option(
        0.1,
        "fraction of the training volumes used for validation / best-model selection (our choice)",
    )
    # Optional[...] rather than X | None: training.config parses typing.Optional only.
    max_volumes: Optional[int] = option(None, "use the first N volumes by id (default: all)")  # noqa: UP045
    cache_dir: Optional[str] = option(None, "decode cache (default: $KERAS_LOSSES_CACHE/hippocampus, else ~/.cache/keras_losses/hippocampus)")  # noqa: UP045
    seed: int = option(0, "seed of the volume split, shuffling and initialisation")
    epochs: int = option(30, "training epochs (not stated in the paper; our choice)")
    batch_size: int = option(32, "slices per batch (not stated in the paper; our choice)")
    lr: float = option(1e-3, "Adam learning rate (not stated in the paper; our choice)")
    depth: int = option(4, "U-Net down-sampling steps (Ronneberger et al. 2015: 4)")
    base_filters: int = option(
        32, "U-Net filters at the first level (our choice; doubled per level)"
    )
    dice_smooth: float = option(
        1.0, "smoothing constant of the squared-denominator Dice loss (Milletari et al. 2016)"
    )
    focal_alpha: float = option(
        0.25, "focal loss positive-class weight alpha (Lin et al. 2017: 0.25)"
    )
    focal_gamma: float = option(2.0, "focal loss focusing parameter gamma (Lin et al. 2017: 2)")

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}; received {self.loss!r}")
        for name in ("epochs", "batch_size", "depth", "base_filters", "size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1; received {getattr(self, name)}"
                )
        if self.size % 2**self.depth:
            raise ValueError(f"--size {self.size} must be divisible by 2**depth = {2**self.depth}")


MAX_TEST_HELP = (
    "attack at most this many test slices with foreground, drawn once (seeded) for all models"
)


@dataclass
class AttackConfig:
    """The attack levels of the paper's figures."""

    n_fixed: int = option(5, f"pixels overwritten in the value sweeps ({PAPER}, Figs. 2-3: 5)")
    values: list[float] = option(
        [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0],
        f"values written into the n-fixed pixels ({PAPER}: Fig. 2 0..0.2, Fig. 3 0..1.0)",
    )
    fixed_value: float = option(
        0.2, f"value written in the pixel-count sweep ({PAPER}, Fig. 5: 0.2)"
    )
    n_max: int = option(50, f"largest number of attacked pixels ({PAPER}, Figs. 5-6: 50)")
    n_step: int = option(1, "step of the pixel counts in the pixel-count sweep (Fig. 5)")
    random_n_step: int = option(5, "step of the pixel counts in the random-value sweep (Fig. 6)")
    repetitions: int = option(
        100, f"random-value repetitions per pixel count ({PAPER}, Fig. 6: 100)"
    )
    max_test_images: Optional[int] = option(200, MAX_TEST_HELP)  # noqa: UP045
    attack_batch: int = option(256, "attacked images per model call")
    threshold: float = option(0.5, "probability threshold of a predicted mask")
    attack_seed: int = option(0, "seed of the slice subset and the random attack values")

    def __post_init__(self):
        if (
            self.n_fixed < 0
            or self.n_max < 0
            or self.n_step < 1
            or self.random_n_step < 1
            or self.repetitions < 1
        ):
            raise ValueError(
                "attack settings: --n-fixed and --n-max must be >= 0, --n-step, --random-n-step and "
                f"--repetitions >= 1; received {self.n_fixed}, {self.n_max}, {self.n_step}, "
                f"{self.random_n_step}, {self.repetitions}"
            )


# Settings of `reproduce.py robustness --quick`: sized for a 2-core CPU shared with others.
QUICK_TRAIN = {"epochs": 12, "depth": 3, "base_filters": 16, "batch_size": 16, "max_volumes": 60}
QUICK_ATTACK = {"n_step": 5, "random_n_step": 10, "repetitions": 20, "max_test_images": 48}


def log(message: str) -> None:
    print(f"[hippocampus {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------- model
def build_loss(cfg: HippocampusConfig):
    """The loss named by ``cfg.loss``: BCE, squared Dice, or their sums (with focal)."""
    import keras

    import keras_losses as kl

    def dice():
        return kl.SquaredDiceLoss(smooth=cfg.dice_smooth)

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

    model = build_unet((cfg.size, cfg.size, 1), depth=cfg.depth, base_filters=cfg.base_filters)
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=build_loss(cfg))
    return model


# ---------------------------------------------------------------------------------------- data
def slice_settings(cfg):
    from data.hippocampus import SliceSettings

    return SliceSettings(
        size=cfg["size"], max_intensity=cfg["max_intensity"], clip_percentile=cfg["clip_percentile"]
    )


def cache_dir_of(value):
    from data.hippocampus import default_cache_dir

    return Path(value) if value else default_cache_dir()


def load_split_slices(data_dir, cfg: dict, ids, cache_dir=None):
    """Slices of the volumes ``ids`` (a split list) as ``(images, masks, volume_index)``."""
    from data.hippocampus import list_cases, load_slices
    from data.msd import DataError

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
    from data.msd import DataError

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
    from data.hippocampus import list_cases, make_dataset, split_cases
    from tasks.common import seed_everything
    from training import io
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import make_strategy

    seed_everything(cfg.seed)
    cases = list_cases(cfg.data_dir, cfg.max_volumes)
    run = RunDir(out, resume=resume, overwrite=overwrite)
    if run.resuming and (run / "split.json").exists():
        split = io.read_json(run / "split.json")
    else:
        split = split_cases(
            [c.case_id for c in cases], cfg.test_fraction, cfg.seed, cfg.val_fraction
        )
    run.write_config({"task": "hippocampus", **dataclasses.asdict(cfg)})
    io.write_json(run / "split.json", split)
    conf = dataclasses.asdict(cfg)
    x_train, y_train, _ = load_split_slices(cfg.data_dir, conf, split["train"], cfg.cache_dir)
    log(
        f"{len(split['train'])} training volumes -> {len(x_train)} slices; "
        f"{len(split['val'])} validation, {len(split['test'])} test volumes; loss {cfg.loss}"
    )
    train_ds = make_dataset(x_train, y_train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_ds, monitor = None, "loss"
    if split["val"]:
        x_val, y_val, _ = load_split_slices(cfg.data_dir, conf, split["val"], cfg.cache_dir)
        val_ds, monitor = make_dataset(x_val, y_val, cfg.batch_size, shuffle=False), "val_loss"
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
        mode="min",
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
        args, "hippocampus", cfg, lambda: check_data(cfg.data_dir, cfg), run_training, data_dir=cfg.data_dir
    )


# ---------------------------------------------------------------------------------- evaluation
def select_attack_images(masks, max_images, seed):
    """Indices of test slices with foreground, a seeded subset of at most ``max_images``."""
    import numpy as np

    idx = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
    if max_images is not None and len(idx) > max_images:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_images, replace=False))
    return idx


def run_evaluation(models, out, acfg: AttackConfig, *, data_dir=None, cache_dir=None) -> dict:
    """Clean Dice, input gradients and every attack curve of each model; writes
    ``metrics.json`` and the figures into ``out``; returns the results dict."""
    import keras
    import numpy as np

    import keras_losses  # noqa: F401  (registers the losses for load_model)
    from evaluation.attacks import attack_dice, dice_per_image, random_values
    from evaluation.gradients import input_gradients
    from training import io
    from training.rundir import load_run_config

    runs = [model_of_run(m) for m in models]
    configs = [load_run_config(r) for r, _ in runs]
    splits = [io.read_json(r / "split.json") for r, _ in runs]
    data_keys = ("size", "max_intensity", "clip_percentile")
    for (r, _), c, s in zip(runs[1:], configs[1:], splits[1:], strict=True):
        if s["test"] != splits[0]["test"] or any(c[k] != configs[0][k] for k in data_keys):
            raise ValueError(
                f"{r} was trained with another test split or slice settings than {runs[0][0]}; "
                "models compared in one evaluation must share them"
            )
    data_dir = data_dir or configs[0]["data_dir"]
    images, masks, _ = load_split_slices(
        data_dir, configs[0], splits[0]["test"], cache_dir or configs[0].get("cache_dir")
    )
    attack_idx = select_attack_images(masks, acfg.max_test_images, acfg.attack_seed)
    if len(attack_idx) == 0:
        raise ValueError(f"{data_dir}: the test volumes hold no foreground slice to attack")
    xa, ya = images[attack_idx], masks[attack_idx].astype(np.float32)
    log(f"{len(images)} test slices; attacking {len(attack_idx)} slices with foreground")

    values = np.asarray(acfg.values, np.float32)
    n_sweep = np.arange(0, acfg.n_max + 1, acfg.n_step)
    n_random = np.arange(0, acfg.n_max + 1, acfg.random_n_step)
    rand = random_values(len(n_random), acfg.repetitions, max(acfg.n_max, 1), acfg.attack_seed)
    fig_idx = _figure_examples(ya)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "paper": PAPER,
        "test_volumes": len(splits[0]["test"]),
        "test_slices": int(len(images)),
        "attacked_slices": int(len(attack_idx)),
        "attacked_slice_indices": attack_idx.tolist(),
        "dice": f"hard Dice (threshold {acfg.threshold:.2f}) per slice, averaged over the attacked slices",
        "attack": dataclasses.asdict(acfg),
        "models": {},
    }
    visuals = {}
    for (run, model_path), conf in zip(runs, configs, strict=True):
        name = conf.get("loss", run.name)
        log(f"{name}: loading {model_path}")
        model = keras.saving.load_model(model_path, compile=False)
        probs = model.predict(images, batch_size=128, verbose=0)
        per_slice = dice_per_image(masks, probs, acfg.threshold)
        fg = masks.reshape(len(masks), -1).any(axis=1)
        pred_all, true_all = probs > acfg.threshold, masks > 0
        global_dice = (
            2 * np.logical_and(pred_all, true_all).sum() / max(pred_all.sum() + true_all.sum(), 1)
        )
        grads = input_gradients(model, xa)
        log(f"{name}: value sweep (N = {acfg.n_fixed})")
        d_values, p_values = attack_dice(
            model,
            xa,
            ya,
            grads,
            np.full(len(values), acfg.n_fixed),
            values,
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
            return_predictions=True,
        )
        log(f"{name}: pixel-count sweep (value {acfg.fixed_value})")
        d_count = attack_dice(
            model,
            xa,
            ya,
            grads,
            n_sweep,
            np.full(len(n_sweep), acfg.fixed_value),
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
        )
        log(f"{name}: random values, {len(n_random)} pixel counts x {acfg.repetitions} repetitions")
        d_rand = attack_dice(
            model,
            xa,
            ya,
            grads,
            np.repeat(n_random, acfg.repetitions),
            rand,
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
        ).reshape(len(xa), len(n_random), acfg.repetitions)
        per_rep = d_rand.mean(axis=0)  # (levels, repetitions): mean over slices per repetition
        results["models"][name] = {
            "run": str(run),
            "clean_dice_attacked_slices": float(
                dice_per_image(ya, probs[attack_idx], acfg.threshold).mean()
            ),
            "clean_dice_foreground_slices": float(per_slice[fg].mean()),
            "clean_dice_global": float(global_dice),
            "value_sweep": {
                "n_pixels": acfg.n_fixed,
                "values": values.tolist(),
                "dice": d_values.mean(0).tolist(),
            },
            "count_sweep": {
                "value": acfg.fixed_value,
                "n_pixels": n_sweep.tolist(),
                "dice": d_count.mean(0).tolist(),
            },
            "random_sweep": {
                "n_pixels": n_random.tolist(),
                "repetitions": acfg.repetitions,
                "mean": per_rep.mean(1).tolist(),
                "std": per_rep.std(1).tolist(),
                "min": per_rep.min(1).tolist(),
                "max": per_rep.max(1).tolist(),
            },
        }
        m = results["models"][name]
        log(
            f"{name}: clean Dice {m['clean_dice_foreground_slices']:.3f} (foreground slices), "
            f"{m['clean_dice_global']:.3f} (global); N={acfg.n_fixed} v={values[-1]:g}: "
            f"{m['value_sweep']['dice'][-1]:.3f}"
        )
        visuals[name] = {
            "grads": grads[fig_idx],
            "clean": probs[attack_idx][fig_idx],
            "value_preds": p_values[fig_idx[0]],
        }
    figures = write_figures(out, xa[fig_idx], ya[fig_idx], visuals, results, acfg)
    results["figures"] = [f.name for f in figures]
    io.write_json(out / "metrics.json", results)
    log(f"wrote {out / 'metrics.json'} and {len(figures)} figures")
    return results


def _figure_examples(masks, count=3):
    """Attacked slices shown in the figures: those of the 50th, 75th and 90th percentile mask area."""
    import numpy as np

    area = masks.reshape(len(masks), -1).sum(1)
    order = np.argsort(area, kind="stable")
    picks = [order[min(int(q * len(order)), len(order) - 1)] for q in (0.9, 0.75, 0.5)[:count]]
    return np.array(sorted(set(picks), key=picks.index))


# ------------------------------------------------------------------------------------- figures
def write_figures(out: Path, images, masks, visuals, results, acfg: AttackConfig) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from training import io

    names = list(visuals)
    paths = []

    # Fig. 1: gradient maps (grayscale) and positive gradients over the true mask.
    ex = min(2, len(images))
    fig, axes = plt.subplots(
        len(names), 2 * ex, figsize=(2.0 * 2 * ex, 2.0 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        for e in range(ex):
            g = visuals[name]["grads"][e, ..., 0]
            a = axes[r, 2 * e]
            a.imshow(g, cmap="gray")
            a.set_title(f"{name}: gradient", fontsize=7)
            a = axes[r, 2 * e + 1]
            a.imshow(masks[e, ..., 0], cmap="gray", vmin=0, vmax=2)
            # positive gradients above 10 % of the largest: the pixels an attack picks first
            pos = np.ma.masked_where(g <= 0.1 * max(g.max(), 1e-12), g)
            a.imshow(pos, cmap="autumn", alpha=0.9)
            a.set_title("grad. > 10% max on mask", fontsize=7)
    _no_ticks(axes)
    fig.suptitle("Fig. 1: gradient of the predicted output w.r.t. the input", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig1_gradients.png", dpi=90))

    # Figs. 2-3: Dice vs value (N fixed).
    for fig_no, vmax in ((2, 0.2), (3, None)):
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        for name in names:
            s = results["models"][name]["value_sweep"]
            v, d = np.array(s["values"]), np.array(s["dice"])
            keep = v <= vmax + 1e-9 if vmax is not None else np.ones_like(v, bool)
            ax.plot(v[keep], d[keep], marker="o", label=name)
        ax.set_xlabel(f"value written into the {acfg.n_fixed} highest-gradient pixels")
        ax.set_ylabel("Dice")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"Fig. {fig_no}: Dice vs noise level (N = {acfg.n_fixed})", fontsize=9)
        paths.append(io.save_figure(fig, out / f"hippocampus_fig{fig_no}_values.png", dpi=90))

    # Fig. 4: predicted masks shrinking as the written value grows (one slice).
    values = results["models"][names[0]]["value_sweep"]["values"]
    fig, axes = plt.subplots(
        len(names),
        len(values) + 1,
        figsize=(1.4 * (len(values) + 1), 1.5 * len(names)),
        squeeze=False,
    )
    for r, name in enumerate(names):
        axes[r, 0].imshow(masks[0, ..., 0], cmap="gray")
        axes[r, 0].set_title("true mask", fontsize=6)
        axes[r, 0].set_ylabel(name, fontsize=7)
        for c, v in enumerate(values):
            axes[r, c + 1].imshow(
                visuals[name]["value_preds"][c, ..., 0] > acfg.threshold, cmap="gray"
            )
            axes[r, c + 1].set_title(f"v = {v:g}", fontsize=6)
    _no_ticks(axes)
    fig.suptitle(f"Fig. 4: predicted masks, N = {acfg.n_fixed} pixels set to v", fontsize=8)
    paths.append(io.save_figure(fig, out / "hippocampus_fig4_masks.png", dpi=90))

    # Fig. 5: Dice vs N at the fixed value.
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name in names:
        s = results["models"][name]["count_sweep"]
        ax.plot(s["n_pixels"], s["dice"], marker=".", label=name)
    ax.set_xlabel(f"pixels set to {acfg.fixed_value:g} (highest gradient first)")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Fig. 5: Dice vs number of attacked pixels", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig5_count.png", dpi=90))

    # Fig. 6: random values in [0, 1], mean and spread over repetitions.
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name in names:
        s = results["models"][name]["random_sweep"]
        n, mean, std = np.array(s["n_pixels"]), np.array(s["mean"]), np.array(s["std"])
        ax.plot(n, mean, marker=".", label=name)
        ax.fill_between(n, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("pixels set to random values in [0, 1]")
    ax.set_ylabel("Dice (mean +- std over repetitions)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Fig. 6: random attack, {acfg.repetitions} repetitions", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig6_random.png", dpi=90))

    # Fig. 7: clean predictions of every model beside the image and the true mask.
    fig, axes = plt.subplots(
        len(images),
        len(names) + 2,
        figsize=(1.5 * (len(names) + 2), 1.6 * len(images)),
        squeeze=False,
    )
    for r in range(len(images)):
        axes[r, 0].imshow(images[r, ..., 0], cmap="gray")
        axes[r, 1].imshow(masks[r, ..., 0], cmap="gray")
        for c, name in enumerate(names):
            axes[r, c + 2].imshow(visuals[name]["clean"][r, ..., 0] > acfg.threshold, cmap="gray")
        if r == 0:
            for c, title in enumerate(["image", "true mask", *names]):
                axes[0, c].set_title(title, fontsize=7)
    _no_ticks(axes)
    fig.suptitle("Fig. 7: clean predictions", fontsize=8)
    paths.append(io.save_figure(fig, out / "hippocampus_fig7_predictions.png", dpi=90))
    return paths


def _no_ticks(axes):
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])


def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        help="run directories (or .keras files inside them) to evaluate; several models are "
        "compared in one set of figures and must share the test split",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: <first run>/evaluation)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MSD Task04 folder (default: the one the run was trained on)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="decode cache (default: the run's, else ~/.cache/...)"
    )
    add_arguments(parser, AttackConfig)


def evaluate(args) -> dict:
    acfg = from_args(AttackConfig, args)
    out = args.out or str(model_of_run(args.model[0])[0] / "evaluation")
    return run_evaluation(args.model, out, acfg, data_dir=args.data_dir, cache_dir=args.cache_dir)


# -------------------------------------------------------------------------------- reproduction
def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="MSD Task04_Hippocampus folder")
    parser.add_argument(
        "--losses",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(LOSSES),
        help=f"comma-separated losses to compare (default: {','.join(LOSSES)})",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs")
    parser.add_argument(
        "--max-volumes", type=int, default=None, help="use only the first N volumes by id"
    )
    parser.add_argument(
        "--max-test-images",
        type=int,
        default=None,
        help="override the number of attacked test slices",
    )
    parser.add_argument(
        "--repetitions", type=int, default=None, help="override the random-attack repetitions"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="per-volume decode cache (default: $KERAS_LOSSES_CACHE/hippocampus, else ~/.cache/keras_losses/hippocampus)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split, training and attacks (default: 0)"
    )


def reproduce(args) -> Path:
    """Train one model per loss (finished runs in ``<out>/models`` are reused), attack them
    all, and write ``report.md``, ``results.json`` and the figures into ``--out``."""
    from training import io

    bad = [v for v in args.losses if v not in LOSSES]
    if bad:
        raise SystemExit(f"--losses: unknown {bad}; choose from {', '.join(LOSSES)}")
    out = Path(args.out or "reports/robustness")
    train_over = dict(QUICK_TRAIN) if args.quick else {}
    attack_over = dict(QUICK_ATTACK) if args.quick else {}
    for key, value in (("epochs", args.epochs), ("max_volumes", args.max_volumes)):
        if value is not None:
            train_over[key] = value
    for key, value in (
        ("max_test_images", args.max_test_images),
        ("repetitions", args.repetitions),
    ):
        if value is not None:
            attack_over[key] = value
    started = time.time()
    runs, reused = [], []
    for loss in args.losses:
        cfg = HippocampusConfig(
            data_dir=args.data_dir,
            loss=loss,
            seed=args.seed,
            cache_dir=args.cache_dir,
            **train_over,
        )
        run = out / "models" / loss.replace("+", "-")
        if (run / "COMPLETED").exists() and (run / "best.keras").exists():
            log(f"{loss}: reusing the finished run {run}")
            reused.append(loss)
        else:
            log(f"{loss}: training into {run}")
            run_training(cfg, run, resume=run.exists(), overwrite=False)
        runs.append(run)
    train_s = time.time() - started
    acfg = AttackConfig(attack_seed=args.seed, **attack_over)
    results = run_evaluation(runs, out, acfg, data_dir=args.data_dir, cache_dir=args.cache_dir)
    results["claims"] = check_claims(results, acfg)
    results["settings"] = {
        "quick": bool(args.quick),
        "train": dataclasses.asdict(
            HippocampusConfig(data_dir=args.data_dir, seed=args.seed, **train_over)
        ),
        "attack": dataclasses.asdict(acfg),
        "train_seconds": round(train_s, 1),
        "reused_runs": reused,  # finished runs in <out>/models are not retrained (nor timed)
        "total_seconds": round(time.time() - started, 1),
    }
    results["settings"]["train"].pop("loss")
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", render_report(results))
    log(f"wrote {out / 'report.md'}")
    return out


def _at(xs, ys, x):
    """The y of the level nearest to x."""
    import numpy as np

    xs = np.asarray(xs, float)
    return float(np.asarray(ys)[int(np.argmin(np.abs(xs - x)))]), float(
        xs[int(np.argmin(np.abs(xs - x)))]
    )


def check_claims(results: dict, acfg: AttackConfig) -> list[dict]:
    """The paper's claims (issue 8), each held / not held / not checkable, with our numbers."""
    models = results["models"]
    claims = []

    def add(text, held, numbers):
        claims.append({"claim": text, "held": held, "numbers": numbers})

    clean = {k: m["clean_dice_foreground_slices"] for k, m in models.items()}
    if "dice" in clean:
        best_other = max((v for k, v in clean.items() if k != "dice"), default=clean["dice"])
        add(
            "Dice loss gives the best or equal clean Dice (equal: within 0.01)",
            clean["dice"] >= best_other - 0.01,
            {k: round(v, 4) for k, v in clean.items()},
        )
    if "dice" in models and "bce+dice" in models:
        d, v = _at(
            models["dice"]["value_sweep"]["values"], models["dice"]["value_sweep"]["dice"], 0.6
        )
        bd, _ = _at(
            models["bce+dice"]["value_sweep"]["values"],
            models["bce+dice"]["value_sweep"]["dice"],
            0.6,
        )
        add(
            f"At value 0.6 (N = {acfg.n_fixed}) Dice-loss is below 5 % Dice while BCE+Dice stays near 60 % (>= 50 %)",
            d < 0.05 and bd >= 0.5,
            {"value": round(v, 4), "dice": round(d, 4), "bce+dice": round(bd, 4)},
        )
        d, n = _at(
            models["dice"]["count_sweep"]["n_pixels"], models["dice"]["count_sweep"]["dice"], 30
        )
        bd, _ = _at(
            models["bce+dice"]["count_sweep"]["n_pixels"],
            models["bce+dice"]["count_sweep"]["dice"],
            30,
        )
        add(
            f"With 30 pixels set to {acfg.fixed_value:g}, Dice-loss falls to about 30 % (<= 40 %) while BCE+Dice stays above 70 %",
            d <= 0.4 and bd > 0.7,
            {"n_pixels": int(n), "dice": round(d, 4), "bce+dice": round(bd, 4)},
        )
    if "bce" in models and len(models) > 1:
        drops = {}
        for k, m in models.items():
            c = m["clean_dice_attacked_slices"]
            curves = [m["value_sweep"]["dice"], m["count_sweep"]["dice"], m["random_sweep"]["mean"]]
            drops[k] = round(float(sum(c - sum(cv) / len(cv) for cv in curves) / len(curves)), 4)
        add(
            "BCE degrades least (smallest mean Dice drop from clean over the curves of Figs. 3, 5 and 6)",
            drops["bce"] <= min(drops.values()),
            {"mean_drop": drops},
        )
    return claims


def render_report(results: dict) -> str:
    s = results["settings"]
    names = list(results["models"])
    lines = [
        "# Robustness of BCE / Dice / BCE+Dice / BCE+Dice+Focal to gradient pixel attacks",
        "",
        f"Reproduction of {PAPER} on MSD Task04 hippocampus "
        f"({'--quick settings' if s['quick'] else 'full settings'}).",
        "",
        f"- Test: {results['test_volumes']} volumes, {results['test_slices']} slices; attacks on "
        f"{results['attacked_slices']} test slices with foreground.",
        f"- Training: {json.dumps({k: s['train'][k] for k in ('epochs', 'batch_size', 'lr', 'depth', 'base_filters', 'size', 'max_volumes')})}",
        f"- Attacks: {json.dumps({k: s['attack'][k] for k in ('n_fixed', 'fixed_value', 'n_max', 'n_step', 'random_n_step', 'repetitions', 'max_test_images')})}",
        f"- Wall time: training {s['train_seconds']:.0f} s, total {s['total_seconds']:.0f} s"
        + (
            f" (finished runs reused, not retrained: {', '.join(s['reused_runs'])})."
            if s["reused_runs"]
            else "."
        ),
        f"- Dice: {results['dice']}.",
        "",
        "## Clean Dice",
        "",
        "| loss | foreground test slices | global (all test pixels) | attacked slices |",
        "|---|---|---|---|",
    ]
    for n in names:
        m = results["models"][n]
        lines.append(
            f"| {n} | {m['clean_dice_foreground_slices']:.3f} | {m['clean_dice_global']:.3f} | {m['clean_dice_attacked_slices']:.3f} |"
        )
    first = results["models"][names[0]]
    lines += [
        "",
        f"## Dice vs value, N = {first['value_sweep']['n_pixels']} (Figs. 2-3)",
        "",
        "| loss | " + " | ".join(f"{v:g}" for v in first["value_sweep"]["values"]) + " |",
        "|---|" + "---|" * len(first["value_sweep"]["values"]),
    ]
    for n in names:
        lines.append(
            f"| {n} | "
            + " | ".join(f"{d:.3f}" for d in results["models"][n]["value_sweep"]["dice"])
            + " |"
        )
    cs = first["count_sweep"]
    show = [i for i, k in enumerate(cs["n_pixels"]) if k % 10 == 0] or list(
        range(len(cs["n_pixels"]))
    )
    lines += [
        "",
        f"## Dice vs pixels set to {cs['value']:g} (Fig. 5)",
        "",
        "| loss | " + " | ".join(f"N={cs['n_pixels'][i]}" for i in show) + " |",
        "|---|" + "---|" * len(show),
    ]
    for n in names:
        d = results["models"][n]["count_sweep"]["dice"]
        lines.append(f"| {n} | " + " | ".join(f"{d[i]:.3f}" for i in show) + " |")
    rs = first["random_sweep"]
    lines += [
        "",
        f"## Dice vs pixels set to random values in [0, 1], mean +- std over {rs['repetitions']} repetitions (Fig. 6)",
        "",
        "| loss | " + " | ".join(f"N={k}" for k in rs["n_pixels"]) + " |",
        "|---|" + "---|" * len(rs["n_pixels"]),
    ]
    for n in names:
        r = results["models"][n]["random_sweep"]
        lines.append(
            f"| {n} | "
            + " | ".join(f"{m:.3f} +- {sd:.3f}" for m, sd in zip(r["mean"], r["std"], strict=True))
            + " |"
        )
    lines += ["", "## The paper's claims", "", "| claim | held? | our numbers |", "|---|---|---|"]
    for c in results["claims"]:
        lines.append(
            f"| {c['claim']} | {'held' if c['held'] else 'NOT held'} | `{json.dumps(c['numbers'])}` |"
        )
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in results["figures"]] + [""]
    return "\n".join(lines)

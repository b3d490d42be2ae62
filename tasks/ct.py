"""Lung and liver tumour segmentation with the adaptive GLF (Seo, Bassenne, Xing, TMI 2021).

    python train.py --task lung --loss glf-det                  # built-in phantom, a few minutes
    python train.py --task lung --loss glf-det --data-dir /data/Task06_Lung --paper
    python evaluate.py --task lung --model runs/lung-glf-det [--model runs/lung-dice ...]
    python reproduce.py glf-lung --quick --data-dir ../shared/data/msd_lung_patches

Losses (``--loss``): ``dice``, ``effectiveness`` (``--beta2``), ``tversky`` (``--tversky-alpha``
weighs false positives, ``--tversky-beta`` false negatives), ``glf`` (fixed ``--alpha-p
--alpha-n --beta2``), ``glf-det`` and ``glf-exp`` (adaptive GLF, deterministic and exploratory
rules of the paper's Fig. 2, starting from ``--alpha-p --alpha-n --beta2``; Dice values by
default).

Defaults are sized for a 2-core CPU (128x128 slices, a 16-filter mU-Net, 8 short epochs, Adam
1e-3 so that the network learns within them); ``--paper`` switches to the paper's 512x512 slices,
Adam 1e-4 and a full-size network (and any flag given explicitly wins over both).

A run directory (``--out``, default ``runs/<task>-<loss>``) holds ``config.json`` (resolved
configuration), ``split.json`` (test cases), ``best.keras`` (best validation Dice; loads with
``keras.saving.load_model`` after ``import keras_losses``), ``last.keras``, ``history.csv``,
``tensorboard/``, for adaptive runs ``glf_trajectory.csv`` with ``glf_coefficients.png``
(paper Fig. 6) and ``glf_tversky_trajectory.png`` (Fig. 7), and ``eval/`` with the test
metrics and figures of the best model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

from tasks.common import model_of_run
from training.config import add_arguments, option

LOSSES = ("dice", "effectiveness", "tversky", "glf", "glf-det", "glf-exp")
ADAPTIVE = {"glf-det": "det", "glf-exp": "exp"}
ARCHS = ("munet", "unet")
EXP_MODES = ("exp", "exp-first-order", "exp-naive")


@dataclasses.dataclass
class CTConfig:
    """Every hyperparameter of a lung/liver run (written to ``config.json``).

    ``Optional[X]`` rather than ``X | None``: ``training.config`` parses the former only.
    """

    loss: str = option(
        "glf-det",
        "loss: dice, effectiveness, tversky, glf (fixed), glf-det / glf-exp (adaptive, paper Fig. 2)",
        choices=LOSSES,
    )
    alpha_p: float = option(
        1.0,
        "GLF alpha_P, weight of FP in the weighted precision (start value for glf-det/glf-exp); Dice: 1 (paper eq. 1)",
    )
    alpha_n: float = option(
        1.0,
        "GLF alpha_N, weight of FN in the weighted recall (start value for adaptive runs); Dice: 1 (paper eq. 1)",
    )
    beta2: float = option(
        1.0, "GLF / Effectiveness beta^2 (start value for adaptive runs); Dice: 1 (paper eq. 1)"
    )
    tversky_alpha: float = option(
        0.3,
        "Tversky weight of false positives (Salehi et al. 2017; the paper tunes it, see reproduce.py)",
    )
    tversky_beta: float = option(0.7, "Tversky weight of false negatives (Salehi et al. 2017)")
    glf_bounds: list[float] = option(
        [0.1, 10.0],
        "lo,hi clip of the adaptive coefficients (ours, not the paper's: without it the deterministic rule halves alpha_P at every step while FP >> TP, as with tumours of <0.1 %% of the slice, and the network collapses to predicting tumour everywhere); 0,inf: unbounded",
    )
    exp_mode: str = option(
        "exp",
        "glf-exp scoring: exp (exact, 27 scored candidates), exp-first-order, exp-naive (27 real steps)",
        choices=EXP_MODES,
    )
    arch: str = option(
        "munet", "network: munet (the paper's, Seo et al. TMI 2020) or unet", choices=ARCHS
    )
    depth: int = option(4, "down-sampling steps of the network (U-Net/mU-Net: 4)")
    base_filters: int = option(
        16,
        "filters of the first level (CPU default 16; --paper: 64 as in U-Net, the paper does not state it)",
    )
    kernel_stddev: float = option(
        0.05, "sd of the truncated-normal weight initializer (paper Sec. III: 0.05)"
    )
    bias_value: float = option(0.1, "initial bias (paper Sec. III: 0.1)")
    bn_momentum: float = option(0.9, "batch-norm moving-average decay (paper Sec. III: 0.9)")
    dropout: float = option(0.6, "dropout after the bottleneck (paper Sec. III: 0.6)")
    lr: float = option(
        1e-3,
        "Adam learning rate (paper Sec. III: 1e-4, which --paper uses; CPU default 1e-3: in the 240 "
        "steps of the default run, 1e-4 left the network marking every pixel as tumour)",
    )
    threshold: float = option(0.5, "threshold on the sigmoid output (paper Sec. III: 0.5)")
    image_size: int = option(128, "slice size fed to the network (CPU default 128; paper: 512)")
    epochs: int = option(
        8, "training epochs (CPU default 8; --paper: 100, our choice, the paper does not state it)"
    )
    steps_per_epoch: int = option(
        30,
        "optimizer steps per epoch; 0 = one pass over the training slices (CPU default 30; --paper: 0)",
    )
    batch_size: int = option(
        8, "slices per batch (the paper does not state it; 8 fits a 512x512 mU-Net on one GPU)"
    )
    seed: int = option(
        0, "seed of the split, tumour-free slice selection, augmentation and weights"
    )
    data_dir: Optional[str] = option(  # noqa: UP045
        None,
        "MSD Task06 / LiTS folder, HDF5 patch file(s) or slice folder; none: the built-in synthetic phantom",
    )
    tumour_free_ratio: float = option(
        0.5, "tumour-free training slices per tumour slice (seeded choice)"
    )
    val_fraction: float = option(0.15, "fraction of cases (patients) held out for validation")
    test_fraction: float = option(0.2, "fraction of cases (patients) held out for testing")
    augment: bool = option(
        True, "flips, small rotations and elastic deformation on training slices"
    )
    pixel_mm: Optional[float] = option(  # noqa: UP045
        None,
        "in-plane pixel spacing of the network input in mm, only to place the paper's '< 100 px at 512' small-tumour range; none: from --image-size (whole 512 slices resized)",
    )
    paper: bool = option(
        False,
        "paper-sized run: 512x512, 64 base filters, Adam 1e-4, 100 epochs of full passes over the data",
    )
    quick: bool = option(
        False, "smaller CPU run: 64x64, 8 base filters, depth 3, 3 epochs of 15 steps"
    )
    task: str = "lung"  # set from --task, not a flag


# Presets applied to the fields the user did not give explicitly.
PAPER_PRESET = {
    "image_size": 512,
    "base_filters": 64,
    "epochs": 100,
    "steps_per_epoch": 0,
    "lr": 1e-4,
}
QUICK_PRESET = {"image_size": 64, "base_filters": 8, "depth": 3, "epochs": 3, "steps_per_epoch": 15}

# Paper's numbers (Seo et al. 2021, Figs. 3 and 5, as quoted in the issue), in %.
PAPER_RESULTS = {
    "lung": {
        "recall": {"G(D)": 88.3, "G(E)": 90.4, "best conventional": 82.0},
        "tumour_free_dice": {"T": 71.6, "G(D)": 75.4, "G(E)": 77.4},
        "precision_max": 96.3,
    },
    "liver": {
        "recall": {"G(D)": 84.3, "G(E)": 85.8, "best conventional": 83.3},
        "tumour_free_dice": {"T": 87.2, "G(D)": 88.8, "G(E)": 90.1},
        "precision_max": 98.1,
    },
}


# ------------------------------------------------------------------------------ config
def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, CTConfig, skip=("task",))


def resolve_config(args: argparse.Namespace, task: str) -> CTConfig:
    """Defaults, then the ``--paper``/``--quick`` preset, then the flags given explicitly."""
    names = {f.name for f in dataclasses.fields(CTConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if given.get("paper") and given.get("quick"):
        raise ValueError("--paper and --quick exclude each other; give one of them")
    values = {}
    if given.get("paper"):
        values.update(PAPER_PRESET)
    if given.get("quick"):
        values.update(QUICK_PRESET)
    values.update(given)
    values["task"] = task
    cfg = CTConfig(**values)
    check_config(cfg)
    return cfg


def check_config(cfg: CTConfig) -> None:
    """Raise a ValueError naming the flag for values that cannot work."""
    factor = 2**cfg.depth
    if cfg.image_size <= 0 or cfg.image_size % factor:
        raise ValueError(
            f"--image-size must be a positive multiple of 2**depth = {factor} (--depth {cfg.depth}); received {cfg.image_size}"
        )
    for flag, value in (
        ("--alpha-p", cfg.alpha_p),
        ("--alpha-n", cfg.alpha_n),
        ("--beta2", cfg.beta2),
        ("--tversky-alpha", cfg.tversky_alpha),
        ("--tversky-beta", cfg.tversky_beta),
        ("--lr", cfg.lr),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{flag} must be a positive number; received {value}")
    for flag, value in (
        ("--epochs", cfg.epochs),
        ("--batch-size", cfg.batch_size),
        ("--base-filters", cfg.base_filters),
        ("--depth", cfg.depth),
    ):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1; received {value}")
    if len(cfg.glf_bounds) != 2 or not 0 <= cfg.glf_bounds[0] <= cfg.glf_bounds[1]:
        raise ValueError(
            f"--glf-bounds must be lo,hi with 0 <= lo <= hi; received {cfg.glf_bounds}"
        )
    if cfg.steps_per_epoch < 0:
        raise ValueError(
            f"--steps-per-epoch must be >= 0 (0 = one pass over the data); received {cfg.steps_per_epoch}"
        )
    if not 0 < cfg.threshold < 1:
        raise ValueError(f"--threshold must lie in (0, 1); received {cfg.threshold}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1); received {cfg.dropout}")
    if cfg.data_dir is not None and not Path(cfg.data_dir).exists():
        raise ValueError(f"--data-dir {cfg.data_dir} does not exist")


def data_config(cfg: CTConfig, *, augment: bool | None = None):
    """The :class:`data.ct.CTDataConfig` of a run."""
    from data.ct import CTDataConfig

    fields = {f.name for f in dataclasses.fields(CTDataConfig)}
    values = {
        "task": cfg.task,
        "data_dir": cfg.data_dir,
        "image_size": cfg.image_size,
        "tumour_free_ratio": cfg.tumour_free_ratio,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "seed": cfg.seed,
        "augment": cfg.augment if augment is None else augment,
    }
    return CTDataConfig(**{k: v for k, v in values.items() if k in fields})


# ------------------------------------------------------------------------ model + loss
def build_model(cfg: CTConfig):
    from architectures.munet import build_munet
    from architectures.unet import build_unet

    common = {
        "depth": cfg.depth,
        "base_filters": cfg.base_filters,
        "batch_norm": True,
        "bn_momentum": cfg.bn_momentum,
        "dropout": cfg.dropout,
        "kernel_stddev": cfg.kernel_stddev,
        "bias_value": cfg.bias_value,
    }
    shape = (cfg.image_size, cfg.image_size, 1)
    if cfg.arch == "munet":
        return build_munet(shape, **common)
    return build_unet(shape, **common)


def build_loss(cfg: CTConfig):
    import keras_losses as kl

    if cfg.loss == "dice":
        return kl.DiceLoss()
    if cfg.loss == "effectiveness":
        return kl.EffectivenessLoss(beta2=cfg.beta2)
    if cfg.loss == "tversky":
        return kl.TverskyLoss(alpha=cfg.tversky_alpha, beta=cfg.tversky_beta)
    return kl.GeneralizedLoss(alpha_p=cfg.alpha_p, alpha_n=cfg.alpha_n, beta2=cfg.beta2)


def build_metrics():
    """Pixel precision and recall at threshold 0.5 (built-in Keras metrics, so a saved model
    reloads without extra registrations); the validation Dice is derived from them."""
    import keras

    return [
        keras.metrics.Precision(thresholds=0.5, name="precision"),
        keras.metrics.Recall(thresholds=0.5, name="recall"),
    ]


def _dice_callback():
    import keras

    class DiceFromPrecisionRecall(keras.callbacks.Callback):
        """Adds ``dice`` and ``val_dice`` = 2PR / (P + R) (pixel Dice pooled over the epoch's
        slices, at threshold 0.5) to the epoch logs, before the checkpoint reads them."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            for prefix in ("", "val_"):
                p, r = logs.get(prefix + "precision"), logs.get(prefix + "recall")
                if p is not None and r is not None:
                    p, r = float(p), float(r)
                    logs[prefix + "dice"] = 2 * p * r / (p + r) if p + r > 0 else 0.0

    return DiceFromPrecisionRecall()


def tensorboard_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _epoch_scalars_callback(log_dir):
    """Epoch logs as TensorBoard scalars without the ``tensorboard`` package.

    TensorFlow 2.21 no longer installs ``tensorboard``, and Keras's TensorBoard callback needs
    it for ``tf.summary.scalar``; raw summary writes with the scalars-plugin metadata give the
    same event files (``tensorboard --logdir`` reads them once it is installed to view them).
    """
    import keras

    class EpochScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = None

        def on_epoch_end(self, epoch, logs=None):
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            )
            if self.writer is None:
                self.writer = tf.summary.create_file_writer(str(log_dir))
            with self.writer.as_default():
                for key, value in (logs or {}).items():
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        continue
                    tf.summary.write(
                        f"epoch_{key}", tf.constant(value), step=epoch + 1, metadata=metadata
                    )
            self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()

    return EpochScalars()


def compile_model(model, cfg: CTConfig, run_dir=None):
    """Compile ``model`` for ``cfg.loss``; returns ``(model, callbacks)``.

    Adaptive losses go through :func:`keras_losses.adaptive.prepare_adaptive_glf`, which
    may wrap the model (the exploratory rule works at the train-step level).
    """
    import keras

    loss = build_loss(cfg)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
    if cfg.loss in ADAPTIVE:
        from keras_losses.adaptive import prepare_adaptive_glf

        rule = ADAPTIVE[cfg.loss] if cfg.loss == "glf-det" else cfg.exp_mode
        lo, hi = cfg.glf_bounds
        if rule == "det":
            pair = [lo if lo > 0 else None, hi if math.isfinite(hi) else None]
            options = {"bounds": {name: pair for name in ("alpha_p", "alpha_n", "beta2")}}
        else:
            options = {"bounds": (max(lo, 1e-6), min(hi, 1e6))}
        model, callbacks = prepare_adaptive_glf(
            model,
            loss,
            rule,
            optimizer,
            metrics=build_metrics(),
            run_dir=run_dir,
            rule_options=options,
        )
        return model, list(callbacks)
    model.compile(optimizer=optimizer, loss=loss, metrics=build_metrics())
    return model, []


# ------------------------------------------------------------------------------ train
def train(args: argparse.Namespace) -> Path:
    """Train one model; returns the run directory."""
    from tasks.common import default_out

    cfg = resolve_config(args, args.task)
    if getattr(args, "check_data", False):
        return _check_data(cfg)
    out = Path(args.out or default_out(cfg.task, cfg.loss))
    return train_config(
        cfg, out, resume=args.resume, overwrite=args.overwrite, strategy=args.strategy
    )


def _check_data(cfg: CTConfig):
    from data.ct import check_ct_data

    problems = check_ct_data(data_config(cfg))
    if problems:
        print(f"{len(problems)} problem(s) in the {cfg.task} data:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(1)
    print(f"The {cfg.task} data at {cfg.data_dir or 'the built-in phantom'} passed every check.")
    return None


def train_config(
    cfg: CTConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto"
) -> Path:
    """Train with a resolved config into run directory ``out``; returns its path."""
    import keras

    from data.ct import prepare_ct_data
    from tasks.common import seed_everything
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import is_chief, make_strategy

    strategy_obj = make_strategy(strategy)
    run_dir = RunDir(out, resume=resume, overwrite=overwrite, chief=is_chief(strategy_obj))
    if run_dir.resuming and (run_dir / "config.json").exists():
        saved = run_dir.read_config()
        saved["epochs"] = cfg.epochs  # --resume may add epochs; everything else stays
        cfg = CTConfig(
            **{
                k: v
                for k, v in saved.items()
                if k in {f.name for f in dataclasses.fields(CTConfig)}
            }
        )
    run_dir.write_config(cfg)
    seed_everything(cfg.seed)
    # Writes split.json into the run directory (and reuses it when resuming).
    data = prepare_ct_data(data_config(cfg), run_dir=run_dir.path if run_dir.chief else None)
    train_ds = data.train(cfg.batch_size)
    if cfg.steps_per_epoch:
        train_ds = train_ds.repeat()  # fixed steps per epoch over a reshuffled, endless stream

    with strategy_obj.scope():
        model = build_model(cfg)
        model, callbacks = compile_model(model, cfg, run_dir=run_dir)
    print(
        f"{cfg.arch} with {model.count_params():,} parameters; loss {cfg.loss}; "
        f"{cfg.epochs} epochs of {cfg.steps_per_epoch or 'all'} steps, batch {cfg.batch_size}, "
        f"{cfg.image_size}x{cfg.image_size}",
        flush=True,
    )
    extra = [_dice_callback()]
    if not tensorboard_installed() and run_dir.chief:
        extra.append(_epoch_scalars_callback(run_dir / "tensorboard" / "epochs"))
    start = time.perf_counter()
    fit_model(
        model,
        train_ds,
        data.val(cfg.batch_size),
        run_dir=run_dir,
        epochs=cfg.epochs,
        monitor="val_dice",
        mode="max",
        callbacks=[*callbacks, *extra],
        steps_per_epoch=cfg.steps_per_epoch or None,
        tensorboard=tensorboard_installed(),
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    if not run_dir.chief:
        return run_dir.path
    trajectory = run_dir / "glf_trajectory.csv"
    if trajectory.exists():
        plot_trajectory_figures({cfg.loss: trajectory}, run_dir.path)
    best = (
        keras.saving.load_model(run_dir / "best.keras")
        if (run_dir / "best.keras").exists()
        else model
    )
    result = evaluate_models({cfg.loss: best}, cfg, run_dir.path / "eval", data=data)
    summary = result["models"][cfg.loss]
    run_dir.mark_complete(train_seconds=round(seconds, 1), test=summary)
    ts, tf = summary["tumour_slices"], summary["tumour_free_slices"]
    print(
        f"Run {run_dir.path} complete in {seconds:.0f} s. Test: tumour slices (n={ts['n']}) "
        f"precision {_fmt(ts['precision'])}, recall {_fmt(ts['recall'])}, Dice {_fmt(ts['dice'])}; "
        f"tumour-free Dice (n={tf['n']}) {_fmt(tf['dice'])}. Figures in {run_dir.path / 'eval'}",
        flush=True,
    )
    return run_dir.path


def _fmt(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def plot_trajectory_figures(csvs: dict, out_dir) -> list[Path]:
    """Paper Fig. 6 and 7 from adaptive runs' trajectory CSVs."""
    from keras_losses.adaptive import plot_coefficients, plot_tversky_trajectory

    out_dir = Path(out_dir)
    if not csvs:
        return []
    paths = [out_dir / "glf_coefficients.png", out_dir / "glf_tversky_trajectory.png"]
    plot_coefficients({k: str(v) for k, v in csvs.items()}, paths[0])
    plot_tversky_trajectory({k: str(v) for k, v in csvs.items()}, paths[1])
    return paths


# --------------------------------------------------------------------------- evaluate
def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH",
        help="a run directory or a .keras file; repeat to compare models (overlays need several)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        help="name of each --model in the figures (default: the run directory's loss or the file name)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data source (default: the first run's; a bare .keras file without a run directory needs it or uses the phantom)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="slice size (default: the first run's, else the model's input size)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="slices per prediction batch (default: 8)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="threshold on the output (paper: 0.5) (default: 0.5)",
    )
    parser.add_argument(
        "--pixel-mm",
        type=float,
        default=None,
        help="in-plane spacing of the network input in mm, to place the '< 100 px at 512' range (default: from the image size)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: <first run>/eval, or eval/ beside a .keras file)",
    )


def _run_of(path: Path):
    """(run directory or None when no config.json lies beside the model, model file)."""
    run, model = model_of_run(path)
    return (run if (run / "config.json").exists() else None), model


def evaluate(args: argparse.Namespace) -> dict:
    """Evaluate one or more saved models on the test split; writes metrics.json and PNGs."""
    import keras

    import keras_losses  # noqa: F401  (registers the losses for load_model)

    paths = [Path(p) for p in args.model]
    runs = [_run_of(p) for p in paths]
    labels = args.label or []
    if labels and len(labels) != len(paths):
        raise ValueError(
            f"give one --label per --model; received {len(labels)} labels for {len(paths)} models"
        )
    run_cfg = {}
    first_run = next((r for r, _ in runs if r is not None), None)
    if first_run is not None:
        run_cfg = json.loads((first_run / "config.json").read_text(encoding="utf-8"))
    models = {}
    for i, (run, file) in enumerate(runs):
        label = labels[i] if labels else _default_label(run, file, models)
        models[label] = keras.saving.load_model(file)
    first_model = next(iter(models.values()))
    values = {
        k: v for k, v in run_cfg.items() if k in {f.name for f in dataclasses.fields(CTConfig)}
    }
    values["task"] = args.task
    if args.data_dir is not None:
        values["data_dir"] = args.data_dir
    values["image_size"] = (
        args.image_size or values.get("image_size") or int(first_model.input_shape[1])
    )
    values["threshold"] = args.threshold
    if args.pixel_mm is not None:
        values["pixel_mm"] = args.pixel_mm
    cfg = CTConfig(**values)
    out = Path(args.out) if args.out else ((first_run or paths[0].parent) / "eval")
    result = evaluate_models(models, cfg, out, split_from=first_run)
    print(
        json.dumps(
            {
                k: v["tumour_slices"] | {"tumour_free_dice": v["tumour_free_slices"]["dice"]}
                for k, v in result["models"].items()
            },
            indent=1,
        )
    )
    print(f"Metrics and figures written to {out}")
    return result


def _default_label(run, file: Path, taken) -> str:
    label = file.stem
    if run is not None and (run / "config.json").exists():
        label = json.loads((run / "config.json").read_text(encoding="utf-8")).get("loss", run.name)
    base, n = label, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    return label


def _test_data(cfg: CTConfig, split_from=None):
    """The data of ``cfg`` with the split of run directory ``split_from`` (if it has one)."""
    from data.ct import prepare_ct_data

    split = Path(split_from) / "split.json" if split_from is not None else None
    if split is not None and not split.exists():
        split = None
    return prepare_ct_data(data_config(cfg, augment=False), split=split)


def predict_counts(models: dict, data, cfg: CTConfig, batch_size: int = 8):
    """Per-slice counts of every model over the test split, and the label's tumour sizes."""
    import numpy as np

    from evaluation.segmentation import concat_counts, slice_counts

    parts = {label: [] for label in models}
    for images, masks in data.test(batch_size, all_slices=True):
        images, masks = np.asarray(images), np.asarray(masks)
        for label, model in models.items():
            probs = np.asarray(model.predict_on_batch(images))
            parts[label].append(slice_counts(masks, probs, cfg.threshold))
    return {label: concat_counts(p) for label, p in parts.items()}


def collect_slices(data, indices, batch_size: int = 8):
    """The images and masks of the test slices at ``indices`` (a second, prediction-free pass)."""
    import numpy as np

    wanted, found, offset = set(indices), {}, 0
    for images, masks in data.test(batch_size, all_slices=True):
        images, masks = np.asarray(images), np.asarray(masks)
        for i in range(len(images)):
            if offset + i in wanted:
                found[offset + i] = (images[i, ..., 0], masks[i, ..., 0])
        offset += len(images)
        if len(found) == len(wanted):
            break
    return found


def small_px(cfg: CTConfig) -> float:
    from evaluation.segmentation import small_tumour_threshold

    return small_tumour_threshold(image_size=cfg.image_size, pixel_mm=cfg.pixel_mm)


def evaluate_models(
    models: dict, cfg: CTConfig, out_dir, *, data=None, split_from=None, batch_size: int = 8
) -> dict:
    """Test metrics (paper Figs. 3, 5), Dice vs size (Fig. 4a/c) and overlays (Fig. 4b/d).

    Writes ``metrics.json``, ``tumour_slices.png``, ``tumour_free_dice.png``,
    ``dice_vs_size.png`` and ``overlays.png`` into ``out_dir``; returns the metrics dict.
    """
    import numpy as np

    from evaluation import segmentation as seg
    from training import io

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else _test_data(cfg, split_from)
    counts = predict_counts(models, data, cfg, batch_size)
    limit = small_px(cfg)
    summaries = {label: seg.summarize(c) for label, c in counts.items()}
    sizes = next(iter(counts.values()))["tumour_px"]
    edges = seg.size_edges(sizes, limit)
    for label, c in counts.items():
        summaries[label]["dice_by_size"] = seg.dice_by_size(c, edges)
        small = (c["tumour_px"] > 0) & (c["tumour_px"] < limit)
        summaries[label]["small_tumour_slices"] = {
            "n": int(small.sum()),
            "dice": seg._mean(seg.slice_dice(c)[small]),
        }
    result = {
        "task": cfg.task,
        "data": cfg.data_dir or "built-in synthetic phantom",
        "image_size": cfg.image_size,
        "threshold": cfg.threshold,
        "small_tumour_px": limit,
        "conventions": {
            "precision": "mean over tumour slices with a non-empty prediction (0/0 slices counted in precision_undefined_slices)",
            "tumour_free_dice": "empty prediction on an empty slice = Dice 1; any false positive = Dice 0",
            "small_tumour_px": "the paper's < 100 px at 512x512, converted to this resolution",
        },
        "models": summaries,
    }
    io.write_json(out_dir / "metrics.json", result)
    seg.plot_tumour_slice_metrics(summaries, out_dir / "tumour_slices.png")
    seg.plot_tumour_free_dice(summaries, out_dir / "tumour_free_dice.png")
    seg.plot_dice_vs_size(counts, limit, out_dir / "dice_vs_size.png")
    chosen = seg.choose_overlay_slices(sizes, limit)
    if chosen:
        slices = collect_slices(data, list(chosen.values()), batch_size)
        panels = {}
        for kind, index in chosen.items():
            image, mask = slices[index]
            preds = {
                label: np.asarray(m.predict_on_batch(image[None, ..., None]))[0, ..., 0]
                for label, m in models.items()
            }
            panels[f"{kind} tumour"] = {"image": image, "truth": mask, "preds": preds}
        seg.plot_overlays(panels, out_dir / "overlays.png", threshold=cfg.threshold)
    return result


# -------------------------------------------------------------------------- reproduce
# Baseline grids (the paper compares against the best-tuned baselines but does not print its
# grids): Tversky alpha (weight of FP) with beta = 1 - alpha, Effectiveness beta^2 > 1.
TVERSKY_GRID = (0.1, 0.2, 0.3, 0.4)
BETA2_GRID = (2.0, 4.0, 8.0)
QUICK_TVERSKY_GRID = (0.2, 0.3)
QUICK_BETA2_GRID = (2.0, 4.0)


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MSD Task06 / LiTS folder or HDF5 patches (default: the built-in phantom)",
    )
    parser.add_argument(
        "--rule",
        default="det",
        choices=("det", "exp"),
        help="adaptive rule of G(D) and G(E): det (glf-det) or exp (glf-exp) (default: det)",
    )
    parser.add_argument(
        "--tversky-grid",
        default=None,
        help=f"Tversky alpha values to sweep, beta = 1 - alpha (default: {','.join(map(str, TVERSKY_GRID))}; --quick: {','.join(map(str, QUICK_TVERSKY_GRID))})",
    )
    parser.add_argument(
        "--beta2-grid",
        default=None,
        help=f"Effectiveness beta^2 values to sweep (default: {','.join(map(str, BETA2_GRID))}; --quick: {','.join(map(str, QUICK_BETA2_GRID))})",
    )
    for flag, kind, text in (
        ("--image-size", int, "slice size"),
        ("--epochs", int, "epochs per run"),
        ("--steps-per-epoch", int, "steps per epoch (0 = one pass)"),
        ("--batch-size", int, "batch size"),
        ("--base-filters", int, "filters of the first level"),
        ("--depth", int, "down-sampling steps"),
        ("--seed", int, "seed"),
        ("--lr", float, "Adam learning rate (paper: 1e-4)"),
        ("--pixel-mm", float, "in-plane spacing of the network input (mm)"),
        ("--tumour-free-ratio", float, "tumour-free training slices per tumour slice"),
        ("--val-fraction", float, "fraction of cases for validation"),
        ("--test-fraction", float, "fraction of cases for testing"),
    ):
        parser.add_argument(
            flag,
            type=kind,
            default=argparse.SUPPRESS,
            help=f"{text} for every run (default: the train.py default, or its --quick preset)",
        )
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default=argparse.SUPPRESS,
        help="network for every run (default: munet)",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=argparse.SUPPRESS,
        help="no augmentation",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished runs in --out and continue unfinished ones",
    )


def _grid(text, default):
    if text is None:
        return tuple(default)
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected a comma-separated list of numbers; received {text!r}") from None
    if not values:
        raise ValueError(f"the grid {text!r} is empty")
    return values


def _best_val_dice(run_dir: Path) -> float:
    import csv

    with open(run_dir / "history.csv", newline="", encoding="utf-8") as f:
        values = [
            float(r["val_dice"]) for r in csv.DictReader(f) if r.get("val_dice") not in (None, "")
        ]
    return max(values) if values else float("nan")


def reproduce(args: argparse.Namespace) -> Path:
    """Seo et al. 2021 on one task: D, E, T, G(D), G(E), the baseline sweep, report.md."""
    import keras

    import keras_losses  # noqa: F401
    from training import io

    task = "lung" if args.experiment == "glf-lung" else "liver"
    out = Path(args.out or f"reports/{args.experiment}")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise ValueError(
            f"{out} already exists; pass --resume to reuse its finished runs, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in dataclasses.fields(CTConfig)}
    base = {k: v for k, v in vars(args).items() if k in names and k not in ("loss",)}
    base["quick"] = bool(args.quick)
    base_ns = argparse.Namespace(**base)
    tversky_grid = _grid(args.tversky_grid, QUICK_TVERSKY_GRID if args.quick else TVERSKY_GRID)
    beta2_grid = _grid(args.beta2_grid, QUICK_BETA2_GRID if args.quick else BETA2_GRID)
    adaptive = "glf-det" if args.rule == "det" else "glf-exp"
    started = time.perf_counter()

    def run(name, **overrides) -> tuple[Path, CTConfig]:
        ns = argparse.Namespace(**vars(base_ns), **overrides)
        cfg = resolve_config(ns, task)
        path = out / "runs" / name
        if (path / "COMPLETED").exists():
            print(f"[reproduce] {name}: finished run found, reused", flush=True)
            return path, cfg
        print(f"\n[reproduce] training {name} ({cfg.loss}) ...", flush=True)
        train_config(cfg, path, resume=path.exists(), verbose=2)
        return path, cfg

    runs, sweep = {}, {"tversky": [], "effectiveness": []}
    runs["D"] = run("dice", loss="dice")
    for a in tversky_grid:
        path, _ = run(
            f"tversky-a{a:g}", loss="tversky", tversky_alpha=a, tversky_beta=round(1 - a, 6)
        )
        sweep["tversky"].append(
            {
                "alpha": a,
                "beta": round(1 - a, 6),
                "val_dice": _best_val_dice(path),
                "run": str(path),
            }
        )
    for b2 in beta2_grid:
        path, _ = run(f"effectiveness-b{b2:g}", loss="effectiveness", beta2=b2)
        sweep["effectiveness"].append(
            {"beta2": b2, "val_dice": _best_val_dice(path), "run": str(path)}
        )
    best_t = max(
        sweep["tversky"], key=lambda r: -math.inf if math.isnan(r["val_dice"]) else r["val_dice"]
    )
    best_e = max(
        sweep["effectiveness"],
        key=lambda r: -math.inf if math.isnan(r["val_dice"]) else r["val_dice"],
    )
    runs["T"] = (Path(best_t["run"]), None)
    runs["E"] = (Path(best_e["run"]), None)
    runs["G(D)"] = run(f"{adaptive}-from-dice", loss=adaptive)
    runs["G(E)"] = run(
        f"{adaptive}-from-b{best_e['beta2']:g}", loss=adaptive, beta2=best_e["beta2"]
    )

    order = ("D", "E", "T", "G(D)", "G(E)")
    models = {k: keras.saving.load_model(runs[k][0] / "best.keras") for k in order}
    cfg_d = runs["D"][1]
    result = evaluate_models(models, cfg_d, out, split_from=runs["D"][0])
    plot_trajectory_figures(
        {
            k: runs[k][0] / "glf_trajectory.csv"
            for k in ("G(D)", "G(E)")
            if (runs[k][0] / "glf_trajectory.csv").exists()
        },
        out,
    )
    results = {
        "experiment": args.experiment,
        "paper": "Seo, Bassenne, Xing, IEEE TMI 40(2) 2021, Figs. 3 and 5",
        "settings": {
            **dataclasses.asdict(cfg_d),
            "loss": None,
            "adaptive_rule": args.rule,
            "tversky_grid": tversky_grid,
            "beta2_grid": beta2_grid,
        },
        "selected": {
            "T": {"alpha": best_t["alpha"], "beta": best_t["beta"]},
            "E": {"beta2": best_e["beta2"]},
            "G(E)": f"adaptive GLF starting from alpha_p = alpha_n = 1, beta2 = {best_e['beta2']:g} (the best Effectiveness beta^2)",
        },
        "sweep": sweep,
        "ours": result["models"],
        "paper_results": PAPER_RESULTS[task],
        "runs": {k: str(v[0]) for k, v in runs.items()},
        "small_tumour_px": result["small_tumour_px"],
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", report_markdown(results, task))
    print((out / "report.md").read_text(encoding="utf-8"))
    return out


def _pct(value) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}"
    )


def report_markdown(results: dict, task: str) -> str:
    """The report's table: ours beside the paper's numbers (in %)."""
    paper = results["paper_results"]
    ours = results["ours"]
    sel = results["selected"]
    s = results["settings"]
    lines = [
        f"# {results['experiment']}: adaptive GLF vs tuned baselines (Seo et al. 2021)",
        "",
        f"Data: {s['data_dir'] or 'built-in synthetic phantom'}; {s['arch']} depth {s['depth']}, "
        f"{s['base_filters']} base filters, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs "
        f"of {s['steps_per_epoch'] or 'all'} steps, batch {s['batch_size']}, seed {s['seed']}; "
        f"adaptive rule: {s['adaptive_rule']}. Took {results['minutes']} min.",
        "",
        f"T = Tversky alpha {sel['T']['alpha']:g}, beta {sel['T']['beta']:g}; E = Effectiveness "
        f"beta^2 {sel['E']['beta2']:g} (best validation Dice of the sweep); G(D) = adaptive GLF from "
        f"the Dice values (1, 1, 1); G(E) = adaptive GLF from (1, 1, {sel['E']['beta2']:g}).",
        "",
        "Test set, in %. Precision/recall/Dice: mean over tumour slices (paper Fig. 3); "
        "tumour-free Dice: empty prediction on an empty slice = 1 (Fig. 5). Paper values in brackets.",
        "",
        "| model | precision | recall | Dice | tumour-free Dice | Dice, small tumours |",
        "|---|---|---|---|---|---|",
    ]
    for k, summary in ours.items():
        ts, tf, small = (
            summary["tumour_slices"],
            summary["tumour_free_slices"],
            summary["small_tumour_slices"],
        )
        rec = paper["recall"].get(k)
        tfd = paper["tumour_free_dice"].get(k)
        lines.append(
            f"| {k} | {_pct(ts['precision'])} | {_pct(ts['recall'])}{f' [{rec}]' if rec else ''} | {_pct(ts['dice'])} | "
            f"{_pct(tf['dice'])}{f' [{tfd}]' if tfd else ''} | {_pct(small['dice'])} (n={small['n']}) |"
        )
    conventional = [
        ours[k]["tumour_slices"]["recall"]
        for k in ("D", "E", "T")
        if ours[k]["tumour_slices"]["recall"] is not None
    ]
    best_conv = max(conventional) if conventional else None
    precisions = [
        v["tumour_slices"]["precision"]
        for v in ours.values()
        if v["tumour_slices"]["precision"] is not None
    ]
    n_ts = next(iter(ours.values()))["tumour_slices"]["n"]
    n_tf = next(iter(ours.values()))["tumour_free_slices"]["n"]
    lines += [
        "",
        f"Slices: {n_ts} with tumour, {n_tf} tumour-free; small tumours: < {results['small_tumour_px']:.0f} px "
        "here (the paper's < 100 px at 512x512).",
        "",
        "| claim | paper | ours |",
        "|---|---|---|",
        f"| recall, best conventional (D/E/T) | {paper['recall']['best conventional']} | {_pct(best_conv)} |",
        f"| recall, G(D) | {paper['recall']['G(D)']} | {_pct(ours['G(D)']['tumour_slices']['recall'])} |",
        f"| recall, G(E) | {paper['recall']['G(E)']} | {_pct(ours['G(E)']['tumour_slices']['recall'])} |",
        f"| tumour-free Dice, T | {paper['tumour_free_dice']['T']} | {_pct(ours['T']['tumour_free_slices']['dice'])} |",
        f"| tumour-free Dice, G(D) | {paper['tumour_free_dice']['G(D)']} | {_pct(ours['G(D)']['tumour_free_slices']['dice'])} |",
        f"| tumour-free Dice, G(E) | {paper['tumour_free_dice']['G(E)']} | {_pct(ours['G(E)']['tumour_free_slices']['dice'])} |",
        f"| highest precision | {paper['precision_max']} | {_pct(max(precisions) if precisions else None)} |",
        "",
        "Sweep (best validation Dice, pixel Dice pooled over the validation slices):",
        "",
    ]
    for r in results["sweep"]["tversky"]:
        lines.append(f"- Tversky alpha {r['alpha']:g}, beta {r['beta']:g}: {_pct(r['val_dice'])}")
    for r in results["sweep"]["effectiveness"]:
        lines.append(f"- Effectiveness beta^2 {r['beta2']:g}: {_pct(r['val_dice'])}")
    lines += [
        "",
        "Figures: `tumour_slices.png` (Fig. 3), `dice_vs_size.png` (Fig. 4a/c), `overlays.png` (Fig. 4b/d), "
        "`tumour_free_dice.png` (Fig. 5), `glf_coefficients.png` (Fig. 6), `glf_tversky_trajectory.png` (Fig. 7).",
        "",
    ]
    return "\n".join(lines)

"""Configuration of a lung/liver run: CTConfig, presets, flags -> config."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Optional

from core.options import option
from tasks.ct import paper
from training.config import add_arguments, mark_given

LOSSES = ("dice", "effectiveness", "tversky", "glf", "glf-det", "glf-exp")
ADAPTIVE = {"glf-det": "det", "glf-exp": "exp"}
ARCHS = ("munet", "unet")
OUTPUT_LAYERS = ("sigmoid", "softmax2")  # architectures.munet.OUTPUT_LAYERS (a test checks)
EXP_MODES = ("exp", "exp-hybrid", "exp-first-order", "exp-naive")
# The DeterministicGLFCallback options (keras_losses.adaptive.deterministic; repeated here so
# that --help does not import Keras; a test checks they agree).
GUARD_MODES = ("literal", "reversed", "off")
STATISTIC_FORMS = ("per-image", "pooled")
COUNT_KINDS = ("soft", "hard")
BETA2_STATISTICS = ("p_r", "beta2_p_r")
GUARD_SCALES = ("none", "area")


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
        [0.0, math.inf],
        "lo,hi clip of the adaptive coefficients (ours, not the paper's, which has none; default 0,inf: no clip, only the library's numeric floor/ceiling 1e-6, 1e6; every step at either is logged in glf_trajectory.csv)",
    )
    glf_guard: str = option(
        "literal",
        "glf-det divergence guard: literal (the paper, Fig. 2 caption: alpha_P, alpha_N 'are not updated when <FP> > 5 and <FN> > 1, respectively'), reversed (freeze while <FP> < 5 / <FN> < 1; not the paper's), off (not the paper's)",
        choices=GUARD_MODES,
    )
    glf_statistic: str = option(
        "per-image",
        "glf-det statistics: per-image (batch mean of per-image ratios; the caption's '<.> denote batch-averaged values') or pooled (ratio of batch sums; ours)",
        choices=STATISTIC_FORMS,
    )
    glf_counts: str = option(
        "soft",
        "glf-det statistics from soft counts (probabilities) or hard counts (output > 0.5); the paper does not say; soft chosen by the ablation in docs/lung.md",
        choices=COUNT_KINDS,
    )
    glf_beta2_statistic: str = option(
        "beta2_p_r",
        "glf-det beta^2 statistic: beta2_p_r (beta^2 P_ap/R_an, Sec. II-B: 'The relative weight (beta^2 P_ap/R_an) therefore justifies increasing beta^2 when P_ap << R_an'; chosen by the ablation in docs/lung.md) or p_r (P_ap/R_an alone)",
        choices=BETA2_STATISTICS,
    )
    glf_guard_scale: str = option(
        "none",
        "glf-det guard thresholds 5 and 1 px as given (none; set for 512x512) or scaled by image area / 512^2 (area; ours)",
        choices=GUARD_SCALES,
    )
    exp_mode: str = option(
        "exp",
        "glf-exp scoring: exp (exact, 27 scored candidates; the paper's search), exp-hybrid (ours: 27 ranked by a first-order score, the best 3 scored exactly), exp-first-order, exp-naive (27 real steps)",
        choices=EXP_MODES,
    )
    exp_top_k: int = option(
        3,
        "glf-exp with --exp-mode exp-hybrid: candidates scored exactly after the first-order ranking (1-27)",
    )
    arch: str = option(
        "munet", "network: munet (the paper's, Seo et al. TMI 2020) or unet", choices=ARCHS
    )
    output_layer: str = option(
        "sigmoid",
        "mU-Net output layer (the paper does not state it): sigmoid (1 channel) or softmax2 (2-channel pixel-wise softmax as in the original U-Net, returning the tumour channel)",
        choices=OUTPUT_LAYERS,
    )
    depth: int = option(4, "down-sampling steps of the network (U-Net/mU-Net: 4)")
    base_filters: int = option(
        16,
        "filters of the first level (CPU default 16; --paper: 64 as in U-Net, the paper does not state it)",
    )
    kernel_stddev: float = option(
        paper.KERNEL_STDDEV, "sd of the truncated-normal weight initializer (paper Sec. II-C: 0.05)"
    )
    bias_value: float = option(paper.BIAS_VALUE, "initial bias (paper Sec. II-C: 0.1)")
    bn_momentum: float = option(paper.BN_MOMENTUM, "batch-norm moving-average decay (paper Sec. II-C: 0.9)")
    dropout: float = option(
        paper.DROPOUT,
        "drop rate of the dropout after the bottleneck (paper Sec. II-C: 'the dropout probability was 0.6', read as the drop rate; TF1's keep_prob reading would be 0.4, docs/lung.md ledger)",
    )
    lr: float = option(
        1e-3,
        "Adam learning rate (paper Sec. II-C: 1e-4, which --paper uses; CPU default 1e-3: in the 240 "
        "steps of the default run, 1e-4 left the network marking every pixel as tumour)",
    )
    threshold: float = option(paper.THRESHOLD, "threshold on the sigmoid output (paper Sec. II-C: 0.5)")
    image_size: int = option(128, "slice size fed to the network (CPU default 128; paper: 512)")
    epochs: int = option(
        8, "training epochs (CPU default 8; --paper: 100, our choice, the paper does not state it)"
    )
    steps_per_epoch: int = option(
        30,
        "optimizer steps per epoch; 0 = one pass over the training slices (CPU default 30; --paper: 0)",
    )
    patience: int = option(
        0,
        "early stopping (ours; the paper does not say how long it trains): stop once the best validation Dice is PATIENCE validations (epochs) and --patience-steps steps old; 0: off, train every epoch (tasks/ct/plateau.py)",
    )
    patience_steps: int = option(
        500, "early stopping: also at least this many optimizer steps without improvement (with --patience)"
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
        "paper-sized run: the paper's 512x512 slices and Adam 1e-4, with 64 base filters and 100 epochs of full passes over the data (ours: the paper states neither)",
    )
    quick: bool = option(
        False, "smaller CPU run: 64x64, 8 base filters, depth 3, 3 epochs of 15 steps"
    )
    task: str = "lung"  # set from --task, not a flag


# Presets applied to the fields the user did not give explicitly.
PAPER_PRESET = {
    "image_size": paper.IMAGE_SIZE,
    "base_filters": 64,
    "epochs": 100,
    "steps_per_epoch": 0,
    "lr": paper.LEARNING_RATE,
}
QUICK_PRESET = {"image_size": 64, "base_filters": 8, "depth": 3, "epochs": 3, "steps_per_epoch": 15}


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
    return mark_given(cfg, given)


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
    if cfg.output_layer != "sigmoid" and cfg.arch != "munet":
        raise ValueError(
            f"--output-layer {cfg.output_layer} is an option of --arch munet; received --arch {cfg.arch}"
        )
    if cfg.patience < 0 or cfg.patience_steps < 0:
        raise ValueError(
            f"--patience and --patience-steps must be >= 0; received {cfg.patience} and {cfg.patience_steps}"
        )
    if cfg.patience and not cfg.steps_per_epoch:
        raise ValueError(
            "--patience needs a fixed --steps-per-epoch (the steps between two validations); received --steps-per-epoch 0"
        )
    if not 1 <= cfg.exp_top_k <= 27:
        raise ValueError(f"--exp-top-k must be in 1..27; received {cfg.exp_top_k}")
    if cfg.steps_per_epoch < 0:
        raise ValueError(
            f"--steps-per-epoch must be >= 0 (0 = one pass over the data); received {cfg.steps_per_epoch}"
        )
    if not 0 < cfg.threshold < 1:
        raise ValueError(f"--threshold must lie in (0, 1); received {cfg.threshold}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1); received {cfg.dropout}")
    if cfg.data_dir is not None and not Path(cfg.data_dir).exists():
        raise ValueError(
            f"--data-dir {cfg.data_dir} does not exist; give the folder that holds the data "
            "(README, Where real data goes) or leave --data-dir out for the built-in phantom"
        )


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

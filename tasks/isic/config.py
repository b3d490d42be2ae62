"""Configuration of an isic run and of its evaluation, flags -> config."""

from __future__ import annotations

import dataclasses

# Optional[X], not X | None: training.config parses typing.Optional but not the X | None form
from typing import Optional

from core.options import option
from tasks.isic import paper
from tasks.isic.paper import IN_CLASSES

LOSSES = ("ce", "ce+loss-estimator")
# ODIN's grid, Liang et al. 2018, Sec. 4 ("Choosing parameters"), the grid the paper's ODIN comes
# from: T in {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}, 21 evenly spaced eps in [0, 0.004]
# (evaluation.odin's defaults are the same grid)
ODIN_TEMPERATURES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
ODIN_EPSILONS = tuple(round(0.004 * i / 20, 6) for i in range(21))
OOD_SETS = [
    "b-box",
    "b-box-70",
    "b-box-70-image",
    "derm-skin",
    "natural",
    "histology",
    "new-class",
]


@dataclasses.dataclass
class IsicConfig:
    loss: str = option(
        "ce+loss-estimator",
        "ce: vanilla VGG-16; ce+loss-estimator: joint L_CE + lambda L_rank (paper Sec. 3)",
        choices=LOSSES,
    )
    data_dir: Optional[str] = option(  # noqa: UP045
        None,
        "ISIC 2019 or HAM10000 folder (CSV + images/ [+ masks/]); none: the built-in synthetic set",
    )
    layout: str = option(
        "auto",
        "CSV layout: auto, isic (ISIC_2019_Training_GroundTruth.csv) or ham (HAM10000_metadata.csv)",
        choices=("auto", "isic", "ham"),
    )
    classes: list[str] = option(
        list(IN_CLASSES),
        "in-distribution classes; the others are held out as new classes (paper Sec. 4: MEL,NV,BCC,AK,DF)",
    )
    image_size: int = option(
        paper.IMAGE_SIZE, "input side in pixels (paper: 224; e.g. 64 on a CPU)"
    )
    crop_fraction: float = option(
        paper.CROP_FRACTION, "centre crop, fraction of the width (paper: 0.85)"
    )
    crop_shape: str = option(
        "width",
        "width: crop the width to --crop-fraction and keep the height (the paper's words, 'center "
        "cropped to 0.85 times its original width'); square: the centre square of side "
        "min(fraction x width, height)",
        choices=("width", "square"),
    )
    sog_power: float = option(
        6.0,
        "Shades-of-Gray Minkowski norm p; 0 disables (the paper names the method, not p; 6 after "
        "Barata et al. 2015)",
    )
    max_per_class: Optional[int] = option(  # noqa: UP045
        None, "use at most this many images per class (seeded); none: all (paper: all)"
    )
    val_fraction: float = option(
        paper.VAL_FRACTION,
        "validation fraction (model selection, ODIN tuning and threshold), stratified and grouped "
        "by lesion_id (paper: 90/10 train/validation)",
    )
    test_fraction: float = option(
        0.2,
        "held-out test fraction, stratified and grouped by lesion_id; every reported number is "
        "measured on it (paper: none, it reports on its validation split)",
    )
    seed: int = option(0, "seed of the split, sampling, augmentation and initialization")
    weights: str = option(
        "imagenet",
        "VGG-16 initialization: imagenet (if cached in ~/.keras/models, else random), none, or a .h5 path (paper: ImageNet)",
    )
    width: float = option(
        1.0,
        "filter multiplier of VGG-16 (1 = keras.applications.VGG16; <1 a narrower copy for CPUs)",
    )
    head: str = option(
        "fc",
        "classifier head: fc = VGG-16's two 4096 x width-unit layers (paper: VGG-16); gap = global "
        "average pooling (lighter)",
        choices=("fc", "gap"),
    )
    init: str = option(
        "glorot",
        "random initialization when no weights are loaded: glorot = keras.applications.VGG16's "
        "(paper: ImageNet weights, so not stated); he = He-normal kernels and inputs divided by the "
        "ImageNet sd (trains from scratch; the --quick preset)",
        choices=("glorot", "he"),
    )
    batch_norm: bool = option(
        False,
        "VGG-16-BN: batch normalization after each of the 13 convolutions (paper: VGG-16 with "
        "ImageNet weights, no BN; from scratch BN trains faster; the --quick preset)",
    )
    dropout: float = option(paper.DROPOUT, "dropout in the classifier head (paper: 0.4)")
    lr: float = option(paper.LEARNING_RATE, "Adam learning rate (paper: 1e-4)")
    lr_halve_every: int = option(
        paper.LR_HALVE_EVERY, "halve the learning rate every this many epochs (paper: 10)"
    )
    weight_decay: float = option(paper.WEIGHT_DECAY, "weight decay (paper: 5e-4)")
    weight_decay_mode: str = option(
        "l2",
        "l2: PyTorch-Adam style, an L2 term wd/2 ||w||^2 whose gradient wd*w is added before Adam's scaling (the paper's "
        "PyTorch code); decoupled: keras AdamW (decay scaled by the learning rate)",
        choices=("l2", "decoupled"),
    )
    batch_size: int = option(paper.BATCH_SIZE, "batch size (paper: 64)")
    epochs: int = option(paper.EPOCHS, "epochs (paper: 50)")
    steps_per_epoch: Optional[int] = option(  # noqa: UP045
        None, "batches per epoch; none: training images / batch size"
    )
    lambda_rank: float = option(paper.LAMBDA_RANK, "weight of the ranking loss (paper: 0.5)")
    margin: float = option(
        1.0,
        "margin of the ranking loss (the paper gives none; 1 as in Yoo and Kweon 2019, whose "
        "loss it uses)",
    )
    rank_target: str = option(
        "ce",
        "what the loss estimator ranks: ce = the unweighted per-sample CE (paper Sec. 3: l = L_pri = "
        "L_CE); weighted-ce = the class-weighted CE that is trained",
        choices=("ce", "weighted-ce"),
    )
    pair_reduction: str = option(
        "mean",
        "ranking loss over the ordered pairs of a batch: mean, or sum (eq. (1) writes a sum over "
        "unstated pairs; lambda then acts n(n-1) times larger)",
        choices=("mean", "sum"),
    )
    balanced_sampling: bool = option(
        True, "class-weighted random sampling: every class equally likely per draw (paper: on)"
    )
    class_weighted_ce: bool = option(
        True, "class-weighted cross-entropy, w_c = N / (C n_c) (paper: on)"
    )
    augment: bool = option(True, "in-graph flips, rotation, translation, colour jitter (paper: on)")
    rotation_deg: float = option(180.0, "maximum rotation in degrees for augmentation")
    translation: float = option(0.1, "maximum translation, fraction of the side, for augmentation")
    synthetic_per_class: int = option(
        40, "images per class of the built-in synthetic set (no --data-dir)"
    )


@dataclasses.dataclass
class EvalConfig:
    data_dir: Optional[str] = option(None, "data folder (default: the run's)")  # noqa: UP045
    ood_sets: list[str] = option(list(OOD_SETS), f"OOD sets to build: {', '.join(OOD_SETS)}")
    ood_folder: Optional[str] = option(  # noqa: UP045
        None, "a folder of your own OOD images, evaluated as set 'folder'"
    )
    odin_tune_set: str = option(
        "histology",
        "the one OOD set ODIN's T and eps are tuned on (against the validation images), then "
        "applied unchanged to the others; its own row is marked as not held out (paper Sec. 4.2: "
        "tuned on NCT, whose stand-in here is histology)",
    )
    temperatures: list[float] = option(
        list(ODIN_TEMPERATURES),
        "ODIN temperature grid (Liang et al. 2018, Sec. 4: 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)",
    )
    epsilons: list[float] = option(
        list(ODIN_EPSILONS),
        "ODIN perturbation grid, in [0, 1] intensity units (Liang et al. 2018, Sec. 4: 21 evenly "
        "spaced values in [0, 0.004])",
    )
    odin_tune_images: Optional[int] = option(  # noqa: UP045
        None,
        "search the ODIN grid on at most this many images of the tuning set and of the validation "
        "split each (seeded); none: all",
    )
    max_ood: int = option(
        1350,
        "at most this many images per OOD set (the paper's sets: 1,350-3,000; NCT: 1,350)",
    )
    eval_batch_size: int = option(64, "batch size of evaluation")


def log(message: str) -> None:
    print(f"[isic] {message}", flush=True)

"""Configuration of a hippocampus run and of its attacks, flags -> config."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from core.options import option
from keras_losses.squared_dice import DEFAULT_SMOOTH
from tasks.hippocampus import paper
from tasks.hippocampus.paper import PAPER

LOSSES = ("bce", "dice", "bce+dice", "bce+dice+focal")
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
        paper.MAX_INTENSITY,
        f"intensities scaled per volume to [0, max_intensity] ({PAPER}, Sec. 3: 0.2)",
    )
    scaling: str = option(
        "max",
        f"intensity scaling per volume: 'max' maps the maximum to max_intensity ({PAPER}, Sec. 3: "
        "'maximum pixel value=0.2'); 'percentile' maps --clip-percentile there and clips above",
        choices=("max", "percentile"),
    )
    clip_percentile: float = option(
        99.5, "percentile mapped to max_intensity under --scaling percentile (our option)"
    )
    test_fraction: float = option(
        paper.TEST_FRACTION,
        f"fraction of volumes held out for testing ({PAPER}: 131 of 394, about 1/3)",
    )
    val_fraction: float = option(
        0.1,
        "fraction of the training volumes used for validation / best-model selection (our choice)",
    )
    # Optional[...] rather than X | None: training.config parses typing.Optional only.
    max_volumes: Optional[int] = option(None, "use the first N volumes by id (default: all)")  # noqa: UP045
    cache_dir: str | None = option(
        None,
        "decode cache (default: $KERAS_LOSSES_CACHE/hippocampus, else ~/.cache/keras_losses/hippocampus)",
    )  # noqa: UP045
    seed: int = option(0, "seed of the volume split, shuffling and initialisation")
    epochs: int = option(
        30, "training epochs (not stated in the paper; --quick uses the measured plateau)"
    )
    batch_size: int = option(32, "slices per batch (not stated in the paper; our choice)")
    lr: float = option(1e-3, "Adam learning rate (not stated in the paper; our choice)")
    depth: int = option(4, "U-Net down-sampling steps (Ronneberger et al. 2015: 4)")
    base_filters: int = option(
        32, "U-Net filters at the first level (our choice; doubled per level)"
    )
    dice_smooth: float = option(
        DEFAULT_SMOOTH,
        f"smoothing constant of the squared Dice loss ({PAPER}, Sec. 3: none; 1e-6 keeps an "
        "all-empty batch finite and moves no loss with foreground by more than 1e-6)",
    )
    dice_per_image: bool = option(
        False,
        f"average the Dice loss per image instead of pooling the sums over the batch ({PAPER}, "
        "Sec. 3: one sum over all pixels, i.e. pooled)",
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

    n_fixed: int = option(
        paper.N_FIXED, f"pixels overwritten in the value sweeps ({PAPER}, Figs. 2-3: 5)"
    )
    values: list[float] = option(
        list(paper.VALUES),
        f"values written into the n-fixed pixels ({PAPER}: Fig. 2 0..0.2, Fig. 3 0..1.0)",
    )
    fixed_value: float = option(
        paper.FIXED_VALUE, f"value written in the pixel-count sweep ({PAPER}, Fig. 5: 0.2)"
    )
    n_max: int = option(
        50,
        f"largest number of attacked pixels (ours; {PAPER} names N up to 30 in its text, Fig. 5)",
    )
    n_step: int = option(1, "step of the pixel counts in the pixel-count sweep (Fig. 5)")
    random_n_step: int = option(5, "step of the pixel counts in the random-value sweep (Fig. 6)")
    repetitions: int = option(
        paper.REPETITIONS, f"random-value repetitions per pixel count ({PAPER}, Fig. 6: 100)"
    )
    max_test_images: Optional[int] = option(200, MAX_TEST_HELP)  # noqa: UP045
    attack_batch: int = option(256, "attacked images per model call")
    threshold: float = option(0.5, "probability threshold of a predicted mask")
    ranking: str = option(
        "signed",
        f"pixel ranking: 'signed' = largest gradient value ({PAPER}, Sec. 3: 'N-highest gradient "
        "value'; Fig. 1 shows the positive gradients as the active ones), 'magnitude' = largest |gradient|",
        choices=("signed", "magnitude"),
    )
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
# epochs: past the validation-Dice plateau measured at this size (BCE, the slowest: epoch 17 of
# 30 with benchmarks/bench_hippocampus_epochs.py; docs/hippocampus.md, "Convergence").
QUICK_EPOCHS = 18
QUICK_TRAIN = {
    "epochs": QUICK_EPOCHS,
    "depth": 3,
    "base_filters": 16,
    "batch_size": 16,
    "max_volumes": 60,
}
QUICK_ATTACK = {"n_step": 5, "random_n_step": 10, "repetitions": 10, "max_test_images": 48}
SEEDS = (0, 1, 2)  # three seeds (split, initialisation, shuffling, attack draws); mean +- sd


def log(message: str) -> None:
    print(f"[hippocampus {time.strftime('%H:%M:%S')}] {message}", flush=True)

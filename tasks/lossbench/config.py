"""The one recipe every loss is trained with, and the settings of ``--quick``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.options import option

TASKS = ("hippocampus", "lung")
DEFAULT_DATA = {
    "hippocampus": "../shared/data/msd_hippocampus/Task04_Hippocampus",
    "lung": "../shared/data/msd_lung_patches",
}
LUNG_SPACING_MM = (2.0, 2.0)  # the patches were resampled to 2 mm (data README, SOURCE_README.md)


@dataclass
class BenchConfig:
    """Network, optimiser, data and stopping rule: the same for every loss and task."""

    tasks: list[str] = option(list(TASKS), "tasks to run: hippocampus (3 labels), lung (binary)")
    losses: list[str] = option([], "losses to run (default: every loss of the benchmark's table)")
    seeds: list[int] = option([0, 1, 2], "seeds: split, initialisation and shuffling")
    hippocampus_dir: str = option(DEFAULT_DATA["hippocampus"], "MSD Task04_Hippocampus folder")
    lung_dir: str = option(DEFAULT_DATA["lung"], "folder with val_patches.h5 and test_patches.h5")
    max_volumes: int | None = option(
        None, "hippocampus: use the first N volumes by id (default: all 260)"
    )
    size: int = option(64, "hippocampus slices zero-padded to size x size (largest slice 43 x 59)")
    depth: int = option(
        3, "U-Net down-sampling steps (chosen by the pilot, docs/loss-benchmark.md)"
    )
    base_filters: int = option(8, "U-Net filters at the first level (chosen by the pilot)")
    batch_size: int = option(16, "samples per step")
    lr: float = option(1e-3, "Adam learning rate")
    steps_per_epoch: int = option(50, "training steps between two validations (one 'epoch')")
    max_epochs: int = option(
        60, "step cap: at most max_epochs x steps_per_epoch steps (the pilot: CE plateaued at 31)"
    )
    patience: int = option(6, "stop after this many epochs without a validation-Dice gain")
    min_delta: float = option(
        0.002, "a gain is a validation Dice above the best so far by more than this (absolute)"
    )
    test_fraction: float = option(0.2, "hippocampus: fraction of volumes held out for testing")
    val_fraction: float = option(
        0.15, "fraction of the training volumes (hippocampus) or patients (lung) for validation"
    )
    cache_dir: str | None = option(None, "decode cache (default: the package cache)")

    def __post_init__(self):
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"--tasks must be among {', '.join(TASKS)}; received {bad}")
        for name in (
            "depth",
            "base_filters",
            "batch_size",
            "steps_per_epoch",
            "max_epochs",
            "patience",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1; received {getattr(self, name)}"
                )
        if self.size % 2**self.depth:
            raise ValueError(f"--size {self.size} must be divisible by 2**depth = {2**self.depth}")
        if not self.seeds:
            raise ValueError("--seeds must name at least one seed")


# `--quick`: the whole pipeline (every loss, both tasks, training, evaluation, report, figure,
# verdicts) in minutes, for CI; the numbers it gives say nothing about the losses.
QUICK = {
    "seeds": [0],
    "max_volumes": 12,
    "depth": 2,
    "base_filters": 4,
    "batch_size": 8,
    "steps_per_epoch": 2,
    "max_epochs": 2,
    "patience": 1,
}


def log(message: str) -> None:
    print(f"[loss-benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)

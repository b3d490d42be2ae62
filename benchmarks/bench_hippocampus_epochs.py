"""Seconds per epoch and the validation-Dice curve of the hippocampus U-Net, per loss.

Sizes ``reproduce.py robustness --quick``: how long one epoch takes at the --quick size and
after how many epochs each loss's validation Dice stops rising (the plateau), so that the
number of epochs comes from a measured curve.

    python benchmarks/bench_hippocampus_epochs.py --epochs 30 --losses bce,dice

Prints, per epoch: wall and CPU seconds, training loss, validation Dice (pooled over every
validation pixel, and the mean over validation slices with foreground); then per loss the
plateau epoch (:func:`tasks.hippocampus.seeds.plateau`): the first epoch at which the 3-epoch
running mean of the pooled validation Dice comes within 0.01 of its maximum over the run. Wall time on a shared machine is inflated
by the load; CPU seconds (this process, all threads) are less noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = "../shared/data/msd_hippocampus/Task04_Hippocampus"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=DATA, help="MSD Task04_Hippocampus folder")
    p.add_argument(
        "--losses", default="bce,dice,bce+dice,bce+dice+focal", help="comma-separated losses"
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs per loss (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, shuffling, initialisation")
    p.add_argument("--json", default=None, help="also write the curves to this JSON file")
    args = p.parse_args()

    import dataclasses

    from data.hippocampus import list_cases, make_dataset, split_cases
    from tasks.common import seed_everything
    from tasks.hippocampus.config import QUICK_TRAIN, HippocampusConfig
    from tasks.hippocampus.seeds import plateau
    from tasks.hippocampus.training import build_model, load_split_slices

    base = HippocampusConfig(data_dir=args.data_dir, seed=args.seed, **QUICK_TRAIN)
    cases = list_cases(base.data_dir, base.max_volumes)
    split = split_cases(
        [c.case_id for c in cases], base.test_fraction, base.seed, base.val_fraction
    )
    conf = dataclasses.asdict(base)
    xt, yt, _ = load_split_slices(base.data_dir, conf, split["train"])
    xv, yv, _ = load_split_slices(base.data_dir, conf, split["val"])
    print(
        f"{len(split['train'])} train volumes ({len(xt)} slices), {len(split['val'])} validation "
        f"volumes ({len(xv)} slices); {json.dumps(QUICK_TRAIN)}",
        flush=True,
    )
    EpochLog = epoch_logger()
    curves = {}
    for loss in [v for v in args.losses.split(",") if v]:
        cfg = dataclasses.replace(base, loss=loss, epochs=args.epochs)
        seed_everything(cfg.seed)
        model = build_model(cfg)  # compiled with the hard-Dice metrics dice and dice_fg
        train_ds = make_dataset(xt, yt, cfg.batch_size, shuffle=True, seed=cfg.seed)
        val_ds = make_dataset(xv, yv, cfg.batch_size, shuffle=False)
        rows = []
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            verbose=0,
            callbacks=[EpochLog(loss, rows)],
        )
        vd = [r["val_dice"] for r in rows]
        curves[loss] = rows
        wall = sorted(r["wall_s"] for r in rows[1:]) or [rows[0]["wall_s"]]
        pl = plateau(vd)
        print(
            f"{loss}: median {wall[len(wall) // 2]:.1f} s/epoch wall; best val Dice {max(vd):.3f} "
            f"at epoch {pl['best_epoch']}; plateau (3-epoch mean within 0.01 of its max) "
            f"at epoch {pl['plateau_epoch']}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(curves, indent=1))


def epoch_logger():
    import keras

    class EpochLog(keras.callbacks.Callback):
        """Prints and records wall/CPU seconds and the logs of every epoch."""

        def __init__(self, loss, rows):
            super().__init__()
            self.loss, self.rows = loss, rows

        def on_epoch_begin(self, epoch, logs=None):
            self.t, self.c = time.perf_counter(), cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            row = {
                "epoch": epoch + 1,
                "wall_s": time.perf_counter() - self.t,
                "cpu_s": cpu_seconds() - self.c,
                **{k: float(v) for k, v in logs.items()},
            }
            self.rows.append(row)
            print(
                f"{self.loss} epoch {epoch + 1}: {row['wall_s']:.1f} s wall, "
                f"{row['cpu_s']:.1f} s CPU, loss {row['loss']:.4f}, val Dice "
                f"{row['val_dice']:.3f} pooled, {row['val_dice_fg']:.3f} foreground slices",
                flush=True,
            )

    return EpochLog


if __name__ == "__main__":
    main()

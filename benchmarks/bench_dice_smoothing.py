"""How much the Dice loss's smoothing constant can matter on the hippocampus training batches.

    python benchmarks/bench_dice_smoothing.py                # the --quick split, batch 16
    python benchmarks/bench_dice_smoothing.py --max-volumes 260 --batch-size 32

The pooled squared Dice loss is L_s = 1 - (2I + s) / (D + s), I = sum(p y), D = sum(p^2) +
sum(y^2). Its distance to the paper's unsmoothed loss is |L_s - L_0| = s (D - 2I) / (D (D + s))
<= s / D <= s / sum(y^2), and the same order holds for the gradient. This script shuffles the
training slices into batches exactly as training does (seeded) and prints the smallest number of
foreground pixels in a batch (= sum(y^2)) over an epoch, the resulting bound, and the measured
|L_s - L_0| and the relative gradient difference on those batches for p = a blurred version of y
plus noise (a stand-in prediction).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir",
        default="../shared/data/msd_hippocampus/Task04_Hippocampus",
        help="MSD Task04_Hippocampus folder",
    )
    p.add_argument("--max-volumes", type=int, default=60, help="first N volumes (--quick: 60)")
    p.add_argument("--batch-size", type=int, default=16, help="slices per batch (--quick: 16)")
    p.add_argument("--smooth", type=float, default=1e-6, help="smoothing constant (default 1e-6)")
    p.add_argument("--epochs", type=int, default=3, help="shuffled epochs to scan (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of split and shuffling")
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    import keras_losses as kl
    from data.hippocampus import SliceSettings, list_cases, load_slices, make_dataset, split_cases

    cases = list_cases(args.data_dir, args.max_volumes)
    split = split_cases([c.case_id for c in cases], 1 / 3, args.seed, 0.1)
    by_id = {c.case_id: c for c in cases}
    x, y, _ = load_slices([by_id[i] for i in split["train"]], SliceSettings())
    ds = make_dataset(x, y, args.batch_size, shuffle=True, seed=args.seed)
    smooth, exact = kl.SquaredDiceLoss(smooth=args.smooth), kl.SquaredDiceLoss(smooth=0.0)
    rng = np.random.default_rng(args.seed)
    fg, dloss, dgrad, empty = [], [], [], 0
    for _ in range(args.epochs):
        for _, yb in ds:
            yb = yb.numpy()
            n = float(yb.sum())
            fg.append(n)
            if n == 0:
                empty += 1
                continue
            pred = tf.Variable(
                np.clip(
                    tf.nn.avg_pool2d(yb, 3, 1, "SAME").numpy() + rng.uniform(0, 0.1, yb.shape), 0, 1
                ).astype("float32")
            )
            grads = []
            for loss in (smooth, exact):
                with tf.GradientTape() as tape:
                    value = loss(yb, pred)
                grads.append((float(value), tape.gradient(value, pred).numpy()))
            dloss.append(abs(grads[0][0] - grads[1][0]))
            g0 = grads[1][1]
            dgrad.append(float(np.abs(grads[0][1] - g0).max() / np.abs(g0).max()))
    fg = np.asarray(fg)
    print(
        f"{len(split['train'])} training volumes, {len(x)} slices, batch {args.batch_size}, "
        f"{args.epochs} shuffled epochs = {len(fg)} batches"
    )
    print(
        f"batches without foreground: {empty}; foreground pixels per batch: min {fg.min():.0f}, "
        f"median {np.median(fg):.0f}"
    )
    print(f"bound s / min sum(y^2) = {args.smooth / max(fg[fg > 0].min(), 1):.2e}")
    print(
        f"measured |L_s - L_0|: max {max(dloss):.2e}; relative gradient difference: max "
        f"{max(dgrad):.2e}"
    )


if __name__ == "__main__":
    main()

"""Forward + backward time of every overlap loss against keras.losses.Dice on the same input.

    nice -n 10 env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/bench_losses.py            # 2D 8x256x256 and 3D 2x64^3, C = 1 and 4
    python benchmarks/bench_losses.py --repeats 5    # fewer timed repeats

TensorFlow graph mode (``tf.function``, no XLA), one thread. For each shape and class count the
script builds random one-hot labels and softmax (C > 1) or sigmoid (C = 1) probabilities, times
``loss(y, p)`` and its gradient with respect to ``p`` in CPU time of the process (the median of
``--repeats`` rounds of ``--steps`` calls, the losses interleaved within each round, after one
warm-up call) and prints the time relative to ``keras.losses.Dice`` measured in the same run. Two more rows show what the input checks cost: DiceLoss with its
value checks (``check_values``: two scalar reductions per tensor) and the same loss without them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {"2D 8x256x256": (8, 256, 256), "3D 2x64^3": (2, 64, 64, 64)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is printed")
    p.add_argument("--steps", type=int, default=5, help="calls per round")
    p.add_argument("--classes", default="1,4", help="class counts C to time (default 1,4)")
    args = p.parse_args()

    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_losses as kl

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    class DiceUnchecked(kl.DiceLoss):
        """DiceLoss without its value checks, to show what they cost."""

        def check_values(self, y_true, y_pred):
            return None

    losses = {
        "keras.losses.Dice": lambda: keras.losses.Dice(),
        "DiceLoss": lambda: kl.DiceLoss(),
        "DiceLoss, no checks": lambda: DiceUnchecked(),
        "SquaredDiceLoss": lambda: kl.SquaredDiceLoss(),
        "TverskyLoss": lambda: kl.TverskyLoss(0.3, 0.7),
        "EffectivenessLoss": lambda: kl.EffectivenessLoss(2.0),
        "GeneralizedLoss (GLF)": lambda: kl.GeneralizedLoss(0.7, 1.3, 2.0),
        "JaccardLoss": lambda: kl.JaccardLoss(),
        "GeneralizedDiceLoss": lambda: kl.GeneralizedDiceLoss(),
        "FocalTverskyLoss": lambda: kl.FocalTverskyLoss(),
    }
    classes = [int(c) for c in args.classes.split(",")]
    rng = np.random.default_rng(0)
    columns = [(shape, c) for shape in SHAPES for c in classes]
    table = {name: [] for name in losses}
    for shape_name, c in columns:
        shape = SHAPES[shape_name]
        labels = rng.integers(0, max(c, 2), size=shape)
        y = (
            np.eye(max(c, 2), dtype="float32")[labels][..., -c:]
            if c > 1
            else (labels[..., None] == 1).astype("float32")
        )
        logits = rng.normal(size=shape + (c,)).astype("float32")
        probs = tf.nn.softmax(logits) if c > 1 else tf.sigmoid(logits)
        y_t, p_var = tf.constant(y), tf.Variable(probs)
        steps = {}
        for name, make in losses.items():
            loss = make()

            @tf.function
            def step(loss=loss, y_t=y_t, p_var=p_var):
                with tf.GradientTape() as tape:
                    value = loss(y_t, p_var)
                return value, tape.gradient(value, p_var)

            step()[1].numpy()  # trace and warm up
            steps[name] = step
        # Rounds interleave the losses, so a change of machine load hits them all alike; the
        # clock is the process's CPU time (one thread), which other processes do not inflate.
        times = {name: [] for name in losses}
        for _ in range(args.repeats):
            for name, step in steps.items():
                start = time.process_time()
                for _ in range(args.steps):
                    _, grad = step()
                grad.numpy()
                times[name].append((time.process_time() - start) / args.steps)
        base = float(np.median(times["keras.losses.Dice"]))
        for name in losses:
            t = float(np.median(times[name]))
            table[name].append((t, t / base))
    header = f"{'loss':<24}" + "".join(f"{f'{s}, C={c}':>24}" for s, c in columns)
    print(header)
    print("-" * len(header))
    for name, row in table.items():
        cells = "".join(f"{f'{1e3 * t:7.2f} ms {r:5.2f}x':>24}" for t, r in row)
        print(f"{name:<24}{cells}")
    print(
        "\nms: CPU time of forward + backward per call (median); x: relative to keras.losses.Dice "
        "in the same column"
    )


if __name__ == "__main__":
    main()

"""Adaptive GLF: step-time overhead of each rule, and first-order vs exact agreement on real data.

Two measurements, printed (never asserted):

``timing``: one process, one U-Net, one batch of data; the median wall time of a training
    iteration (from one ``on_train_batch_begin`` to the next, so callbacks are included) for
    Dice, GLF-det, GLF-exp exact, GLF-exp first-order and the naive 27-copy search, as ratios
    to Dice. Targets: det <= 1.05x, exact <= 12x, first-order <= 3x (naive about 36x).

``lung``: trains on the MSD lung-tumour patches (../shared/data/msd_lung_patches) with the
    exact exploratory rule and, before every step, scores the 27 actions by both the exact and
    the first-order rule on the same state: how often they pick the same action. It also runs
    the deterministic rule on the same data and writes Fig. 6 and Fig. 7 for both runs.

``hybrid``: both in one run, for the hybrid search (first-order ranking, the top k scored
    exactly): the step time of Dice, exact and hybrid k = 1..5 on one batch of the lung patches,
    then training with the exact rule on the lung patches while scoring the 27 actions by the
    exact and first-order rules before every step: how often the hybrid choice for k = 1..5
    (computed from those scores) is the exact action. Target: <= 4x a Dice step and
    >= 98 % agreement.

    python benchmarks/bench_adaptive_glf.py timing --steps 20
    python benchmarks/bench_adaptive_glf.py lung --epochs 3 --figures docs
    python benchmarks/bench_adaptive_glf.py hybrid --size 64 --filters 16 --steps 15 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_losses  # noqa: E402
from architectures.unet import build_unet  # noqa: E402
from keras_losses.adaptive import (  # noqa: E402
    ACTIONS,
    action_text,
    plot_coefficients,
    plot_tversky_trajectory,
    prepare_adaptive_glf,
)
from keras_losses.adaptive.exploratory import KEEP_ACTION, tie_choice  # noqa: E402

RULES = ("dice", "det", "exp", "exp-hybrid", "exp-first-order", "exp-naive")
HYBRID_KS = (1, 2, 3, 4, 5)
LUNG = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_lung_patches"


class StepTimer(keras.callbacks.Callback):
    """Wall time between consecutive batch starts (the whole iteration, callbacks included)."""

    def __init__(self):
        super().__init__()
        self.starts = []
        self.cpu = []

    def on_train_batch_begin(self, batch, logs=None):
        self.starts.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def on_train_end(self, logs=None):
        self.starts.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def step_times(self, skip):
        """Wall-clock and process CPU seconds of each step after the first ``skip``. On a
        shared machine the CPU time (all threads of this process) is the steadier figure."""
        return np.diff(self.starts)[skip:], np.diff(self.cpu)[skip:]



def epoch_batches(n: int, batch: int, epochs: int, seed: int = 0) -> list:
    """Index batches of ``epochs`` shuffled passes over ``n`` samples (full batches only)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(epochs):
        order = rng.permutation(n)
        batches += [order[i : i + batch] for i in range(0, n - batch + 1, batch)]
    return batches

def synthetic_blobs(n, size, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    y = np.zeros((n, size, size, 1), "float32")
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.integers(4, size - 4, 2)
            r = rng.integers(2, max(3, size // 10))
            y[i, ..., 0] = np.maximum(y[i, ..., 0], (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    x = (0.6 * y + 0.2 + 0.15 * rng.standard_normal(y.shape)).astype("float32")
    return x, y


def load_lung(split="val"):
    import h5py

    path = LUNG / f"{split}_patches.h5"
    if not path.exists():
        raise SystemExit(f"lung patches not found: {path} (see ../shared/data/README.md)")
    with h5py.File(path, "r") as f:
        images = np.asarray(f["images"], "float32").transpose(0, 2, 3, 1)  # (N, 48, 48, 1)
        labels = np.asarray(f["labels"], "float32").transpose(0, 2, 3, 1)
    return images, labels


def build(args, seed=1):
    keras.utils.set_random_seed(seed)
    return build_unet((args.size, args.size, 1), depth=args.depth, base_filters=args.filters)


def time_rule(rule, args, x, y, rule_options=None):
    loss = keras_losses.DiceLoss() if rule == "dice" else keras_losses.GeneralizedLoss()
    net = build(args)
    optimizer = keras.optimizers.Adam(args.lr)
    if rule == "dice":
        net.compile(optimizer=optimizer, loss=loss)
        model, callbacks = net, []
    else:
        model, callbacks = prepare_adaptive_glf(
            net, loss, rule, optimizer, rule_options=rule_options
        )
    timer = StepTimer()
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(args.batch, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )
    steps = args.warmup + args.steps
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[*callbacks, timer])
    total = time.perf_counter() - start
    t, cpu = timer.step_times(args.warmup)
    return {
        "median_s": float(np.median(t)),
        "p90_s": float(np.percentile(t, 90)),
        "median_cpu_s": float(np.median(cpu)),
        "fit_s": total,
        "steps": len(t),
    }


def cmd_timing(args):
    x, y = synthetic_blobs(args.batch * 4, args.size)
    print(
        f"U-Net depth {args.depth}, {args.filters} base filters, {args.size}x{args.size}, batch "
        f"{args.batch}, {args.steps} timed steps after {args.warmup} warm-up; "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at start)",
        flush=True,
    )
    results = {}
    for rule in args.rules.split(","):
        results[rule] = time_rule(rule, args, x, y)
        r = results[rule]
        print(
            f"  {rule:16s} median {1000 * r['median_s']:8.1f} ms/step wall, "
            f"{1000 * r['median_cpu_s']:8.1f} ms/step CPU",
            flush=True,
        )
    base = results.get("dice")
    print("\nrule              wall ms/step  ratio   CPU ms/step  ratio  (ratios to Dice)")
    for rule, r in results.items():
        r["ratio"] = r["median_s"] / base["median_s"] if base else float("nan")
        r["cpu_ratio"] = r["median_cpu_s"] / base["median_cpu_s"] if base else float("nan")
        print(
            f"{rule:16s}  {1000 * r['median_s']:12.1f} {r['ratio']:6.2f}x "
            f"{1000 * r['median_cpu_s']:12.1f} {r['cpu_ratio']:6.2f}x"
        )
    print(f"(load average at end {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


def lung_patches(size):
    x, y = load_lung("val")
    pad = (size - x.shape[1]) // 2
    if pad > 0:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        y = np.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return x, y


def cmd_hybrid(args):
    """Step cost of Dice / exact / hybrid k = 1..5, and hybrid-vs-exact agreement, one run."""
    cpu0 = time.process_time()
    x, y = lung_patches(args.size)
    print(
        f"U-Net depth {args.depth}, {args.filters} base filters, {args.size}x{args.size}, batch "
        f"{args.batch}, Adam {args.lr:g}; lung val patches {x.shape}; {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f} at start)",
        flush=True,
    )
    # --- step cost, on the first batches of the patches
    xt, yt = x[: args.batch * 4], y[: args.batch * 4]
    timing = {}
    runs = [("dice", "dice", None), ("exact", "exp", None)]
    runs += [(f"hybrid k={k}", "exp-hybrid", {"top_k": k}) for k in HYBRID_KS]
    for label, rule, options in runs:
        timing[label] = time_rule(rule, args, xt, yt, rule_options=options)
        print(
            f"  {label:12s} median {1000 * timing[label]['median_s']:8.1f} ms/step wall, "
            f"{1000 * timing[label]['median_cpu_s']:8.1f} ms/step CPU",
            flush=True,
        )
    base = timing["dice"]
    for r in timing.values():
        r["ratio"] = r["median_s"] / base["median_s"]
        r["cpu_ratio"] = r["median_cpu_s"] / base["median_cpu_s"]

    # --- agreement along an exact-mode training run
    batches = epoch_batches(len(x), args.batch, args.epochs)
    loss = keras_losses.GeneralizedLoss()
    model, _ = prepare_adaptive_glf(build(args), loss, "exp", keras.optimizers.Adam(args.lr))
    scores = tf.function(model.candidate_scores)
    agree = {k: [] for k in HYBRID_KS}
    first_order, self_agree, ties = [], [], []
    for step, idx in enumerate(batches):
        xb, yb = tf.constant(x[idx]), tf.constant(y[idx])
        exact, first = (s.numpy() for s in scores(xb, yb))
        # Each mode's decision as its train step takes it: the argmin, or "keep" when another
        # candidate lies within the tie tolerance of the best (tie_choice).
        e = tie_choice(exact)
        ties.append(e == KEEP_ACTION)
        first_order.append(tie_choice(first) == e)
        for k in HYBRID_KS:
            agree[k].append(model.hybrid_choice(exact, first, k) == e)
        logs = model.train_on_batch(xb, yb, return_dict=True)
        # the exact train step and candidate_scores compute the same scores along two graphs
        # (the same dropout mask): how often their decisions agree
        self_agree.append(int(logs["glf_action_index"]) == e)
        if (step + 1) % 25 == 0:
            print(
                f"  step {step + 1}/{len(batches)}: agreement k=1..5 "
                + " ".join(f"{np.mean(agree[k]):.3f}" for k in HYBRID_KS)
                + f"; exact train step vs exact scores {np.mean(self_agree):.3f}",
                flush=True,
            )
    n = len(batches)
    print(
        f"\n{n} exact-mode steps on the lung patches; CPU ratios to a Dice step "
        f"({1000 * base['median_cpu_s']:.1f} ms CPU); load average at end {os.getloadavg()[0]:.1f}"
    )
    print(
        f"exact train step's action = the decision from the separately computed exact scores "
        f"in {sum(self_agree)}/{n} steps ({np.mean(self_agree):.3f}); a tie at the minimum "
        f"(kept coefficients) in {sum(ties)}/{n} steps"
    )
    print("mode           CPU ms/step  ratio   wall ratio  same decision as exact")
    print(
        f"{'exact':14s} {1000 * timing['exact']['median_cpu_s']:11.1f} "
        f"{timing['exact']['cpu_ratio']:6.2f}x {timing['exact']['ratio']:9.2f}x  (reference)"
    )
    print(f"{'first-order':14s} {'':11s} {'':7s} {'':10s} {np.mean(first_order):.3f}")
    for k in HYBRID_KS:
        r = timing[f"hybrid k={k}"]
        print(
            f"{'hybrid k=' + str(k):14s} {1000 * r['median_cpu_s']:11.1f} {r['cpu_ratio']:6.2f}x "
            f"{r['ratio']:9.2f}x  {np.mean(agree[k]):.3f} ({sum(agree[k])}/{n})"
        )
    print(f"benchmark CPU {time.process_time() - cpu0:.0f} s")
    if args.json:
        summary = {
            "args": vars(args),
            "steps": n,
            "timing": timing,
            "agreement": {str(k): float(np.mean(agree[k])) for k in HYBRID_KS},
            "exact_ties": float(np.mean(ties)),
            "first_order_agreement": float(np.mean(first_order)),
            "exact_self_agreement": float(np.mean(self_agree)),
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))


def cmd_lung(args):
    x, y = lung_patches(args.size)
    out = Path(args.out or tempfile.mkdtemp(prefix="glf_lung_"))
    print(f"lung val patches {x.shape}, tumour fraction {y.mean():.3f}; runs in {out}", flush=True)
    batches = epoch_batches(len(x), args.batch, args.epochs)

    # --- exploratory (exact), with the first-order choice computed on the same state
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(
        build(args), loss, "exp", keras.optimizers.Adam(args.lr), run_dir=out / "exp"
    )
    scores = tf.function(model.candidate_scores)
    agree, regret, rank = [], [], []
    callbacks = keras.callbacks.CallbackList(callbacks, model=model)
    callbacks.on_train_begin()
    steps_per_epoch = len(batches) // args.epochs
    for step, idx in enumerate(batches):
        if step % steps_per_epoch == 0:
            callbacks.on_epoch_begin(step // steps_per_epoch)
        xb, yb = tf.constant(x[idx]), tf.constant(y[idx])
        exact, first = (s.numpy() for s in scores(xb, yb))
        # each rule's decision as its train step takes it (a tie at the minimum keeps all three)
        e, f = tie_choice(exact), tie_choice(first)
        agree.append(e == f)
        regret.append(float(exact[f] - exact[e]))
        rank.append(int(np.argsort(np.argsort(exact))[f]))
        logs = model.train_on_batch(xb, yb, return_dict=True)
        callbacks.on_train_batch_end(step % steps_per_epoch, logs)
        chosen = callbacks.callbacks[0].rows[-1]["action"]
        assert chosen == action_text(e), (chosen, action_text(e))
        if (step + 1) % steps_per_epoch == 0:
            callbacks.on_epoch_end(step // steps_per_epoch, {})
            print(
                f"  epoch {(step + 1) // steps_per_epoch}: loss {logs['loss']:.4f}, agreement so far "
                f"{np.mean(agree):.3f}, coefficients {loss.coefficients}",
                flush=True,
            )
    callbacks.on_train_end()
    n = len(agree)
    print(
        f"\nfirst-order vs exact on {n} steps (lung, {args.size}px, batch {args.batch}, "
        f"{len(ACTIONS)} actions): same action {sum(agree)}/{n} = {np.mean(agree):.3f}; "
        f"rank of the first-order choice under the exact scores: median {np.median(rank):.0f}, "
        f"mean {np.mean(rank):.2f}; exact-score regret median {np.median(regret):.2e}, "
        f"max {np.max(regret):.2e}"
    )

    # --- deterministic on the same batches
    loss_d = keras_losses.GeneralizedLoss()
    model_d, callbacks_d = prepare_adaptive_glf(
        build(args), loss_d, "det", keras.optimizers.Adam(args.lr), run_dir=out / "det"
    )
    ds = tf.data.Dataset.from_tensor_slices(
        (x[np.concatenate(batches)], y[np.concatenate(batches)])
    ).batch(args.batch)
    model_d.fit(ds, epochs=1, verbose=0, callbacks=callbacks_d)
    print(f"deterministic: final coefficients {loss_d.coefficients}")
    summary = {
        "steps": n,
        "agreement": float(np.mean(agree)),
        "rank_median": float(np.median(rank)),
        "regret_median": float(np.median(regret)),
        "exp_final": loss.coefficients,
        "det_final": loss_d.coefficients,
    }
    (out / "agreement.json").write_text(json.dumps(summary, indent=2))
    if args.figures:
        csvs = {
            "deterministic": out / "det" / "glf_trajectory.csv",
            "exploratory (exact)": out / "exp" / "glf_trajectory.csv",
        }
        print("wrote", plot_coefficients(csvs, Path(args.figures) / "glf_fig6_coefficients.png"))
        print("wrote", plot_tversky_trajectory(csvs, Path(args.figures) / "glf_fig7_tversky.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("timing", "lung", "hybrid"):
        p = sub.add_parser(name)
        p.add_argument(
            "--size",
            type=int,
            default=48,
            help="image side (lung patches are 48; padded if larger)",
        )
        p.add_argument(
            "--depth",
            type=int,
            default=3,
            help="U-Net depth (48 needs depth <= 4 and divisibility)",
        )
        p.add_argument("--filters", type=int, default=8, help="U-Net base filters")
        p.add_argument("--batch", type=int, default=8, help="batch size")
        p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t = sub.choices["timing"]
    t.add_argument("--steps", type=int, default=20, help="timed steps per rule")
    t.add_argument("--warmup", type=int, default=3, help="untimed first steps (tracing)")
    t.add_argument("--rules", default=",".join(RULES), help="comma-separated rules to time")
    t.add_argument("--json", help="also write the figures to this JSON file")
    lung = sub.choices["lung"]
    lung.add_argument(
        "--epochs", type=int, default=3, help="passes over the 130 validation patches"
    )
    lung.add_argument("--out", help="folder for the two runs (default: a temporary folder)")
    lung.add_argument(
        "--figures", help="folder to write glf_fig6_coefficients.png and glf_fig7_tversky.png"
    )
    hybrid = sub.choices["hybrid"]
    hybrid.add_argument("--steps", type=int, default=15, help="timed steps per mode")
    hybrid.add_argument("--warmup", type=int, default=3, help="untimed first steps (tracing)")
    hybrid.add_argument(
        "--epochs", type=int, default=10, help="passes over the 130 patches for the agreement"
    )
    hybrid.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    {"timing": cmd_timing, "lung": cmd_lung, "hybrid": cmd_hybrid}[args.command](args)


if __name__ == "__main__":
    main()

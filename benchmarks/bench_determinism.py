"""How much the main job's figures vary between identical runs, and what determinism costs.

Runs ``train.py --task lung --loss glf-det`` (the main job, built-in phantom) several times
with the same seed, each in a fresh process and run directory, first as it ships and then
with TensorFlow's op determinism on (``tf.config.experimental.enable_op_determinism()``,
what ``train.py --deterministic`` turns on), and prints per run: test Dice, precision and recall
on tumour slices, the last validation Dice, whether ``history.csv`` equals the first run's,
and the CPU time of the process (user + system, children included). CPU-time ratios are
comparable on a shared machine; wall times are not.

    python benchmarks/bench_determinism.py --runs 3 --det-runs 2 --epochs 3 --steps-per-epoch 15
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(out: Path, deterministic: bool, flags: list[str]) -> dict:
    argv = ["--task", "lung", "--loss", "glf-det", "--out", str(out), *flags]
    if deterministic:
        argv.append("--deterministic")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"train.py {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    done = json.loads((out / "COMPLETED").read_text())
    ts = done["test"]["tumour_slices"]
    with open(out / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    return {
        "deterministic": deterministic,
        "dice": ts["dice"],
        "precision": ts["precision"],
        "recall": ts["recall"],
        "last_val_dice": float(history[-1]["val_dice"]),
        "history": history,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs as the job ships (default: 3)")
    parser.add_argument(
        "--det-runs", type=int, default=2, help="runs with --deterministic (default: 2)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="--epochs of each run (default: the job's)"
    )
    parser.add_argument(
        "--steps-per-epoch", type=int, default=None, help="--steps-per-epoch (default: the job's)"
    )
    args = parser.parse_args()
    flags = []
    if args.epochs:
        flags += ["--epochs", str(args.epochs)]
    if args.steps_per_epoch:
        flags += ["--steps-per-epoch", str(args.steps_per_epoch)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [False] * args.runs + [True] * args.det_runs
        for i, det in enumerate(plan):
            r = one_run(Path(tmp) / f"run{i}", det, flags)
            results.append(r)
            print(
                f"run {i + 1}: deterministic={det} test Dice {100 * r['dice']:.1f} %, precision "
                f"{100 * r['precision']:.1f} %, recall {100 * r['recall']:.1f} %, last val Dice "
                f"{100 * r['last_val_dice']:.2f} %, CPU {r['cpu_s']:.0f} s, wall {r['wall_s']:.0f} s",
                flush=True,
            )
    for det in (False, True):
        group = [r for r in results if r["deterministic"] == det]
        if not group:
            continue
        dice = [100 * r["dice"] for r in group]
        same = all(r["history"] == group[0]["history"] for r in group)
        print(
            f"deterministic={det}: {len(group)} runs, test Dice {min(dice):.1f}-{max(dice):.1f} % "
            f"(spread {max(dice) - min(dice):.1f} points), histories identical: {same}, "
            f"mean CPU {sum(r['cpu_s'] for r in group) / len(group):.0f} s"
        )
    base = [r["cpu_s"] for r in results if not r["deterministic"]]
    det = [r["cpu_s"] for r in results if r["deterministic"]]
    if base and det:
        print(
            f"CPU-time ratio deterministic / as shipped: {(sum(det) / len(det)) / (sum(base) / len(base)):.2f}"
        )


if __name__ == "__main__":
    main()

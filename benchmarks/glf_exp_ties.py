"""Exploratory GLF search on the real lung patches: ties, best-to-second gaps, scoring mode.

Trains the lung study's network (mU-Net, depth 3, 8 base filters, Adam 1e-4, batch 8) with the
exact exploratory search on the MSD lung-tumour patches (../shared/data/msd_lung_patches,
val_patches.h5, the file the lung study trains on) and, before every step, scores the 27
actions on the same state in both scoring modes the search offers (the first ``--compare-steps``):

- training mode with the step's own dropout mask (``score_training=True``, the default), and
- inference mode, dropout off and batch-norm moving averages (``score_training=False``).

Printed per step: the candidates tied with the best (within the tie tolerance; 1 = no tie),
the best-to-second gap in float32 ulps of the best score, the action taken, the action the
other scoring mode would take, and the coefficients after the step. Then a summary: how often
ties occurred, the gap distribution, how often the two modes chose differently, and where
the coefficients went (floor 1e-6 or not). Figures are printed, never asserted.

    python benchmarks/glf_exp_ties.py --steps 200 --out /tmp/ties
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_losses  # noqa: E402
from architectures.munet import build_munet  # noqa: E402
from keras_losses.adaptive import (  # noqa: E402
    KEEP_ACTION,
    action_text,
    prepare_adaptive_glf,
    tie_choice,
)

LUNG = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_lung_patches"


def load_patches(path: Path):
    import h5py

    if not path.exists():
        raise SystemExit(f"error: lung patches not found: {path} (see ../shared/data/README.md)")
    with h5py.File(path, "r") as f:
        images = np.asarray(f["images"], "float32").transpose(0, 2, 3, 1)  # (N, 48, 48, 1)
        labels = np.asarray(f["labels"], "float32").transpose(0, 2, 3, 1)
    return images, labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--batch", type=int, default=8, help="batch size (lung study: 8)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--depth", type=int, default=3, help="mU-Net depth")
    parser.add_argument("--filters", type=int, default=8, help="mU-Net base filters")
    parser.add_argument("--seed", type=int, default=0, help="weights and batch order")
    parser.add_argument(
        "--tie-tolerance",
        type=float,
        default=None,
        help="tie tolerance in float32 epsilons (default: the search's default)",
    )
    parser.add_argument(
        "--compare-steps",
        type=int,
        default=30,
        help="compare the two scoring modes on the first N steps (default 30)",
    )
    parser.add_argument("--data", default=str(LUNG / "val_patches.h5"), help="HDF5 patch file")
    parser.add_argument("--out", help="folder for steps.csv and summary.json")
    args = parser.parse_args(argv)

    cpu0 = time.process_time()
    x_all, y_all = load_patches(Path(args.data))
    keras.utils.set_random_seed(args.seed)
    net = build_munet(x_all.shape[1:], depth=args.depth, base_filters=args.filters)
    loss = keras_losses.GeneralizedLoss()
    options = {} if args.tie_tolerance is None else {"tie_tolerance": args.tie_tolerance}
    model, _ = prepare_adaptive_glf(
        net, loss, "exp", keras.optimizers.Adam(args.lr), rule_options=options
    )
    tolerance = model.tie_tolerance
    rng = np.random.default_rng(args.seed)
    order = np.concatenate([rng.permutation(len(x_all)) for _ in range(args.steps // 10 + 2)])
    compare = args.compare_steps
    print(
        f"mU-Net depth {args.depth}, {args.filters} filters, batch {args.batch}, Adam {args.lr:g}, "
        f"{args.steps} steps on {args.data} ({len(x_all)} patches); tie tolerance {tolerance:g} "
        "float32 eps (relative)"
    )
    print("step ties gap_ulps exact_tie action      inference_action  alpha_p   alpha_n   beta2")
    rows = []
    for step in range(args.steps):
        idx = order[step * args.batch : (step + 1) * args.batch]
        xb, yb = x_all[idx], y_all[idx]
        other = predicted = ""
        if step < compare:
            # eager: one step's two scorings cost less than tracing the 27 passes twice
            train_mode = np.asarray(model.candidate_scores(xb, yb, training=True)[0], np.float32)
            inference = np.asarray(model.candidate_scores(xb, yb, training=False)[0], np.float32)
            predicted = action_text(tie_choice(train_mode, tolerance))
            other = action_text(tie_choice(inference, tolerance))
        logs = model.train_on_batch(xb, yb, return_dict=True)
        index = int(logs["glf_action_index"])
        best = float(logs["glf_score"])
        gap = float(logs["glf_gap"])
        ulp = float(np.spacing(np.float32(best)))
        row = {
            "step": step + 1,
            "ties": int(logs["glf_ties"]),
            "gap": gap,
            "gap_ulps": gap / ulp,
            "exact_tie": int(gap == 0.0),
            "best_score": best,
            "action": action_text(index),
            "kept_by_tie_rule": int(index == KEEP_ACTION and int(logs["glf_ties"]) > 1),
            "predicted": predicted,
            "inference_action": other,
            **{c: float(v) for c, v in loss.coefficients.items()},
        }
        rows.append(row)
        print(
            f"{row['step']:4d} {row['ties']:4d} {row['gap_ulps']:8.1f} {row['exact_tie']:9d} "
            f"{row['action']:<12} {other:<17} {row['alpha_p']:<9.3g} {row['alpha_n']:<9.3g} "
            f"{row['beta2']:.3g}",
            flush=True,
        )

    n = len(rows)
    compared = [r for r in rows if r["inference_action"]]
    gaps = np.array([r["gap_ulps"] for r in rows])
    summary = {
        "command": "python benchmarks/glf_exp_ties.py " + " ".join(argv or sys.argv[1:]),
        "steps": n,
        "tie_tolerance_eps": tolerance,
        "steps_with_tie": sum(r["ties"] > 1 for r in rows),
        "steps_with_exact_tie": sum(r["exact_tie"] for r in rows),
        "gap_ulps_quartiles": [float(q) for q in np.percentile(gaps, [0, 25, 50, 75, 100])],
        "steps_kept_by_tie_rule": sum(r["kept_by_tie_rule"] for r in rows),
        "compared_steps": len(compared),
        "train_step_matches_its_scoring_pass": sum(
            r["action"] == r["predicted"] for r in compared
        ),
        "inference_mode_differs": sum(r["inference_action"] != r["action"] for r in compared),
        "actions": {a: sum(r["action"] == a for r in rows) for a in sorted({r["action"] for r in rows})},
        "final": {c: rows[-1][c] for c in ("alpha_p", "alpha_n", "beta2")},
        "min": {c: min(r[c] for r in rows) for c in ("alpha_p", "alpha_n", "beta2")},
        "at_floor_1e-6": {
            c: sum(r[c] <= 1.0000001e-6 for r in rows) for c in ("alpha_p", "alpha_n", "beta2")
        },
        "cpu_seconds": round(time.process_time() - cpu0, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "steps.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

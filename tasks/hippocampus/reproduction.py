"""The robustness reproduction: train each loss, attack, check the claims, write the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from tasks.hippocampus.config import (
    DEFAULT_DATA,
    LOSSES,
    QUICK_ATTACK,
    QUICK_TRAIN,
    AttackConfig,
    HippocampusConfig,
    log,
)
from tasks.hippocampus.evaluation import run_evaluation
from tasks.hippocampus.paper import PAPER
from tasks.hippocampus.training import run_training


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="MSD Task04_Hippocampus folder")
    parser.add_argument(
        "--losses",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(LOSSES),
        help=f"comma-separated losses to compare (default: {','.join(LOSSES)})",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs")
    parser.add_argument(
        "--max-volumes", type=int, default=None, help="use only the first N volumes by id"
    )
    parser.add_argument(
        "--max-test-images",
        type=int,
        default=None,
        help="override the number of attacked test slices",
    )
    parser.add_argument(
        "--repetitions", type=int, default=None, help="override the random-attack repetitions"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="per-volume decode cache (default: $KERAS_LOSSES_CACHE/hippocampus, else ~/.cache/keras_losses/hippocampus)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split, training and attacks (default: 0)"
    )


def reproduce(args) -> Path:
    """Train one model per loss (finished runs in ``<out>/models`` are reused), attack them
    all, and write ``report.md``, ``results.json`` and the figures into ``--out``."""
    from training import io

    bad = [v for v in args.losses if v not in LOSSES]
    if bad:
        raise SystemExit(f"--losses: unknown {bad}; choose from {', '.join(LOSSES)}")
    out = Path(args.out or "reports/robustness")
    train_over = dict(QUICK_TRAIN) if args.quick else {}
    attack_over = dict(QUICK_ATTACK) if args.quick else {}
    for key, value in (("epochs", args.epochs), ("max_volumes", args.max_volumes)):
        if value is not None:
            train_over[key] = value
    for key, value in (
        ("max_test_images", args.max_test_images),
        ("repetitions", args.repetitions),
    ):
        if value is not None:
            attack_over[key] = value
    started = time.time()
    runs, reused = [], []
    for loss in args.losses:
        cfg = HippocampusConfig(
            data_dir=args.data_dir,
            loss=loss,
            seed=args.seed,
            cache_dir=args.cache_dir,
            **train_over,
        )
        run = out / "models" / loss.replace("+", "-")
        if (run / "COMPLETED").exists() and (run / "best.keras").exists():
            log(f"{loss}: reusing the finished run {run}")
            reused.append(loss)
        else:
            log(f"{loss}: training into {run}")
            run_training(cfg, run, resume=run.exists(), overwrite=False)
        runs.append(run)
    train_s = time.time() - started
    acfg = AttackConfig(attack_seed=args.seed, **attack_over)
    results = run_evaluation(runs, out, acfg, data_dir=args.data_dir, cache_dir=args.cache_dir)
    results["claims"] = check_claims(results, acfg)
    results["settings"] = {
        "quick": bool(args.quick),
        "train": dataclasses.asdict(
            HippocampusConfig(data_dir=args.data_dir, seed=args.seed, **train_over)
        ),
        "attack": dataclasses.asdict(acfg),
        "train_seconds": round(train_s, 1),
        "reused_runs": reused,  # finished runs in <out>/models are not retrained (nor timed)
        "total_seconds": round(time.time() - started, 1),
    }
    results["settings"]["train"].pop("loss")
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", render_report(results))
    log(f"wrote {out / 'report.md'}")
    return out


def _at(xs, ys, x):
    """The y of the level nearest to x."""
    import numpy as np

    xs = np.asarray(xs, float)
    return float(np.asarray(ys)[int(np.argmin(np.abs(xs - x)))]), float(
        xs[int(np.argmin(np.abs(xs - x)))]
    )


def check_claims(results: dict, acfg: AttackConfig) -> list[dict]:
    """The paper's claims (issue 8), each held / not held / not checkable, with our numbers."""
    models = results["models"]
    claims = []

    def add(text, held, numbers):
        claims.append({"claim": text, "held": held, "numbers": numbers})

    clean = {k: m["clean_dice_foreground_slices"] for k, m in models.items()}
    if "dice" in clean:
        best_other = max((v for k, v in clean.items() if k != "dice"), default=clean["dice"])
        add(
            "Dice loss gives the best or equal clean Dice (equal: within 0.01)",
            clean["dice"] >= best_other - 0.01,
            {k: round(v, 4) for k, v in clean.items()},
        )
    if "dice" in models and "bce+dice" in models:
        d, v = _at(
            models["dice"]["value_sweep"]["values"], models["dice"]["value_sweep"]["dice"], 0.6
        )
        bd, _ = _at(
            models["bce+dice"]["value_sweep"]["values"],
            models["bce+dice"]["value_sweep"]["dice"],
            0.6,
        )
        add(
            f"At value 0.6 (N = {acfg.n_fixed}) Dice-loss is below 5 % Dice while BCE+Dice stays near 60 % (>= 50 %)",
            d < 0.05 and bd >= 0.5,
            {"value": round(v, 4), "dice": round(d, 4), "bce+dice": round(bd, 4)},
        )
        d, n = _at(
            models["dice"]["count_sweep"]["n_pixels"], models["dice"]["count_sweep"]["dice"], 30
        )
        bd, _ = _at(
            models["bce+dice"]["count_sweep"]["n_pixels"],
            models["bce+dice"]["count_sweep"]["dice"],
            30,
        )
        add(
            f"With 30 pixels set to {acfg.fixed_value:g}, Dice-loss falls to about 30 % (<= 40 %) while BCE+Dice stays above 70 %",
            d <= 0.4 and bd > 0.7,
            {"n_pixels": int(n), "dice": round(d, 4), "bce+dice": round(bd, 4)},
        )
    if "bce" in models and len(models) > 1:
        drops = {}
        for k, m in models.items():
            c = m["clean_dice_attacked_slices"]
            curves = [m["value_sweep"]["dice"], m["count_sweep"]["dice"], m["random_sweep"]["mean"]]
            drops[k] = round(float(sum(c - sum(cv) / len(cv) for cv in curves) / len(curves)), 4)
        add(
            "BCE degrades least (smallest mean Dice drop from clean over the curves of Figs. 3, 5 and 6)",
            drops["bce"] <= min(drops.values()),
            {"mean_drop": drops},
        )
    return claims


def render_report(results: dict) -> str:
    s = results["settings"]
    names = list(results["models"])
    lines = [
        "# Robustness of BCE / Dice / BCE+Dice / BCE+Dice+Focal to gradient pixel attacks",
        "",
        f"Reproduction of {PAPER} on MSD Task04 hippocampus "
        f"({'--quick settings' if s['quick'] else 'full settings'}).",
        "",
        f"- Test: {results['test_volumes']} volumes, {results['test_slices']} slices; attacks on "
        f"{results['attacked_slices']} test slices with foreground.",
        f"- Training: {json.dumps({k: s['train'][k] for k in ('epochs', 'batch_size', 'lr', 'depth', 'base_filters', 'size', 'max_volumes')})}",
        f"- Attacks: {json.dumps({k: s['attack'][k] for k in ('n_fixed', 'fixed_value', 'n_max', 'n_step', 'random_n_step', 'repetitions', 'max_test_images')})}",
        f"- Wall time: training {s['train_seconds']:.0f} s, total {s['total_seconds']:.0f} s"
        + (
            f" (finished runs reused, not retrained: {', '.join(s['reused_runs'])})."
            if s["reused_runs"]
            else "."
        ),
        f"- Dice: {results['dice']}.",
        "",
        "## Clean Dice",
        "",
        "| loss | foreground test slices | global (all test pixels) | attacked slices |",
        "|---|---|---|---|",
    ]
    for n in names:
        m = results["models"][n]
        lines.append(
            f"| {n} | {m['clean_dice_foreground_slices']:.3f} | {m['clean_dice_global']:.3f} | {m['clean_dice_attacked_slices']:.3f} |"
        )
    first = results["models"][names[0]]
    lines += [
        "",
        f"## Dice vs value, N = {first['value_sweep']['n_pixels']} (Figs. 2-3)",
        "",
        "| loss | " + " | ".join(f"{v:g}" for v in first["value_sweep"]["values"]) + " |",
        "|---|" + "---|" * len(first["value_sweep"]["values"]),
    ]
    for n in names:
        lines.append(
            f"| {n} | "
            + " | ".join(f"{d:.3f}" for d in results["models"][n]["value_sweep"]["dice"])
            + " |"
        )
    cs = first["count_sweep"]
    show = [i for i, k in enumerate(cs["n_pixels"]) if k % 10 == 0] or list(
        range(len(cs["n_pixels"]))
    )
    lines += [
        "",
        f"## Dice vs pixels set to {cs['value']:g} (Fig. 5)",
        "",
        "| loss | " + " | ".join(f"N={cs['n_pixels'][i]}" for i in show) + " |",
        "|---|" + "---|" * len(show),
    ]
    for n in names:
        d = results["models"][n]["count_sweep"]["dice"]
        lines.append(f"| {n} | " + " | ".join(f"{d[i]:.3f}" for i in show) + " |")
    rs = first["random_sweep"]
    lines += [
        "",
        f"## Dice vs pixels set to random values in [0, 1], mean +- std over {rs['repetitions']} repetitions (Fig. 6)",
        "",
        "| loss | " + " | ".join(f"N={k}" for k in rs["n_pixels"]) + " |",
        "|---|" + "---|" * len(rs["n_pixels"]),
    ]
    for n in names:
        r = results["models"][n]["random_sweep"]
        lines.append(
            f"| {n} | "
            + " | ".join(f"{m:.3f} +- {sd:.3f}" for m, sd in zip(r["mean"], r["std"], strict=True))
            + " |"
        )
    lines += ["", "## The paper's claims", "", "| claim | held? | our numbers |", "|---|---|---|"]
    for c in results["claims"]:
        lines.append(
            f"| {c['claim']} | {'held' if c['held'] else 'NOT held'} | `{json.dumps(c['numbers'])}` |"
        )
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in results["figures"]] + [""]
    return "\n".join(lines)

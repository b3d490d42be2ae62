"""The robustness reproduction: train each loss on three seeds, attack, aggregate, check the
claims, write ``results.json``, ``report.md`` and the figures."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from evaluation.claims import RULE as CLAIM_RULE
from evaluation.claims import markdown_table
from tasks.hippocampus.claims import check_claims
from tasks.hippocampus.config import (
    DEFAULT_DATA,
    LOSSES,
    QUICK_ATTACK,
    QUICK_TRAIN,
    SEEDS,
    AttackConfig,
    HippocampusConfig,
    log,
)
from tasks.hippocampus.evaluation import run_evaluation
from tasks.hippocampus.paper import PAPER
from tasks.hippocampus.seeds import aggregate, write_seed_figures
from tasks.hippocampus.training import run_training

# Figures of one seed (images, not curves): copied from <out>/seed-<first>/ into <out>.
SINGLE_SEED_FIGURES = (
    "hippocampus_fig1_gradients.png",
    "hippocampus_fig4_masks.png",
    "hippocampus_fig7_predictions.png",
)
# Settings a reused run must share with the run that would be trained now.
# (data_dir is compared as a resolved path, cache_dir not at all: it holds derived data only.)
RUN_KEYS = tuple(
    f.name for f in dataclasses.fields(HippocampusConfig) if f.name not in ("cache_dir", "data_dir")
)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; received {text!r}"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct seeds; received {text!r}")
    return seeds


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="MSD Task04_Hippocampus folder")
    parser.add_argument(
        "--losses",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(LOSSES),
        help=f"comma-separated losses to compare (default: {','.join(LOSSES)})",
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        default=list(SEEDS),
        help="comma-separated seeds; each seeds the split, initialisation, shuffling and attack "
        "draws; curves are mean +- sd over them (default: 0,1,2)",
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
        "--ranking",
        choices=("signed", "magnitude"),
        default=None,
        help="pixel ranking of the attacks (default: signed, the paper's 'N-highest gradient value')",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="per-volume decode cache (default: $KERAS_LOSSES_CACHE/hippocampus, else ~/.cache/keras_losses/hippocampus)",
    )


def _train_or_reuse(cfg: HippocampusConfig, run: Path) -> bool:
    """Train ``cfg`` into ``run`` unless a finished run with the same settings is there;
    returns True when reused. A finished run with other settings is an error, not reused."""
    from core import io

    if (run / "COMPLETED").exists() and (run / "best.keras").exists():
        old = io.read_json(run / "config.json")
        new = dataclasses.asdict(cfg)
        diff = {k: (old.get(k), new[k]) for k in RUN_KEYS if old.get(k) != new[k]}
        if Path(old.get("data_dir", "")).resolve() != Path(new["data_dir"]).resolve():
            diff["data_dir"] = (old.get("data_dir"), new["data_dir"])
        if diff:
            raise SystemExit(
                f"{run}: a finished run with other settings is there ({diff}, old vs new); "
                "choose another --out or delete it"
            )
        log(f"{cfg.loss} seed {cfg.seed}: reusing the finished run {run}")
        return True
    log(f"{cfg.loss} seed {cfg.seed}: training into {run}")
    run_training(cfg, run, resume=run.exists(), overwrite=False)
    return False


def _evaluate_or_reuse(runs, out: Path, acfg: AttackConfig, args) -> dict:
    """``run_evaluation`` of one seed's models, unless ``out`` holds the evaluation of the same
    model files (path and modification time) under the same attack settings."""
    from core import io

    stamp = {
        "attack": dataclasses.asdict(acfg),
        "models": {str(r / "best.keras"): (r / "best.keras").stat().st_mtime_ns for r in runs},
    }
    if (out / "metrics.json").exists() and (out / "evaluated.json").exists():
        if io.read_json(out / "evaluated.json") == json.loads(json.dumps(stamp)):
            log(f"reusing the evaluation in {out}")
            return io.read_json(out / "metrics.json")
    result = run_evaluation(runs, out, acfg, data_dir=args.data_dir, cache_dir=args.cache_dir)
    io.write_json(out / "evaluated.json", stamp)
    return result


def _history(run: Path) -> list[float]:
    """Validation Dice per epoch (the training Dice when the split has no validation volume)."""
    import csv

    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = "val_dice" if rows and rows[0].get("val_dice") not in (None, "") else "dice"
    return [float(r[key]) for r in rows]


def reproduce(args) -> Path:
    """Per seed: train one model per loss (finished runs in ``<out>/models`` are reused),
    attack them all (``<out>/seed-<s>/metrics.json``); then mean +- sd over seeds of every
    curve point, the claims, and ``results.json``, ``report.md`` and the figures in ``--out``."""
    from core import io

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
        ("ranking", args.ranking),
    ):
        if value is not None:
            attack_over[key] = value
    started = time.time()
    per_seed, histories, reused = [], [], []
    for seed in args.seeds:
        runs = []
        for loss in args.losses:
            cfg = HippocampusConfig(
                data_dir=args.data_dir, loss=loss, seed=seed, cache_dir=args.cache_dir, **train_over
            )
            run = out / "models" / f"seed-{seed}" / loss.replace("+", "-")
            if _train_or_reuse(cfg, run):
                reused.append(f"{loss} seed {seed}")
            runs.append(run)
        acfg = AttackConfig(attack_seed=seed, **attack_over)
        per_seed.append(_evaluate_or_reuse(runs, out / f"seed-{seed}", acfg, args))
        histories.append({loss: _history(run) for loss, run in zip(args.losses, runs, strict=True)})
    acfg = AttackConfig(attack_seed=args.seeds[0], **attack_over)
    models = aggregate(per_seed, histories)
    results = {
        "paper": PAPER,
        "seeds": args.seeds,
        "spread": "sd = sample standard deviation over seeds (ddof 1)",
        "dice": per_seed[0]["dice"],
        "pooled_dice": per_seed[0]["pooled_dice"],
        "test_volumes": [r["test_volumes"] for r in per_seed],
        "test_slices": [r["test_slices"] for r in per_seed],
        "attacked_slices": [r["attacked_slices"] for r in per_seed],
        "models": models,
        "claims": check_claims(models, acfg.n_fixed, acfg.fixed_value),
    }
    figures = write_seed_figures(out, models, acfg.n_fixed, len(args.seeds))
    for name in SINGLE_SEED_FIGURES:
        src = out / f"seed-{args.seeds[0]}" / name
        if src.exists():
            shutil.copyfile(src, out / name)
            figures.append(out / name)
    results["figures"] = sorted(f.name for f in figures)
    results["settings"] = {
        "quick": bool(args.quick),
        "train": {
            k: v
            for k, v in dataclasses.asdict(
                HippocampusConfig(data_dir=args.data_dir, **train_over)
            ).items()
            if k not in ("loss", "seed")
        },
        "attack": {k: v for k, v in dataclasses.asdict(acfg).items() if k != "attack_seed"},
        "reused_runs": reused,  # finished runs in <out>/models are not retrained
        "total_seconds": round(time.time() - started, 1),
    }
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", render_report(results))
    log(f"wrote {out / 'results.json'}, {out / 'report.md'} and {len(figures)} figures")
    return out


def _ms(s, i=None, digits=3) -> str:
    m, sd = (s["mean"], s["sd"]) if i is None else (s["mean"][i], s["sd"][i])
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _sweep_table(results: dict, names, sweep: str, title: str, headers, columns) -> list[str]:
    """One markdown table of a sweep: a row per loss, mean ± sd over seeds at each column."""
    lines = [
        "",
        f"## {title}",
        "",
        "| loss | " + " | ".join(headers) + " |",
        "|---|" + "---|" * len(headers),
    ]
    for name in names:
        d = results["models"][name][sweep]["dice"]
        lines.append(f"| {name} | " + " | ".join(_ms(d, i) for i in columns) + " |")
    return lines


def render_report(results: dict) -> str:
    s = results["settings"]
    names = list(results["models"])
    n = len(results["seeds"])
    first = results["models"][names[0]]
    tr = s["train"]
    lines = [
        "# Robustness of BCE / Dice / BCE+Dice / BCE+Dice+Focal to gradient pixel attacks",
        "",
        f"Reproduction of {PAPER} on MSD Task04 hippocampus "
        f"({'--quick settings' if s['quick'] else 'full settings'}); every number is the mean ± sd "
        f"over {n} seeds ({', '.join(map(str, results['seeds']))}).",
        "",
        f"- Test per seed: {results['test_volumes']} volumes, {results['test_slices']} slices; "
        f"attacks on {results['attacked_slices']} test slices with foreground.",
        f"- Training: {json.dumps({k: tr[k] for k in ('epochs', 'batch_size', 'lr', 'depth', 'base_filters', 'size', 'max_volumes', 'scaling', 'dice_smooth', 'dice_per_image')})}",
        f"- Attacks: {json.dumps({k: s['attack'][k] for k in ('n_fixed', 'fixed_value', 'n_max', 'n_step', 'random_n_step', 'repetitions', 'max_test_images', 'ranking')})}",
        f"- Wall time {s['total_seconds']:.0f} s"
        + (f" (finished runs reused: {len(s['reused_runs'])})." if s["reused_runs"] else "."),
        f"- Dice: {results['dice']}; pooled: {results['pooled_dice']}.",
        "",
        "## Convergence (validation Dice, pooled, per epoch)",
        "",
        "| loss | plateau epoch per seed | best epoch per seed | ended on the plateau |",
        "|---|---|---|---|",
    ]
    for name in names:
        t = results["models"][name]["training"]
        lines.append(
            f"| {name} | {t['plateau_epoch']} | {t['best_epoch']} | "
            f"{sum(t['converged'])}/{len(t['converged'])} seeds |"
        )
    lines += [
        "",
        "## Clean Dice",
        "",
        "| loss | foreground test slices | pooled (all test pixels) | attacked slices | median logit in mask |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        m = results["models"][name]
        lines.append(
            f"| {name} | {_ms(m['clean_dice_foreground_slices'])} | {_ms(m['clean_dice_pooled'])} | "
            f"{_ms(m['clean_dice_attacked_slices'])} | {_ms(m['median_logit_in_mask'], digits=2)} |"
        )
    vs, cs, rs = first["value_sweep"], first["count_sweep"], first["random_sweep"]
    lines += _sweep_table(
        results, names, "value_sweep", f"Dice vs value, N = {vs['n_pixels']} (Figs. 2-3)",
        [f"v={v:g}" for v in vs["values"]], range(len(vs["values"])),
    )  # fmt: skip
    show = [i for i, k in enumerate(cs["n_pixels"]) if k % 10 == 0] or range(len(cs["n_pixels"]))
    lines += _sweep_table(
        results, names, "count_sweep", f"Dice vs pixels set to {cs['value']:g} (Fig. 5)",
        [f"N={cs['n_pixels'][i]}" for i in show], show,
    )  # fmt: skip
    lines += _sweep_table(
        results, names, "random_sweep",
        f"Dice vs pixels set to random values in [0, 1], {rs['repetitions']} repetitions per seed (Fig. 6)",
        [f"N={k}" for k in rs["n_pixels"]], range(len(rs["n_pixels"])),
    )  # fmt: skip
    lines += [
        "",
        "## The paper's claims",
        "",
        f"Rule: {CLAIM_RULE}. Effects are paired differences per seed (same split and attacked "
        "slices for every loss), in Dice.",
        "",
        *markdown_table(results["claims"]),
    ]
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in results["figures"]] + [""]
    return "\n".join(lines)

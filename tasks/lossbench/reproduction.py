"""``reproduce.py loss-benchmark``: every loss x task x seed, then results.json, report, figures."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from tasks.lossbench.config import QUICK, BenchConfig, log
from training.config import add_arguments, from_args

RULES = {
    "recipe": "one U-Net, one optimiser (Adam), one batch size and one step budget for every loss",
    "stopping": (
        "validation mean foreground Dice after every epoch of steps_per_epoch steps; stop after "
        "patience epochs without a gain above min_delta, or at max_epochs; the best validation "
        "epoch is tested"
    ),
    "dice": "per test case (hippocampus: volume; lung: patch) with a non-empty label, per class",
    "hd95": (
        "per test case and class in mm (hippocampus: 3D on the stacked slice predictions with the "
        "volume's voxel spacing; lung: 2D, 2 mm); label and prediction both empty: left out; one "
        "of them empty: the image diagonal in mm; counted in results.json"
    ),
}


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_arguments(parser, BenchConfig)
    parser.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="train at most this many new runs in this sitting (runs already done are read back); "
        "rerun the same command to continue",
    )


def config_from_args(args) -> BenchConfig:
    overrides = {}
    if args.quick:
        given = {k for k, v in vars(args).items() if v is not None}
        overrides = {k: v for k, v in QUICK.items() if k not in given}
    return from_args(BenchConfig, args, **overrides)


def reproduce(args) -> Path:
    from core import io
    from evaluation.claims import summary_line
    from tasks.lossbench import claims, report
    from tasks.lossbench.data import load_task
    from tasks.lossbench.losses import SPECS, available, specs_for
    from tasks.lossbench.runs import METRICS_FILE, run_dir_of, run_one

    cfg = config_from_args(args)
    out = Path(args.out or ("runs/loss-benchmark-quick" if args.quick else "runs/loss-benchmark"))
    out.mkdir(parents=True, exist_ok=True)
    plan = [(t, s, spec) for t in cfg.tasks for s in cfg.seeds for spec in specs_for(t, cfg.losses)]
    missing_classes = [f"{s.name} ({s.library_class})" for s in SPECS if not available(s)]
    if missing_classes:
        log(f"not in this keras_losses, not run: {', '.join(missing_classes)}")
    done = sum((run_dir_of(out, t, spec, s) / METRICS_FILE).exists() for t, s, spec in plan)
    log(f"{len(plan)} runs planned, {done} done; output {out}")
    runs: dict = {}
    new, cpu = 0, 0.0
    loaded = None
    for task, seed, spec in plan:
        path = run_dir_of(out, task, spec, seed)
        if not (path / METRICS_FILE).exists():
            if args.max_runs is not None and new >= args.max_runs:
                continue
            new += 1
        if loaded is None or loaded[:2] != (task, seed):
            loaded = (task, seed, load_task(task, cfg, seed))
        start = time.process_time()
        metrics = run_one(cfg, spec, loaded[2], seed, out)
        cpu += time.process_time() - start
        runs.setdefault(task, {}).setdefault(spec.name, {})[str(seed)] = metrics
    missing = [
        f"{t}/{spec.name}/seed{s}"
        for t, s, spec in plan
        if str(s) not in runs.get(t, {}).get(spec.name, {})
    ]
    summary = report.summarise(runs)
    verdicts = claims.judge(runs, {spec.name: spec.group for spec in SPECS})
    results = {
        "config": dataclasses.asdict(cfg),
        "quick": bool(args.quick),
        "rules": RULES,
        "runs": runs,
        "summary": summary,
        "claims_declared": claims.declarations(),
        "claims": verdicts,
        "remaining_runs": missing,
        "losses_not_available": missing_classes,
        "cpu_seconds_this_sitting": round(cpu, 1),
    }
    io.write_json(out / "results.json", results)
    figure = report.figure(runs, out / "loss_benchmark.png") if runs else None
    curves = report.curves(runs, out / "loss_benchmark_curves.png") if runs else None
    text = [
        "# Loss benchmark" + (" (--quick: pipeline check, not results)" if args.quick else ""),
        "",
        report.table(summary),
        "Claims (the shared rule, evaluation/claims.py):",
        "",
        *[f"- {name}: {summary_line(v)}" for name, v in verdicts.items()],
        "",
        f"Runs remaining: {len(missing)} of {len(plan)}"
        + (f" (first: {missing[0]})" if missing else ""),
        "",
    ]
    if figure:
        text += [f"![Dice vs HD95]({figure.name})", f"![validation curves]({curves.name})", ""]
    io.write_text(out / "report.md", "\n".join(text))
    log(
        f"{len(plan) - len(missing)}/{len(plan)} runs done; {out / 'report.md'}; "
        f"CPU {cpu:.0f} s in this sitting"
    )
    return out

"""The nodules reproduction: every model of Table 1 over seeds, and its report."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from tasks.nodules.config import GENERATOR_FIELDS, NodulesConfig, log
from tasks.nodules.evaluation import (
    _dist_name,
    embedding_panel,
    load_run,
    make_test_set,
    predict_report,
    saliency_row,
)
from tasks.nodules.paper import N_SAMPLES, N_TEST, PAPER, TABLE1
from tasks.nodules.sets import training_data
from tasks.nodules.training import train_model, training_fit_light

# `reproduce.py nodules --quick`: one seed, fewer epochs; sized for a shared 2-core CPU.
QUICK = {"seeds": 1, "epochs": 30}


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--seeds", type=int, default=None, help="seeds to average Table 1 over (default 3; --quick: 1)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of each stage (default {PAPER}: 100; --quick: 30)")
    parser.add_argument("--n-samples", type=int, default=N_SAMPLES, help=f"training-distribution samples ({PAPER}: 200)")
    parser.add_argument("--n-test", type=int, default=N_TEST, help=f"samples per test distribution ({PAPER}: 200)")
    parser.add_argument("--image-size", type=int, default=None, help="image size in pixels (default: the train.py default, 32; docs/nodules.md says how it was chosen)")
    parser.add_argument("--encoder", default=None, choices=("classic", "modern"), help="LeNet-5 encoder (default classic: tanh, average pooling)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="any other train.py setting of every run, by its config name, e.g. --set noise_on=image --set spikes=7 "
        "(benchmarks/nodules_choices.py uses it for the measured choices of docs/nodules.md)",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST_SEED .. FIRST_SEED+SEEDS-1 (default 0)")
    parser.add_argument(
        "--light-fit", action="store_true",
        help="train without per-epoch checkpoints and backups (about 2.3x less CPU, the same models; a run "
        "cannot be resumed in the middle of a stage)",
    )
    parser.add_argument("--resume", action="store_true", help="keep finished runs in OUT/runs and train only the rest")


def _training_runs():
    """The models Table 1 needs: (scenario, train dist, loss), in table order."""
    seen = []
    for scenario, train, _, loss, _ in TABLE1:
        if (scenario, train, loss) not in seen:
            seen.append((scenario, train, loss))
    return seen


FIXED_BY_FLAGS = ("loss", "train_dist", "n_samples", "epochs", "seed")


def run_overrides(args) -> dict:
    """The NodulesConfig fields every run of the reproduction sets, from --image-size,
    --encoder and --set FIELD=VALUE (typed like the field's default)."""
    defaults = dataclasses.asdict(NodulesConfig())
    allowed = sorted(k for k in defaults if k not in FIXED_BY_FLAGS)
    overrides = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in allowed:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(allowed)}")
        kind = type(defaults[key]) if defaults[key] is not None else int
        try:
            overrides[key] = kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ValueError(f"--set {item!r}: {key} expects a {kind.__name__}; received {value!r}") from None
    for key in ("image_size", "encoder"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return overrides


def _check_resumed(conf: dict, cfg: NodulesConfig, run_path: Path) -> None:
    """A finished run reused by --resume must have been trained with this reproduction's settings."""
    wanted = dataclasses.asdict(cfg)
    # Settings older runs lack had the value NoduleSpec / the encoder had then.
    old = {
        "encoder": "modern", "head_init": "glorot", "head_output": "softmax2", "noise_on": "foreground",
        "scale": 0.08, "anisotropy": 0.05, "spikes": 11, "spike_height": 0.6,
    }
    for key in ("image_size", "encoder", "head_lr", "head_init", "head_output", *GENERATOR_FIELDS):
        if conf.get(key, old.get(key)) != wanted[key]:
            raise ValueError(
                f"--resume: {run_path} was trained with {key}={conf.get(key, old.get(key))!r}, this reproduction "
                f"asks for {wanted[key]!r}; use another --out"
            )


def _mean_sd(values):
    import numpy as np

    v = np.asarray(values, float)
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def reproduce(args) -> Path:
    """Train every model of Table 1 for each seed, evaluate, write report.md, results.json,
    details.json and the figures (from the first seed) into ``--out``."""
    import os

    from core import io
    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure

    seeds = args.seeds or (QUICK["seeds"] if args.quick else 3)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else 100)
    if seeds < 1 or epochs < 1:
        raise ValueError(f"--seeds and --epochs must be >= 1; received {seeds} and {epochs}")
    out = Path(args.out or "reports/nodules")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise FileExistsError(f"--out {out} already exists; pass --resume to reuse its finished runs, or remove it")
    overrides = run_overrides(args)
    first = int(getattr(args, "first_seed", 0) or 0)
    fit = training_fit_light if getattr(args, "light_fit", False) else None
    out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.time(), _cpu_seconds()
    load = os.getloadavg()[0]
    per_seed = {}  # (scenario, train, test, loss) -> list of reports
    fit_rows = {}  # (scenario, train, loss) -> per seed: training-set acc, se, sp and validation acc
    panels, sal_rows = [], []
    for seed in range(first, first + seeds):
        test_cache = {}
        for scenario, train, loss in _training_runs():
            cfg = NodulesConfig(
                loss=loss, train_dist=list(train), n_samples=args.n_samples, epochs=epochs, seed=seed, **overrides
            )
            run_path = out / "runs" / f"seed{seed}" / f"s{scenario}-{loss}"
            if args.resume and (run_path / "COMPLETED").exists():
                log(f"seed {seed}: S{scenario} {loss} already trained in {run_path}")
                model, conf = load_run(run_path)
                _check_resumed(conf, cfg, run_path)
            else:
                log(f"seed {seed}: S{scenario} {loss} on {_dist_name(train)}")
                model = train_model(cfg, run_path, resume=args.resume, verbose=0, fit=fit)[1]
                conf = dataclasses.asdict(cfg)
            tests = [row[2] for row in TABLE1 if row[0] == scenario and row[3] == loss]
            x_tr, y_tr, x_va, y_va = training_data(conf)
            sets = {"train": (x_tr, y_tr)}
            val_acc = predict_report(model, x_va, y_va)["acc"]
            # Table 1's caption: "For the training set, all metrics have a value of 1.00".
            train_report = predict_report(model, x_tr, y_tr)
            fit_rows.setdefault((scenario, train, loss), []).append(
                {"seed": seed, "train": {k: train_report[k] for k in ("acc", "se", "sp")}, "val_acc": val_acc}
            )
            for dist in tests:
                if dist not in test_cache:
                    test_cache[dist] = make_test_set(conf, dist, seed, args.n_test)
                x, y = test_cache[dist]
                sets[_dist_name(dist)] = (x, y)
                report = {**predict_report(model, x, y), "val_acc": val_acc}
                per_seed.setdefault((scenario, train, dist, loss), []).append(report)
                log(f"  test {_dist_name(dist)}: acc {report['acc']:.3f} se {report['se']:.3f} sp {report['sp']:.3f}")
            if seed == first:
                title = f"S{scenario} {loss}, train {_dist_name(train)}"
                panels.append(embedding_panel(model, title, sets))
                sal_rows.append((f"S{scenario} {loss}", saliency_row(model, sets, conf.get("saliency", "score"))))
    elapsed, cpu = time.time() - start, _cpu_seconds() - cpu_start

    rows, details = [], []
    for scenario, train, test, loss, paper in TABLE1:
        reports = per_seed[(scenario, train, test, loss)]
        acc, acc_sd = _mean_sd([r["acc"] for r in reports])
        se, se_sd = _mean_sd([r["se"] for r in reports])
        sp, sp_sd = _mean_sd([r["sp"] for r in reports])
        rows.append({
            "scenario": scenario, "train": list(train), "test": list(test), "loss": loss,
            "acc": acc, "se": se, "sp": sp, "acc_sd": acc_sd,
            "paper": {"acc": paper[0], "se": paper[1], "sp": paper[2]},
        })
        details.append({**rows[-1], "se_sd": se_sd, "sp_sd": sp_sd, "per_seed": reports})
    training_rows = []
    for (scenario, train, loss), reports in fit_rows.items():
        training_rows.append({
            "scenario": scenario, "train": list(train), "loss": loss,
            **{k: _mean_sd([r["train"][k] for r in reports])[0] for k in ("acc", "se", "sp")},
            "acc_min": min(r["train"]["acc"] for r in reports),
            "val_acc": _mean_sd([r["val_acc"] for r in reports])[0],
            "val_acc_min": min(r["val_acc"] for r in reports),
            "per_seed": reports,
            "paper": "1.00 (Table 1 caption: 'For the training set, all metrics have a value of 1.00')",
        })
    claims = judge_rows(rows, details)
    io.write_json(out / "results.json", {"rows": rows, "training_sets": training_rows, "claims": claims})
    run_cfg = dataclasses.asdict(cfg)  # the last run's; every field but loss/train_dist/seed is shared
    settings = {
        "seeds": seeds, "first_seed": first, "epochs": epochs, "n_samples": args.n_samples, "n_test": args.n_test,
        "image_size": run_cfg["image_size"], "encoder": run_cfg["encoder"], "quick": bool(args.quick),
        "head_output": run_cfg["head_output"], "saliency": run_cfg["saliency"],
        "batch_size": run_cfg["batch_size"], "lr": run_cfg["lr"], "head_lr": run_cfg["head_lr"],
        "generator": {k: run_cfg[k] for k in GENERATOR_FIELDS}, "overrides": overrides,
        "light_fit": fit is not None,
        "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 1), "load_average_at_start": round(load, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    io.write_json(out / "details.json", {"settings": settings, "rows": details})
    io.save_figure(embedding_figure(panels, n_cols=3), out / "fig2_embedding_pca.png", dpi=80)
    io.save_figure(saliency_figure(sal_rows, f"Gradient saliency (Simonyan et al., {settings['saliency']}), seed {first}"), out / "fig3_saliency.png", dpi=80)
    io.write_text(out / "report.md", report_markdown(rows, details, settings, training_rows, claims))
    log(f"Table 1 reproduced in {elapsed / 60:.1f} min -> {out / 'report.md'}")
    return out


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its threads (the load-independent measure)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# A row of Table 1 "passes" when its accuracy is at least PASS (the side of it each paper row is on
# is the paper's finding for that row: generalises or fails).
PASS = 0.8


def judge_rows(rows, details) -> list[dict]:
    """Each row of Table 1 as a claim of the shared rule (:mod:`evaluation.claims`): the per-seed
    accuracy minus PASS lies on the paper's side of 0, the paper's accuracy minus PASS its effect."""
    from evaluation.claims import Claim

    out = []
    for r, d in zip(rows, details, strict=True):
        p = r["paper"]["acc"]
        claim = Claim(
            f"S{r['scenario']} {r['loss']} D({r['train'][0]},{r['train'][1]}) -> D({r['test'][0]},{r['test'][1]})",
            f"test accuracy minus {PASS}",
            paper=f"accuracy {p:.2f} (Table 1)",
            direction="greater" if p >= PASS else "less",
            paper_effect=round(p - PASS, 6),
            note=f"{'generalises' if p >= PASS else 'fails'}: the paper's row is on this side of {PASS}",
        )
        out.append(claim.judge([x["acc"] - PASS for x in d["per_seed"]]))
    return out


def report_markdown(rows, details, settings, training_rows=(), claims=()) -> str:
    """report.md: our Table 1 beside the paper's, the settings and the figures."""
    s = settings
    lines = [
        f"# Table 1 of {PAPER}: CE vs contrastive loss under distribution shift",
        "",
        f"Settings: {s['seeds']} seed(s), {s['epochs']} epochs per stage, {s['n_samples']} training-distribution "
        f"samples (85 % train / 15 % validation), {s['n_test']} test samples per distribution, "
        f"{s['image_size']}x{s['image_size']} images, {s['encoder']} LeNet-5, {s['head_output']} head, batch {s['batch_size']}, Adam lr {s['lr']} "
        f"(head on the frozen contrastive encoder: {s['head_lr']})"
        + (" (--quick)" if s["quick"] else "") + ".",
        f"Generator: {', '.join(f'{k} {v}' for k, v in s['generator'].items())}. Seeds {s['first_seed']}.."
        f"{s['first_seed'] + s['seeds'] - 1}.",
        f"Wall time {s['seconds'] / 60:.1f} min, CPU time {s['cpu_seconds'] / 60:.1f} min, on {s['cpus']} CPU(s) (load average {s['load_average_at_start']} at "
        f"start, {s['load_average_at_end']} at end). Malignant is the positive class; mean (sd) over seeds.",
        "",
        "| S | train | test | loss | acc | se | sp | paper acc | paper se | paper sp |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, d in zip(rows, details, strict=True):
        p = r["paper"]
        lines.append(
            f"| {r['scenario']} | D({r['train'][0]},{r['train'][1]}) | D({r['test'][0]},{r['test'][1]}) | {r['loss']} "
            f"| {r['acc']:.2f} ({r['acc_sd']:.2f}) | {r['se']:.2f} ({d['se_sd']:.2f}) | {r['sp']:.2f} ({d['sp_sd']:.2f}) "
            f"| {p['acc']:.2f} | {p['se']:.2f} | {p['sp']:.2f} |"
        )
    if claims:
        from evaluation.claims import RULE, summary_line

        lines += ["", f"Each row as a claim (accuracy minus {PASS} on the paper's side), by the shared rule ({RULE}):", ""]
        lines += [f"- {c['claim']}: {summary_line(c, 2)}" for c in claims]
    if training_rows:
        lines += [
            "",
            "Training sets (the paper: 'all metrics have a value of 1.00'); mean over seeds, lowest seed in brackets:",
            "",
            "| S | train | loss | train acc | train se | train sp | validation acc |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in training_rows:
            lines.append(
                f"| {t['scenario']} | D({t['train'][0]},{t['train'][1]}) | {t['loss']} | {t['acc']:.2f} ({t['acc_min']:.2f}) "
                f"| {t['se']:.2f} | {t['sp']:.2f} | {t['val_acc']:.2f} ({t['val_acc_min']:.2f}) |"
            )
    lines += [
        "",
        "Fig. 2: PCA of the encoder's last layer (fitted on the training set), training set dark, test sets light, "
        "malignant red x, benign blue o, 2-sd ellipses (first seed).",
        "",
        "![PCA of embeddings](fig2_embedding_pca.png)",
        "",
        "Fig. 3: gradient saliency maps for training and test examples (first seed).",
        "",
        "![Saliency](fig3_saliency.png)",
        "",
    ]
    return "\n".join(lines)

"""Beyond the paper: CE vs contrastive loss on real LIDC-IDRI nodules (``reproduce.py nodules-real``).

Trains both models of the synthetic study (CE end to end; siamese contrastive encoder, then
the head) on each real scenario of :mod:`tasks.nodules.real` for each seed, with the same
training code (:func:`tasks.nodules.training.train_model`), evaluates them on the held-out
patients' test sets (:func:`tasks.nodules.evaluation.evaluate_real_model`), and writes report.md (the Table-1-like table and the verdict on the
paper's prediction), results.json, details.json and the PCA / saliency figures.

    python reproduce.py nodules-real --data-dir ../shared/data/lidc_nodules --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from tasks.nodules.config import REAL_SCENARIOS, NodulesConfig, log
from tasks.nodules.paper import PAPER, TABLE1
from tasks.nodules.real import (
    SCENARIO_TEXT,
    SCENARIOS,
    attribute_counts,
    nodules_of,
)

LOSSES = ("ce", "contrastive")
QUICK = {"seeds": 1, "epochs": 30}
# The synthetic rows the real tests answer to (paper's Table 1): the tie reversed at test time is
# S2 -> D(150,190) (the intensity order of training flipped); a tie broken is S1 -> D(170,130).
SYNTHETIC_ANALOGUE = {"tie reversed": (2, (180, 160), (150, 190)), "tie broken": (1, (150, 150), (170, 130))}


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--data-dir", required=True, help="folder of nodule volumes: image/, nodule_mask/, nodules.csv (../shared/data/lidc_nodules)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (patient split, sampling, initialisation) to average over (default 3; --quick: 1)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST_SEED .. FIRST_SEED+SEEDS-1 (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of each stage (default {PAPER}: 100; --quick: 30)")
    parser.add_argument("--scenarios", nargs="+", default=list(REAL_SCENARIOS), choices=REAL_SCENARIOS, help="real scenarios to run (default: all)")
    parser.add_argument(
        "--head-init", default=None, choices=("glorot", "zeros"),
        help="initial weights of the head g (default: train.py's --head-init; docs/nodules.md)",
    )
    parser.add_argument(
        "--head-lr", type=float, default=None,
        help=f"Adam learning rate of the head g on the frozen contrastive encoder (default: train.py's, {PAPER}'s 1e-4)",
    )
    parser.add_argument("--cache-dir", default=None, help="folder of the crop cache (default: OUT/cache)")
    parser.add_argument(
        "--checkpoint-fit", action="store_true",
        help="train with per-epoch checkpoints (resumable mid-stage; about 2.3x the CPU); default: the light fit, the same models",
    )
    parser.add_argument("--resume", action="store_true", help="keep finished runs in OUT/runs and train only the rest")


def _mean_sd(values):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def reproduce(args) -> Path:
    import os

    from core import io
    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure
    from tasks.nodules.evaluation import (
        embedding_panel,
        evaluate_real_model,
        figure_sets,
        load_run,
        saliency_row,
    )
    from tasks.nodules.reproduction import _cpu_seconds
    from tasks.nodules.training import train_model, training_fit_light

    seeds = args.seeds or (QUICK["seeds"] if args.quick else 3)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else 100)
    if seeds < 1 or epochs < 1:
        raise ValueError(f"--seeds and --epochs must be >= 1; received {seeds} and {epochs}")
    out = Path(args.out or "reports/nodules-real")
    if out.exists() and any(p.name != "cache" for p in out.iterdir()) and not args.resume:
        raise FileExistsError(f"--out {out} already exists; pass --resume to reuse its finished runs, or remove it")
    cache_dir = str(args.cache_dir or out / "cache")
    fit = None if args.checkpoint_fit else training_fit_light
    first = int(args.first_seed)
    start, cpu_start, load = time.time(), _cpu_seconds(), os.getloadavg()[0]
    base = dict(data_dir=str(args.data_dir), epochs=epochs, cache_dir=cache_dir)
    if args.head_init:
        base["head_init"] = args.head_init
    if args.head_lr:
        base["head_lr"] = args.head_lr
    found = nodules_of(dataclasses.asdict(NodulesConfig(**base)))
    per_seed, panels, sal_rows, runs = {}, [], [], {}
    for seed in range(first, first + seeds):
        for scenario in args.scenarios:
            for loss in LOSSES:
                cfg = NodulesConfig(loss=loss, scenario=scenario, seed=seed, **base)
                conf = dataclasses.asdict(cfg)
                run_path = out / "runs" / f"seed{seed}" / f"{scenario}-{loss}"
                if args.resume and (run_path / "COMPLETED").exists():
                    log(f"seed {seed}: {scenario} {loss} already trained in {run_path}")
                    model, old = load_run(run_path)
                    # Runs saved before head_init existed used Keras's glorot initialisation.
                    if any(old.get(k, {"head_init": "glorot", "head_output": "softmax2"}.get(k)) != conf[k] for k in ("scenario", "epochs", "image_size", "pixel_spacing", "hu_min", "hu_max", "test_fraction", "head_init", "head_lr", "head_output")):
                        raise ValueError(f"--resume: {run_path} was trained with other settings; use another --out")
                else:
                    log(f"seed {seed}: {scenario} ({SCENARIO_TEXT[scenario]}), {loss}")
                    model = train_model(cfg, run_path, resume=args.resume, verbose=0, fit=fit)[1]
                runs[(seed, scenario, loss)] = str(run_path)
                val = (io.read_json(run_path / "COMPLETED") if (run_path / "COMPLETED").is_file() else {}).get("val_acc")
                sets = figure_sets(conf)
                for row in evaluate_real_model(model, conf, probe_on=sets["train"]):
                    row["val_acc"] = val
                    per_seed.setdefault((scenario, row["test"], loss), []).append(row)
                    log(f"  {row['test']}: acc {row['acc']:.3f} balanced {row['balanced_acc']:.3f} se {row['se']:.3f} sp {row['sp']:.3f} r(p,HU) {row['r_hu']:.2f}")
                if seed == first:
                    panels.append(embedding_panel(model, f"{scenario} {loss}", sets))
                    sal_rows.append((f"{scenario} {loss}", saliency_row(model, sets, cfg.saliency)))
    elapsed, cpu = time.time() - start, _cpu_seconds() - cpu_start

    rows = []
    for scenario in args.scenarios:
        for test in SCENARIOS[scenario][1]:
            for loss in LOSSES:
                reports = per_seed[(scenario, test, loss)]
                row = {"scenario": scenario, "train": SCENARIO_TEXT[scenario], "test": test, "loss": loss, "n_seeds": len(reports)}
                for key in ("acc", "balanced_acc", "se", "sp", "r_hu", "r_label", "n_malignant", "n_benign", "probe_balanced_acc"):
                    row[key], row[f"{key}_sd"] = _mean_sd([r.get(key, float("nan")) for r in reports])
                row["one_class_seeds"] = sum(bool(r.get("one_class")) for r in reports)
                rows.append(row)
    settings = {
        "seeds": seeds, "first_seed": first, "epochs": epochs, "scenarios": list(args.scenarios),
        "light_fit": fit is not None, "quick": bool(args.quick), "data_dir": str(args.data_dir),
        "nodules": len(found.info), "skipped": found.skipped, "attribute_counts": attribute_counts(found.info, found.labels),
        **{k: dataclasses.asdict(cfg)[k] for k in ("image_size", "pixel_spacing", "hu_min", "hu_max", "val_fraction", "test_fraction", "lr", "head_lr", "head_init", "head_output", "batch_size", "encoder")},
        "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 1), "load_average_at_start": round(load, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    verdict = verdict_of(rows)
    io.write_json(out / "results.json", {"rows": rows, "verdict": verdict})
    io.write_json(out / "details.json", {
        "settings": settings, "runs": {f"seed{k[0]}/{k[1]}-{k[2]}": v for k, v in runs.items()},
        "per_seed": [{"scenario": k[0], "test": k[1], "loss": k[2], "reports": v} for k, v in per_seed.items()],
    })
    io.save_figure(embedding_figure(panels, n_cols=2), out / "fig_real_pca.png", dpi=80)
    io.save_figure(saliency_figure(sal_rows, f"Gradient saliency on real nodules, seed {first}"), out / "fig_real_saliency.png", dpi=80)
    io.write_text(out / "report.md", report_markdown(rows, verdict, settings))
    log(f"real-nodule study done in {elapsed / 60:.1f} min ({cpu / 60:.1f} CPU-min) -> {out / 'report.md'}")
    return out


def _row(rows, scenario, test, loss):
    return next((r for r in rows if (r["scenario"], r["test"], r["loss"]) == (scenario, test, loss)), None)


def verdict_of(rows) -> dict:
    """The paper's prediction, answered from the rows. Balanced accuracy is the measure (chance
    0.5 whatever the class mix; the paper's balanced test sets make its accuracy the same thing).

    worse_than_synthetic: per loss, the real OOD test against its synthetic analogue in the
    paper's Table 1 (SYNTHETIC_ANALOGUE). cue_differs: CE and contrastive differ on a test when
    their mean balanced accuracies differ by more than twice the standard error of the difference
    over seeds (sd / sqrt(n) from each)."""
    paper = {(s, tr, te, loss): v[0] for s, tr, te, loss, v in TABLE1}
    out = {"measure": "balanced accuracy (mean over seeds)", "ood": [], "cue": []}
    for test, (s, tr, te) in SYNTHETIC_ANALOGUE.items():
        for loss in LOSSES:
            scenario = "texture" if test == "tie reversed" else "calcification"
            r = _row(rows, scenario, test, loss)
            kept = _row(rows, scenario, "tie kept", loss)
            if r is None:
                continue
            syn = paper[(s, tr, te, loss)]
            out["ood"].append({
                "scenario": scenario, "test": test, "loss": loss, "real": r["balanced_acc"], "real_sd": r["balanced_acc_sd"],
                "real_in_distribution": kept["balanced_acc"] if kept else None,
                "synthetic_paper": syn, "synthetic_row": f"S{s} -> D({te[0]},{te[1]})", "worse_than_synthetic": r["balanced_acc"] < syn,
            })
    for r in rows:
        if r["loss"] != "ce":
            continue
        c = _row(rows, r["scenario"], r["test"], "contrastive")
        se = np.sqrt((r["balanced_acc_sd"] ** 2 + c["balanced_acc_sd"] ** 2) / r["n_seeds"])
        diff = r["balanced_acc"] - c["balanced_acc"]
        out["cue"].append({
            "scenario": r["scenario"], "test": r["test"], "ce": r["balanced_acc"], "contrastive": c["balanced_acc"],
            "difference": diff, "differs": bool(abs(diff) > 2 * se) if r["n_seeds"] > 1 else None, "r_hu_ce": r["r_hu"], "r_hu_contrastive": c["r_hu"],
            "probe_ce": r.get("probe_balanced_acc"), "probe_contrastive": c.get("probe_balanced_acc"),
            "one_class_ce": r.get("one_class_seeds", 0), "one_class_contrastive": c.get("one_class_seeds", 0),
        })
    return out


def report_markdown(rows, verdict, settings) -> str:
    s = settings
    f = lambda v: "nan" if v is None or not np.isfinite(v) else f"{v:.2f}"  # noqa: E731
    lines = [
        f"# Beyond {PAPER}: CE vs contrastive loss on real LIDC-IDRI nodules",
        "",
        f"{s['nodules']} nodules ({len(s['skipped'])} table rows or files skipped, listed in details.json), "
        f"{s['image_size']}x{s['image_size']} crops at {s['pixel_spacing']} mm on the mask's largest axial slice, "
        f"HU window {s['hu_min']:g}..{s['hu_max']:g}; patients split per seed {1 - s['val_fraction'] - s['test_fraction']:.2f} train / "
        f"{s['val_fraction']} validation / {s['test_fraction']} test; {s['encoder']} LeNet-5, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"Adam {s['lr']} (head {s['head_lr']}, {s['head_init']} initialisation); seeds {s['first_seed']}..{s['first_seed'] + s['seeds'] - 1}"
        + (" (--quick)" if s["quick"] else "") + ".",
        f"Wall time {s['seconds'] / 60:.1f} min, CPU time {s['cpu_seconds'] / 60:.1f} min on {s['cpus']} CPU(s) "
        f"(load average {s['load_average_at_start']} at start, {s['load_average_at_end']} at end).",
        "",
        "Mean (sd) over seeds; malignant positive; n = malignant / benign test nodules per seed (mean); "
        "r(p,HU): Pearson r of p(malignant) with the nodule's mean HU on the test set (the intensity cue); "
        "one class: seeds whose model called every test nodule the same class; probe: balanced accuracy of a "
        "logistic regression on the frozen F6 embedding of the training set (a diagnostic, not in the paper).",
        "",
        "| scenario | training set | test | loss | n | acc | balanced acc | se | sp | r(p,HU) | one class | probe |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['train']} | {r['test']} | {r['loss']} | {r['n_malignant']:.0f} / {r['n_benign']:.0f} "
            f"| {f(r['acc'])} ({f(r['acc_sd'])}) | {f(r['balanced_acc'])} ({f(r['balanced_acc_sd'])}) | {f(r['se'])} | {f(r['sp'])} | {f(r['r_hu'])} | {r.get('one_class_seeds', 0)}/{r['n_seeds']} | {f(r.get('probe_balanced_acc'))} |"
        )
    lines += ["", "## The paper's prediction", "",
              '"In real applications the relationship between features and the task at hand can be expected to be '
              'more complex leading to even worse OOD generalization."', ""]
    for o in verdict["ood"]:
        lines.append(
            f"- {o['scenario']}, {o['test']}, {o['loss']}: balanced accuracy {f(o['real'])} (sd {f(o['real_sd'])}; tie kept "
            f"{f(o['real_in_distribution'])}) against {f(o['synthetic_paper'])} in the synthetic {o['synthetic_row']} "
            f"(paper): {'worse' if o['worse_than_synthetic'] else 'not worse'} than synthetic."
        )
    lines += ["", "Does the loss change which cue the network uses (CE vs contrastive, difference > 2 standard errors)?", ""]
    for c in verdict["cue"]:
        lines.append(
            f"- {c['scenario']}, {c['test']}: CE {f(c['ce'])}, contrastive {f(c['contrastive'])}: "
            f"{ {True: 'differ', False: 'no difference beyond the seed spread', None: 'one seed, no spread to judge by'}[c['differs']]}; r(p,HU) CE {f(c['r_hu_ce'])}, contrastive {f(c['r_hu_contrastive'])}; "
            f"one-class models CE {c['one_class_ce']}, contrastive {c['one_class_contrastive']}; linear probe on the embedding "
            f"CE {f(c['probe_ce'])}, contrastive {f(c['probe_contrastive'])}."
        )
    lines += ["", "![PCA of the embeddings](fig_real_pca.png)", "", "![Saliency](fig_real_saliency.png)", ""]
    return "\n".join(lines)

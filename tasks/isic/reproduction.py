"""The lossest reproduction: vanilla vs loss estimator over seeds, ODIN, and its report.

Per seed: one lesion-grouped train / validation / test split, both models trained on it, each
evaluated on its test split (classification) and with ODIN (tuned on the histology set against
validation, measured against test). Across seeds: mean ± sd of every number, the per-seed
values, the confidence interval of every estimator-minus-vanilla difference, and the verdict on
each of the paper's claims (``tasks/isic/claims.py``, by the rule of ``evaluation/claims.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from evaluation.claims import CONFIDENCE, markdown_table
from evaluation.claims import RULE as CLAIM_RULE
from tasks.common import model_of_run
from tasks.isic import paper
from tasks.isic.claims import check_claims
from tasks.isic.config import EvalConfig, IsicConfig, log
from tasks.isic.evaluation import build_eval_data, evaluate_model
from tasks.isic.figures import plot_learning_curves, plot_scores, plot_summary
from tasks.isic.training import run_training

MODELS = (("vanilla", "ce"), ("proposed", "ce+loss-estimator"))


# --quick: the CPU recipe, found by a pre-registered search on one seed's VALIDATION balanced
# accuracy (docs/isic.md, "The CPU recipe"; the test split was never read for it). The model is
# as in the paper except for the departures listed there with their measured effect: 48 px,
# width 0.25, random initialization, GAP head, no augmentation, class-weighted CE off (with class-balanced
# sampling it compounded to a 1/n_c^2 prior), all images, 36 x 36 steps, lr halved every 12.
QUICK = {
    "image_size": 48,
    "width": 0.25,
    "weights": "none",
    "max_per_class": None,  # all 8,774 in-distribution images of HAM10000
    "epochs": 36,
    "steps_per_epoch": 36,  # 36 x 36 x 32 = 41,472 draws, about 7 passes over the training split
    "lr_halve_every": 12,
    "batch_size": 32,
    "head": "gap",
    "class_weighted_ce": False,
    "augment": False,  # R6a 58.8 vs R6b 56.4 % val BA at this length (docs/isic.md)
    "crop_shape": "width",  # the paper's crop; --crop-shape square measures the other
    "max_ood": 1350,  # the paper's NCT size; B-Box, B-Box-70 and Derm-Skin reach it (details.json)
    # ODIN's 210-point grid (Liang et al.) searched on 300 validation and 300 tuning-set images:
    # about 3.5 CPU-minutes per model instead of about 13 with every image
    "odin_tune_images": 300,
}
OVERRIDES = (
    ("image_size", int),
    ("steps_per_epoch", int),
    ("width", float),
    ("weights", str),
    ("max_per_class", int),
    ("epochs", int),
    ("lr_halve_every", int),
    ("batch_size", int),
    ("max_ood", int),
    ("odin_tune_images", int),
    ("crop_shape", str),
)


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="ISIC 2019 / HAM10000 folder (default: the built-in synthetic set)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="number of seeds (each: split, sampling, initialization); the paper reports 3 "
        "independent trials (default: 3)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="first seed; seeds are seed..seed+seeds-1 (default: 0)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder"
    )
    for key, kind in OVERRIDES:
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=kind,
            default=None,
            dest=key,
            help=f"override (--quick: {'all' if QUICK[key] is None else QUICK[key]}; full: the "
            "paper's default)",
        )


def reproduce(args) -> Path:
    import time

    import keras

    import keras_losses  # noqa: F401
    from core import io
    from data import ood_sets

    out = Path(args.out or "reports/lossest")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(
            f"{out} already exists; pass --overwrite to replace it or --out to choose another folder"
        )
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1; received {args.seeds}")
    settings = dict(QUICK) if args.quick else {}
    for key, _ in OVERRIDES:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    eval_keys = {f.name for f in dataclasses.fields(EvalConfig)}
    eval_settings = {k: settings.pop(k) for k in list(settings) if k in eval_keys}
    seeds = [args.seed + k for k in range(args.seeds)]
    ecfg = EvalConfig(**eval_settings)
    max_ood = ecfg.max_ood
    runs = {key: [] for key, _ in MODELS}
    scores, sizes, set_sizes, weights_loaded, details = {}, {}, {}, None, {}
    start = time.time()
    for i, seed in enumerate(seeds):
        data = None
        for key, loss in MODELS:
            cfg = IsicConfig(loss=loss, data_dir=args.data_dir, seed=seed, **settings)
            log(f"seed {seed} ({i + 1}/{len(seeds)}): training {key} ({loss})")
            run = run_training(cfg, out / f"seed{seed}" / key, overwrite=True)
            weights_loaded = io.read_json(run / "config.json")["weights_loaded"]
            if data is None:  # one split per seed, shared by both models
                data = build_eval_data(run, ecfg)
                split = io.read_json(run / "split.json")
                sizes[seed] = {k: len(split[k]) for k in ("train", "val", "test")}
                set_sizes = {k: int(len(x)) for k, x in data["sets"].items()}
                details[seed] = {
                    "split": sizes[seed],
                    "ood_sets": data["details"],
                    "ood_pool": f"{data['pool_size']} in-distribution images never used for "
                    "training (validation + test + any left out by --max-per-class)",
                }
            model = keras.saving.load_model(model_of_run(run)[1], compile=False)
            result, s = evaluate_model(model, data, ecfg)
            result["seed"] = seed
            result["history"] = str(run / "history.csv")
            details[seed][f"odin_{key}"] = {
                k: result["odin"][k] for k in ("temperature", "epsilon", "tuning_images")
            }
            runs[key].append(result)
            if i == 0:
                scores[key] = s
        log(f"seed {seed} done after {(time.time() - start) / 60:.1f} min")
    base = IsicConfig(data_dir=args.data_dir, **settings)
    quick = bool(args.quick)
    summary = {
        "experiment": "lossest",
        "paper": "Narayanaswamy et al. 2021, arXiv:2103.03788",
        "settings": {**dataclasses.asdict(base), "max_ood": max_ood, "quick": quick},
        "odin_grid": {
            "temperatures": list(ecfg.temperatures),
            "epsilons": list(ecfg.epsilons),
            "tune_images": ecfg.odin_tune_images,
        },
        "seeds": seeds,
        "weights_loaded": weights_loaded,
        "odin_tune_set": ecfg.odin_tune_set,
        "split_sizes": sizes,
        "ood_set_sizes": set_sizes,
        "natural_photographs": [n for n, _, _ in ood_sets.NATURAL_PHOTOGRAPHS],
        "paper_values": {
            "balanced_accuracy": paper.BALANCED_ACCURACY,
            "table1": paper.TABLE1,
            "new_class_auroc": paper.NEW_CLASS_AUROC,
            "sets": paper.SETS,
        },
        "aggregate": aggregate(runs),
        "claims": check_claims(runs, ecfg.odin_tune_set, quick),
        "runs": runs,
        "minutes": (time.time() - start) / 60,
    }
    io.write_json(out / "results.json", summary)
    io.write_json(
        out / "details.json",
        {"ood_set_sizes_and_sources_per_seed": details, "odin_grid": summary["odin_grid"]},
    )
    plot_summary(summary, out / "summary.png")
    plot_scores(scores, out / "odin_scores.png")
    plot_learning_curves(
        {key: [r["history"] for r in rs] for key, rs in runs.items()}, out / "learning_curves.png"
    )
    io.write_text(out / "report.md", report_markdown(summary))
    log(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'summary.png'}")
    return out


def mean_sd(values) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of the finite values."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0, "values": list(values)}
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {
        "mean": float(v.mean()),
        "sd": sd,
        "n": int(v.size),
        "values": [float(x) for x in values],
    }


def compare(vanilla: dict, proposed: dict, lower_is_better: bool = False) -> dict:
    """Proposed minus vanilla per seed (paired: both models share each seed's split), its mean
    and the confidence interval of the shared claims rule (``evaluation.claims.interval``).

    ``proposed_better`` is the side of 0 the whole interval lies on: True or False when the
    interval excludes 0, None when it does not (or with fewer than 2 seeds).
    """
    from evaluation.claims import TOLERANCE, interval, paired

    e = interval(paired(proposed["values"], vanilla["values"]))
    lo, hi = e["interval"]
    better = None
    if lo is not None and (lo > TOLERANCE or hi < -TOLERANCE):
        better = (hi < 0) if lower_is_better else (lo > 0)
    return {
        "diff": e["mean"],
        "interval": [lo, hi],
        "per_seed": e["per_seed"],
        "proposed_better": better,
    }


def aggregate(runs: dict) -> dict:
    """``runs[model][i]`` = one seed's result of :func:`evaluate_model` -> mean/sd per metric
    for each model, and a vanilla-vs-proposed comparison of each."""
    from tasks.isic.paper import LOWER_IS_BETTER, METRICS

    out = {"models": {}, "comparison": {}}
    for key, results in runs.items():
        first = results[0]
        m = {
            "balanced_accuracy": mean_sd([r["balanced_accuracy"] for r in results]),
            "accuracy": mean_sd([r["accuracy"] for r in results]),
            "val_balanced_accuracy": mean_sd([r["val_balanced_accuracy"] for r in results]),
            "sensitivity": {
                c: mean_sd([r["sensitivity"][c] for r in results]) for c in first["sensitivity"]
            },
        }
        for kind in ("odin", "msp"):
            sets = first[kind]["sets"] if kind == "odin" else first[kind]
            m[kind] = {
                name: {
                    metric: mean_sd(
                        [
                            (r[kind]["sets"] if kind == "odin" else r[kind])[name][metric]
                            for r in results
                        ]
                    )
                    for metric in METRICS
                }
                for name in sets
            }
        m["odin_settings"] = [
            {"temperature": r["odin"]["temperature"], "epsilon": r["odin"]["epsilon"]}
            for r in results
        ]
        if "estimator_kendall_tau" in first:
            m["estimator_kendall_tau"] = mean_sd([r["estimator_kendall_tau"] for r in results])
        out["models"][key] = m
    if {"vanilla", "proposed"} <= set(out["models"]):
        v, p = out["models"]["vanilla"], out["models"]["proposed"]
        c = {
            "balanced_accuracy": compare(v["balanced_accuracy"], p["balanced_accuracy"]),
            "sensitivity": {
                s: compare(v["sensitivity"][s], p["sensitivity"][s]) for s in v["sensitivity"]
            },
        }
        for kind in ("odin", "msp"):
            c[kind] = {
                name: {
                    metric: compare(
                        v[kind][name][metric], p[kind][name][metric], metric in LOWER_IS_BETTER
                    )
                    for metric in METRICS
                }
                for name in v[kind]
            }
        out["comparison"] = c
    return out


def _ms(d: dict, digits: int = 1) -> str:
    return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}"


def _verdict(c: dict) -> str:
    """The difference and its interval, and which model the interval favours, if any."""
    lo, hi = c["interval"]
    if lo is None:
        return "-" if c["diff"] is None else f"{c['diff']:+.1f} (no interval)"
    side = {None: "", True: ", proposed better", False: ", vanilla better"}[c["proposed_better"]]
    return f"{c['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]{side}"


def report_markdown(s: dict) -> str:
    from tasks.isic import paper

    st, agg = s["settings"], s["aggregate"]
    v, p = agg["models"]["vanilla"], agg["models"]["proposed"]
    comp = agg["comparison"]
    tuned = s["odin_tune_set"]
    sizes = s["split_sizes"]
    lines = [
        "# Loss estimators and ODIN on dermoscopy (Narayanaswamy et al. 2021)",
        "",
        f"Data: `{st['data_dir'] or 'built-in synthetic set'}`; in-distribution classes "
        f"{', '.join(st['classes'])}; seeds {', '.join(str(x) for x in s['seeds'])} (each seed: its own "
        f"split, sampling and initialization; both models share the seed's split). Split per seed, "
        f"grouped by lesion: train / validation / test = "
        + "; ".join(f"seed {k}: {n['train']} / {n['val']} / {n['test']}" for k, n in sizes.items())
        + ". Validation chose the checkpoint and ODIN's T, eps and threshold; every number below is "
        "on the test split.",
        "",
        f"Model: VGG-16 width {st['width']}, head `{st['head']}`, {st['image_size']} px, "
        f"{st['epochs']} epochs of {st['steps_per_epoch'] or 'one pass of'} steps (lr {st['lr']:g} "
        f"halved every {st['lr_halve_every']}), batch {st['batch_size']}, at most "
        f"{st['max_per_class'] or 'all'} images per class, augmentation {st['augment']}. "
        f"Weights actually loaded: **{s['weights_loaded']}** (requested: `{st['weights']}`). "
        f"Loss estimator: lambda {st['lambda_rank']}, margin {st['margin']}, ranks `{st['rank_target']}`, "
        f"pairs `{st['pair_reduction']}`; class-balanced sampling {st['balanced_sampling']}, "
        f"class-weighted CE {st['class_weighted_ce']}.",
        "",
        f'Mean ± sd over seeds. "Difference": proposed minus vanilla, mean over seeds '
        f"[{CONFIDENCE:.0%} confidence interval, Student's t over the paired per-seed differences]; "
        "a model is named better only where the interval excludes 0. The paper's claims are "
        "judged at the end, by the rule stated there.",
        "",
        "## Classification on the test split (cf. Fig. 3)",
        "",
        "| | paper vanilla | ours vanilla | paper proposed | ours proposed | difference |",
        "|---|---|---|---|---|---|",
        f"| balanced accuracy % | {paper.BALANCED_ACCURACY[0]} (8 classes) | {_ms(v['balanced_accuracy'])} | "
        f"{paper.BALANCED_ACCURACY[1]} (8 classes) | {_ms(p['balanced_accuracy'])} | "
        f"{_verdict(comp['balanced_accuracy'])} |",
    ]
    for c in v["sensitivity"]:
        lines.append(
            f"| sensitivity {c} % | - | {_ms(v['sensitivity'][c])} | - | {_ms(p['sensitivity'][c])} | "
            f"{_verdict(comp['sensitivity'][c])} |"
        )
    lines.append(
        f"| (validation balanced accuracy %, chose the checkpoint) | | {_ms(v['val_balanced_accuracy'])} | | "
        f"{_ms(p['val_balanced_accuracy'])} | |"
    )
    if "estimator_kendall_tau" in p:
        lines += [
            "",
            f"Loss estimator on the test split: Kendall tau between the estimated loss and the true "
            f"per-sample cross-entropy {p['estimator_kendall_tau']['mean']:.3f} ± "
            f"{p['estimator_kendall_tau']['sd']:.3f} (1 = same order; cf. Fig. 2, middle).",
        ]
    settings = "; ".join(
        f"{key} seed {seed}: T={o['temperature']:g}, eps={o['epsilon']:g}"
        for key, m in (("vanilla", v), ("proposed", p))
        for seed, o in zip(s["seeds"], m["odin_settings"], strict=True)
    )
    lines += [
        "",
        "## OOD detection with ODIN (cf. Table 1, Fig. 5)",
        "",
        f"T and eps tuned on **`{tuned}`** against the validation split (lowest FPR@95TPR over the "
        f"grid), then applied unchanged to every set ({settings}). The `{tuned}` row is the tuning "
        "set's own: **not a held-out result** (marked †). Paper values are vanilla / proposed.",
        "",
        "| OOD set | n | metric | paper (v / p) | ours vanilla | ours proposed | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in v["odin"]:
        mark = " †" if name == tuned else ""
        n = s["ood_set_sizes"].get(name, "-")
        for metric in paper.METRICS:
            if name == "new-class":
                pv = paper.NEW_CLASS_AUROC if metric == "auroc" else None
            else:
                pv = paper.TABLE1.get(name, {}).get(metric)
            ptxt = f"{pv[0]:g} / {pv[1]:g}" if pv else "-"
            lines.append(
                f"| {name}{mark} | {n} | {paper.METRIC_NAMES[metric]} | {ptxt} | "
                f"{_ms(v['odin'][name][metric])} | {_ms(p['odin'][name][metric])} | "
                f"{_verdict(comp['odin'][name][metric])} |"
            )
    cs = paper.TABLE1["clin-skin"]
    lines += [
        f"| clin-skin | - | AUROC | {cs['auroc'][0]:g} / {cs['auroc'][1]:g} | no equivalent set | - | - |",
        "",
        "Max-softmax baseline (T = 1, eps = 0), AUROC % vanilla / proposed: "
        + "; ".join(
            f"{n} {_ms(v['msp'][n]['auroc'])} / {_ms(p['msp'][n]['auroc'])}" for n in v["msp"]
        )
        + ".",
        "",
        "Sets:",
        "",
    ]
    lines += [f"- `{k}`: {t}" for k, t in paper.SETS.items()]
    lines += [f"- natural photographs used: {', '.join(s['natural_photographs'])}"]
    lines += [
        "",
        "## The paper's claims",
        "",
        f"Rule: {CLAIM_RULE}. Effects are per-seed paired differences (estimator minus vanilla on "
        "the same seed's split and OOD sets), in % points (Kendall tau: a coefficient).",
        "",
        *markdown_table(s["claims"], digits=2),
    ]
    notes = sorted({c["note"] for c in s["claims"] if c.get("note")})
    lines += [""] + [f"Note: {n}." for n in notes]
    lines += ["", "![summary](summary.png)", "", "![ODIN scores](odin_scores.png)", ""]
    lines += ["![validation balanced accuracy per epoch](learning_curves.png)", ""]
    return "\n".join(lines)

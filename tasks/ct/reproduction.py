"""The glf-lung / glf-liver reproduction: the sweep of D, E, T, G(D), G(E) and its report."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

from tasks.ct.claims import judge_claims
from tasks.ct.config import (
    ARCHS,
    BETA2_STATISTICS,
    COUNT_KINDS,
    EXP_MODES,
    GUARD_MODES,
    GUARD_SCALES,
    OUTPUT_LAYERS,
    STATISTIC_FORMS,
    CTConfig,
    resolve_config,
)
from tasks.ct.evaluation import evaluate_models
from tasks.ct.paper import PAPER_RESULTS
from tasks.ct.plateau import plot_validation_curves, run_stopping
from tasks.ct.report import report_markdown
from tasks.ct.training import plot_trajectory_figures, train_config

# Baseline grids (the paper compares against the best-tuned baselines but does not print its
# grids): Tversky alpha (weight of FP) with beta = 1 - alpha, Effectiveness beta^2 > 1.
TVERSKY_GRID = (0.1, 0.2, 0.3, 0.4)
BETA2_GRID = (2.0, 4.0, 8.0)
QUICK_TVERSKY_GRID = (0.2, 0.3)
QUICK_BETA2_GRID = (2.0, 4.0)
MODELS = ("D", "E", "T", "G(D)", "G(E)")


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MSD Task06 / LiTS folder or HDF5 patches (default: the built-in phantom)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="seeds per model, --seed, --seed + 1, ...; numbers are mean and sd over them (default: 3)",
    )
    parser.add_argument(
        "--exp-mode",
        default="exp",
        choices=EXP_MODES,
        help="scoring of G(E), the exploratory rule (paper Fig. 2a): exp (exact, the paper's), exp-first-order, exp-naive (default: exp)",
    )
    parser.add_argument(
        "--det-from-e",
        action="store_true",
        help="also train 'G(D) from E': the deterministic rule started from the best Effectiveness beta^2 (not a model of the paper)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also train G(D) under every reading of the rule the text leaves open or that is not the paper's: guard literal/reversed/off x beta^2 statistic p_r/beta2_p_r x soft/hard counts (first seed)",
    )
    parser.add_argument(
        "--tversky-grid",
        default=None,
        help=f"Tversky alpha values to sweep, beta = 1 - alpha (default: {','.join(map(str, TVERSKY_GRID))}; --quick: {','.join(map(str, QUICK_TVERSKY_GRID))})",
    )
    parser.add_argument(
        "--beta2-grid",
        default=None,
        help=f"Effectiveness beta^2 values to sweep (default: {','.join(map(str, BETA2_GRID))}; --quick: {','.join(map(str, QUICK_BETA2_GRID))})",
    )
    for flag, kind, text in (
        ("--image-size", int, "slice size"),
        ("--epochs", int, "epochs per run"),
        ("--steps-per-epoch", int, "steps per epoch (0 = one pass)"),
        ("--batch-size", int, "batch size"),
        ("--base-filters", int, "filters of the first level"),
        ("--depth", int, "down-sampling steps"),
        ("--seed", int, "seed"),
        ("--exp-top-k", int, "candidates G(E) scores exactly with --exp-mode exp-hybrid"),
        ("--lr", float, "Adam learning rate (paper: 1e-4)"),
        (
            "--patience",
            int,
            "early stopping: validations without a better validation Dice before a run stops (0: off)",
        ),
        ("--patience-steps", int, "early stopping: optimizer steps without improvement before a run stops"),
        ("--pixel-mm", float, "in-plane spacing of the network input (mm)"),
        ("--tumour-free-ratio", float, "tumour-free training slices per tumour slice"),
        ("--val-fraction", float, "fraction of cases for validation"),
        ("--test-fraction", float, "fraction of cases for testing"),
    ):
        parser.add_argument(
            flag,
            type=kind,
            default=argparse.SUPPRESS,
            help=f"{text} for every run (default: the train.py default, or its --quick preset)",
        )
    for flag, choices, text in (
        ("--glf-guard", GUARD_MODES, "divergence guard of G(D)"),
        ("--glf-statistic", STATISTIC_FORMS, "statistic form of G(D)"),
        ("--glf-counts", COUNT_KINDS, "counts of G(D)'s statistics"),
        ("--glf-beta2-statistic", BETA2_STATISTICS, "beta^2 statistic of G(D)"),
        ("--glf-guard-scale", GUARD_SCALES, "guard threshold scale of G(D)"),
        ("--output-layer", OUTPUT_LAYERS, "mU-Net output layer of every run"),
    ):
        parser.add_argument(
            flag,
            choices=choices,
            default=argparse.SUPPRESS,
            help=f"{text} (default: the train.py default, the paper's reading where it speaks)",
        )
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default=argparse.SUPPRESS,
        help="network for every run (default: munet)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="flips, small rotations and elastic deformation on training slices (default off: the paper names no augmentation)",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"the models to train and report, comma-separated, of {', '.join(MODELS)} (default: all); "
        "the T/E sweep runs whenever E or T is asked for. Lets a long study run in pieces on one --out with --resume",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished runs in --out and continue unfinished ones",
    )


def _grid(text, default):
    if text is None:
        return tuple(default)
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected a comma-separated list of numbers; received {text!r}") from None
    if not values:
        raise ValueError(f"the grid {text!r} is empty")
    return values


def _best_val_dice(run_dir: Path) -> float:
    import csv

    with open(run_dir / "history.csv", newline="", encoding="utf-8") as f:
        values = [
            float(r["val_dice"]) for r in csv.DictReader(f) if r.get("val_dice") not in (None, "")
        ]
    return max(values) if values else float("nan")


METRICS = ("precision", "recall", "dice", "tumour_free_dice", "small_tumour_dice")
ABLATION_GUARDS = GUARD_MODES
ABLATION_BETA2 = BETA2_STATISTICS
ABLATION_COUNTS = COUNT_KINDS


def model_overrides(best_t: dict, best_e: dict, exp_mode: str = "exp") -> dict[str, dict]:
    """The CTConfig overrides of each model of the paper's Fig. 3.

    G(D) and G(E) both start from the Dice values (1, 1, 1) (Sec. III: "all three coefficients
    are initialized to the corresponding Dice values"); G(D) is the deterministic rule
    (Fig. 2b), G(E) the exploratory one (Fig. 2a), exact unless ``exp_mode`` says otherwise.
    """
    return {
        "D": {"loss": "dice"},
        "E": {"loss": "effectiveness", "beta2": best_e["beta2"]},
        "T": {"loss": "tversky", "tversky_alpha": best_t["alpha"], "tversky_beta": best_t["beta"]},
        "G(D)": {"loss": "glf-det", "alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0},
        "G(E)": {
            "loss": "glf-exp",
            "exp_mode": exp_mode,
            "alpha_p": 1.0,
            "alpha_n": 1.0,
            "beta2": 1.0,
        },
    }


def _flat(summary: dict) -> dict:
    ts, tf, small = (
        summary["tumour_slices"],
        summary["tumour_free_slices"],
        summary["small_tumour_slices"],
    )
    return {
        "precision": ts["precision"],
        "recall": ts["recall"],
        "dice": ts["dice"],
        "tumour_free_dice": tf["dice"],
        "small_tumour_dice": small["dice"],
    }


def mean_sd(values) -> dict:
    """Mean and sample sd of the non-missing values (sd 0 for one value)."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"mean": None, "sd": None, "n": 0, "values": []}
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": m, "sd": sd, "n": len(values), "values": values}


def reproduce(args: argparse.Namespace) -> Path:
    """Seo et al. 2021 on one task: D, E, T, G(D), G(E) over seeds, the sweep, the ablation."""
    import keras

    import keras_losses  # noqa: F401
    from core import io
    from keras_losses.adaptive import read_trajectory
    from keras_losses.adaptive.trajectory import summarize_trajectory

    task = "lung" if args.experiment == "glf-lung" else "liver"
    out = Path(args.out or f"reports/{args.experiment}")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise ValueError(
            f"{out} already exists; pass --resume to reuse its finished runs, or choose another --out"
        )
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1; received {args.seeds}")
    out.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in dataclasses.fields(CTConfig)}
    base = {k: v for k, v in vars(args).items() if k in names and k not in ("loss", "seed")}
    base["quick"] = bool(args.quick)
    first = int(getattr(args, "seed", 0))
    seeds = [first + i for i in range(args.seeds)]
    wanted = parse_models(getattr(args, "models", None))
    tversky_grid = _grid(args.tversky_grid, QUICK_TVERSKY_GRID if args.quick else TVERSKY_GRID)
    beta2_grid = _grid(args.beta2_grid, QUICK_BETA2_GRID if args.quick else BETA2_GRID)
    started = time.perf_counter()

    def run(name, seed, **overrides) -> tuple[Path, CTConfig]:
        ns = argparse.Namespace(**{**base, "seed": seed, **overrides})  # a model's overrides win
        cfg = resolve_config(ns, task)
        path = out / "runs" / f"seed-{seed}" / name
        if (path / "COMPLETED").exists():
            print(f"[reproduce] seed {seed} {name}: finished run found, reused", flush=True)
            return path, cfg
        print(f"\n[reproduce] seed {seed}: training {name} ({cfg.loss}) ...", flush=True)
        train_config(cfg, path, resume=path.exists(), verbose=2)
        return path, cfg

    # The baselines' coefficients are tuned on the validation split of the first seed (the
    # paper: "the comparisons are done against the choice of hyperparameters that yield the
    # highest Dice coefficient"); every seed then trains the selected ones.
    sweep = {"tversky": [], "effectiveness": []}
    for a in tversky_grid if "T" in wanted or "E" in wanted else ():
        b = round(1 - a, 6)
        path, _ = run(f"tversky-a{a:g}", first, loss="tversky", tversky_alpha=a, tversky_beta=b)
        sweep["tversky"].append(
            {"alpha": a, "beta": b, "val_dice": _best_val_dice(path), "run": str(path)}
        )
    for b2 in beta2_grid if "T" in wanted or "E" in wanted else ():
        path, _ = run(f"effectiveness-b{b2:g}", first, loss="effectiveness", beta2=b2)
        sweep["effectiveness"].append(
            {"beta2": b2, "val_dice": _best_val_dice(path), "run": str(path)}
        )

    def key(r):
        return -math.inf if math.isnan(r["val_dice"]) else r["val_dice"]

    # Without E and T nothing was swept: placeholders that name no run.
    best_t = max(sweep["tversky"], key=key, default={"alpha": math.nan, "beta": math.nan})
    best_e = max(sweep["effectiveness"], key=key, default={"beta2": math.nan})
    overrides = {
        k: v for k, v in model_overrides(best_t, best_e, args.exp_mode).items() if k in wanted
    }
    if args.det_from_e:
        overrides["G(D) from E"] = {"loss": "glf-det", "beta2": best_e["beta2"]}
    run_names = {
        "D": "dice",
        "E": f"effectiveness-b{best_e['beta2']:g}",
        "T": f"tversky-a{best_t['alpha']:g}",
        "G(D)": "glf-det-from-dice",
        "G(E)": f"glf-{args.exp_mode}-from-dice",
        "G(D) from E": f"glf-det-from-b{best_e['beta2']:g}",
    }
    runs, per_seed, trajectories, stopping = {}, {}, {}, {}
    for seed in seeds:
        runs[seed] = {k: run(run_names[k], seed, **v) for k, v in overrides.items()}
        models = {
            k: keras.saving.load_model(p / "best.keras", compile=False)
            for k, (p, _) in runs[seed].items()
        }
        stopping[seed] = {k: run_stopping(p) for k, (p, _) in runs[seed].items()}
        d_path, d_cfg = next(iter(runs[seed].values()))  # every model shares the split
        # the first seed's figures go to the report folder, the others' into seed-N/
        where = out if seed == first else out / f"seed-{seed}"
        result = evaluate_models(models, d_cfg, where, split_from=d_path)
        per_seed[seed] = {k: _flat(v) for k, v in result["models"].items()}
        trajectories[seed] = {
            k: summarize_trajectory(read_trajectory(p / "glf_trajectory.csv"))
            for k, (p, _) in runs[seed].items()
            if (p / "glf_trajectory.csv").exists()
        }
        small_px = result["small_tumour_px"]
        del models
        keras.backend.clear_session()
    plot_trajectory_figures(
        {
            k: runs[first][k][0] / "glf_trajectory.csv"
            for k in ("G(D)", "G(E)")
            if k in runs[first] and (runs[first][k][0] / "glf_trajectory.csv").exists()
        },
        out,
    )
    plot_validation_curves(
        {f"{k}, seed {s}": runs[s][k][0] for s in seeds for k in runs[s]},
        out / "validation_curves.png",
    )
    ours = {k: {m: mean_sd([per_seed[s][k][m] for s in seeds]) for m in METRICS} for k in overrides}
    ablation = []
    if args.ablation:
        ablation = run_ablation(run, first, out)
    results = {
        "experiment": args.experiment,
        "paper": "Seo, Bassenne, Xing, IEEE TMI 40(2) 2021, Figs. 3 and 5",
        "settings": {
            # any model's configuration: the models differ only in the loss settings
            **dataclasses.asdict(next(iter(runs[first].values()))[1]),
            "loss": None,
            "seed": None,
            "seeds": seeds,
            "exp_mode": args.exp_mode,
            "tversky_grid": tversky_grid,
            "beta2_grid": beta2_grid,
        },
        "selected": {
            "T": {"alpha": best_t["alpha"], "beta": best_t["beta"]},
            "E": {"beta2": best_e["beta2"]},
            "G(D)": "deterministic rule (Fig. 2b) from the Dice values (1, 1, 1)",
            "G(E)": f"exploratory rule (Fig. 2a, mode {args.exp_mode}) from the Dice values (1, 1, 1)",
        },
        "sweep": sweep,
        "ours": ours,
        "per_seed": {str(s): v for s, v in per_seed.items()},
        "claims": judge_claims(per_seed, trajectories, seeds) if task == "lung" else [],
        "trajectories": {str(s): v for s, v in trajectories.items()},
        "stopping": {str(s): v for s, v in stopping.items()},
        "ablation": ablation,
        "paper_results": PAPER_RESULTS[task],
        "runs": {str(s): {k: str(p) for k, (p, _) in r.items()} for s, r in runs.items()},
        "small_tumour_px": small_px,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", report_markdown(results, task))
    print((out / "report.md").read_text(encoding="utf-8"))
    return out


def parse_models(text) -> tuple[str, ...]:
    """``--models`` ("D,G(D)") -> the models in table order; an unknown name is an error."""
    if text is None:
        return MODELS
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise ValueError(
            f"--models: expected a comma-separated list of {', '.join(MODELS)}; received {text!r}"
        )
    return tuple(m for m in MODELS if m in names)


def run_ablation(run, seed: int, out: Path) -> list[dict]:
    """G(D) under each reading: guard x beta^2 statistic x counts, at one seed; test metrics
    and what the coefficients did (Fig. 6: alphas "oscillate around 1", beta^2 "remains larger
    than 1")."""
    import keras

    from keras_losses.adaptive import read_trajectory
    from keras_losses.adaptive.trajectory import summarize_trajectory

    rows = []
    for guard in ABLATION_GUARDS:
        for b2 in ABLATION_BETA2:
            for counts in ABLATION_COUNTS:
                name = f"ablation/guard-{guard}_beta2-{b2}_counts-{counts}"
                path, cfg = run(
                    name,
                    seed,
                    loss="glf-det",
                    glf_guard=guard,
                    glf_beta2_statistic=b2,
                    glf_counts=counts,
                )
                model = keras.saving.load_model(path / "best.keras", compile=False)
                result = evaluate_models({"G(D)": model}, cfg, path / "eval", split_from=path)
                rows.append(
                    {
                        "guard": guard,
                        "beta2_statistic": b2,
                        "counts": counts,
                        "statistic": cfg.glf_statistic,
                        "guard_scale": cfg.glf_guard_scale,
                        "test": _flat(result["models"]["G(D)"]),
                        "trajectory": summarize_trajectory(
                            read_trajectory(path / "glf_trajectory.csv")
                        ),
                        "run": str(path),
                    }
                )
                keras.backend.clear_session()
    return rows

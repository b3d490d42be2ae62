"""The glf-lung / glf-liver reproduction: the sweep of D, E, T, G(D), G(E) and its report."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

from tasks.ct.config import ARCHS, CTConfig, resolve_config
from tasks.ct.evaluation import evaluate_models
from tasks.ct.paper import PAPER_RESULTS
from tasks.ct.training import plot_trajectory_figures, train_config

# Baseline grids (the paper compares against the best-tuned baselines but does not print its
# grids): Tversky alpha (weight of FP) with beta = 1 - alpha, Effectiveness beta^2 > 1.
TVERSKY_GRID = (0.1, 0.2, 0.3, 0.4)
BETA2_GRID = (2.0, 4.0, 8.0)
QUICK_TVERSKY_GRID = (0.2, 0.3)
QUICK_BETA2_GRID = (2.0, 4.0)


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MSD Task06 / LiTS folder or HDF5 patches (default: the built-in phantom)",
    )
    parser.add_argument(
        "--rule",
        default="det",
        choices=("det", "exp"),
        help="adaptive rule of G(D) and G(E): det (glf-det) or exp (glf-exp) (default: det)",
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
        ("--lr", float, "Adam learning rate (paper: 1e-4)"),
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
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default=argparse.SUPPRESS,
        help="network for every run (default: munet)",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=argparse.SUPPRESS,
        help="no augmentation",
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


def reproduce(args: argparse.Namespace) -> Path:
    """Seo et al. 2021 on one task: D, E, T, G(D), G(E), the baseline sweep, report.md."""
    import keras

    import keras_losses  # noqa: F401
    from training import io

    task = "lung" if args.experiment == "glf-lung" else "liver"
    out = Path(args.out or f"reports/{args.experiment}")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise ValueError(
            f"{out} already exists; pass --resume to reuse its finished runs, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in dataclasses.fields(CTConfig)}
    base = {k: v for k, v in vars(args).items() if k in names and k not in ("loss",)}
    base["quick"] = bool(args.quick)
    base_ns = argparse.Namespace(**base)
    tversky_grid = _grid(args.tversky_grid, QUICK_TVERSKY_GRID if args.quick else TVERSKY_GRID)
    beta2_grid = _grid(args.beta2_grid, QUICK_BETA2_GRID if args.quick else BETA2_GRID)
    adaptive = "glf-det" if args.rule == "det" else "glf-exp"
    started = time.perf_counter()

    def run(name, **overrides) -> tuple[Path, CTConfig]:
        ns = argparse.Namespace(**vars(base_ns), **overrides)
        cfg = resolve_config(ns, task)
        path = out / "runs" / name
        if (path / "COMPLETED").exists():
            print(f"[reproduce] {name}: finished run found, reused", flush=True)
            return path, cfg
        print(f"\n[reproduce] training {name} ({cfg.loss}) ...", flush=True)
        train_config(cfg, path, resume=path.exists(), verbose=2)
        return path, cfg

    runs, sweep = {}, {"tversky": [], "effectiveness": []}
    runs["D"] = run("dice", loss="dice")
    for a in tversky_grid:
        path, _ = run(
            f"tversky-a{a:g}", loss="tversky", tversky_alpha=a, tversky_beta=round(1 - a, 6)
        )
        sweep["tversky"].append(
            {
                "alpha": a,
                "beta": round(1 - a, 6),
                "val_dice": _best_val_dice(path),
                "run": str(path),
            }
        )
    for b2 in beta2_grid:
        path, _ = run(f"effectiveness-b{b2:g}", loss="effectiveness", beta2=b2)
        sweep["effectiveness"].append(
            {"beta2": b2, "val_dice": _best_val_dice(path), "run": str(path)}
        )
    best_t = max(
        sweep["tversky"], key=lambda r: -math.inf if math.isnan(r["val_dice"]) else r["val_dice"]
    )
    best_e = max(
        sweep["effectiveness"],
        key=lambda r: -math.inf if math.isnan(r["val_dice"]) else r["val_dice"],
    )
    runs["T"] = (Path(best_t["run"]), None)
    runs["E"] = (Path(best_e["run"]), None)
    runs["G(D)"] = run(f"{adaptive}-from-dice", loss=adaptive)
    runs["G(E)"] = run(
        f"{adaptive}-from-b{best_e['beta2']:g}", loss=adaptive, beta2=best_e["beta2"]
    )

    order = ("D", "E", "T", "G(D)", "G(E)")
    models = {k: keras.saving.load_model(runs[k][0] / "best.keras") for k in order}
    cfg_d = runs["D"][1]
    result = evaluate_models(models, cfg_d, out, split_from=runs["D"][0])
    plot_trajectory_figures(
        {
            k: runs[k][0] / "glf_trajectory.csv"
            for k in ("G(D)", "G(E)")
            if (runs[k][0] / "glf_trajectory.csv").exists()
        },
        out,
    )
    results = {
        "experiment": args.experiment,
        "paper": "Seo, Bassenne, Xing, IEEE TMI 40(2) 2021, Figs. 3 and 5",
        "settings": {
            **dataclasses.asdict(cfg_d),
            "loss": None,
            "adaptive_rule": args.rule,
            "tversky_grid": tversky_grid,
            "beta2_grid": beta2_grid,
        },
        "selected": {
            "T": {"alpha": best_t["alpha"], "beta": best_t["beta"]},
            "E": {"beta2": best_e["beta2"]},
            "G(E)": f"adaptive GLF starting from alpha_p = alpha_n = 1, beta2 = {best_e['beta2']:g} (the best Effectiveness beta^2)",
        },
        "sweep": sweep,
        "ours": result["models"],
        "paper_results": PAPER_RESULTS[task],
        "runs": {k: str(v[0]) for k, v in runs.items()},
        "small_tumour_px": result["small_tumour_px"],
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    io.write_json(out / "results.json", results)
    io.write_text(out / "report.md", report_markdown(results, task))
    print((out / "report.md").read_text(encoding="utf-8"))
    return out


def _pct(value) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}"
    )


def report_markdown(results: dict, task: str) -> str:
    """The report's table: ours beside the paper's numbers (in %)."""
    paper = results["paper_results"]
    ours = results["ours"]
    sel = results["selected"]
    s = results["settings"]
    lines = [
        f"# {results['experiment']}: adaptive GLF vs tuned baselines (Seo et al. 2021)",
        "",
        f"Data: {s['data_dir'] or 'built-in synthetic phantom'}; {s['arch']} depth {s['depth']}, "
        f"{s['base_filters']} base filters, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs "
        f"of {s['steps_per_epoch'] or 'all'} steps, batch {s['batch_size']}, seed {s['seed']}; "
        f"adaptive rule: {s['adaptive_rule']}. Took {results['minutes']} min.",
        "",
        f"T = Tversky alpha {sel['T']['alpha']:g}, beta {sel['T']['beta']:g}; E = Effectiveness "
        f"beta^2 {sel['E']['beta2']:g} (best validation Dice of the sweep); G(D) = adaptive GLF from "
        f"the Dice values (1, 1, 1); G(E) = adaptive GLF from (1, 1, {sel['E']['beta2']:g}).",
        "",
        "Test set, in %. Precision/recall/Dice: mean over tumour slices (paper Fig. 3); "
        "tumour-free Dice: empty prediction on an empty slice = 1 (Fig. 5). Paper values in brackets.",
        "",
        "| model | precision | recall | Dice | tumour-free Dice | Dice, small tumours |",
        "|---|---|---|---|---|---|",
    ]
    for k, summary in ours.items():
        ts, tf, small = (
            summary["tumour_slices"],
            summary["tumour_free_slices"],
            summary["small_tumour_slices"],
        )
        rec = paper["recall"].get(k)
        tfd = paper["tumour_free_dice"].get(k)
        lines.append(
            f"| {k} | {_pct(ts['precision'])} | {_pct(ts['recall'])}{f' [{rec}]' if rec else ''} | {_pct(ts['dice'])} | "
            f"{_pct(tf['dice'])}{f' [{tfd}]' if tfd else ''} | {_pct(small['dice'])} (n={small['n']}) |"
        )
    conventional = [
        ours[k]["tumour_slices"]["recall"]
        for k in ("D", "E", "T")
        if ours[k]["tumour_slices"]["recall"] is not None
    ]
    best_conv = max(conventional) if conventional else None
    precisions = [
        v["tumour_slices"]["precision"]
        for v in ours.values()
        if v["tumour_slices"]["precision"] is not None
    ]
    n_ts = next(iter(ours.values()))["tumour_slices"]["n"]
    n_tf = next(iter(ours.values()))["tumour_free_slices"]["n"]
    lines += [
        "",
        f"Slices: {n_ts} with tumour, {n_tf} tumour-free; small tumours: < {results['small_tumour_px']:.0f} px "
        "here (the paper's < 100 px at 512x512).",
        "",
        "| claim | paper | ours |",
        "|---|---|---|",
        f"| recall, best conventional (D/E/T) | {paper['recall']['best conventional']} | {_pct(best_conv)} |",
        f"| recall, G(D) | {paper['recall']['G(D)']} | {_pct(ours['G(D)']['tumour_slices']['recall'])} |",
        f"| recall, G(E) | {paper['recall']['G(E)']} | {_pct(ours['G(E)']['tumour_slices']['recall'])} |",
        f"| tumour-free Dice, T | {paper['tumour_free_dice']['T']} | {_pct(ours['T']['tumour_free_slices']['dice'])} |",
        f"| tumour-free Dice, G(D) | {paper['tumour_free_dice']['G(D)']} | {_pct(ours['G(D)']['tumour_free_slices']['dice'])} |",
        f"| tumour-free Dice, G(E) | {paper['tumour_free_dice']['G(E)']} | {_pct(ours['G(E)']['tumour_free_slices']['dice'])} |",
        f"| highest precision | {paper['precision_max']} | {_pct(max(precisions) if precisions else None)} |",
        "",
        "Sweep (best validation Dice, pixel Dice pooled over the validation slices):",
        "",
    ]
    for r in results["sweep"]["tversky"]:
        lines.append(f"- Tversky alpha {r['alpha']:g}, beta {r['beta']:g}: {_pct(r['val_dice'])}")
    for r in results["sweep"]["effectiveness"]:
        lines.append(f"- Effectiveness beta^2 {r['beta2']:g}: {_pct(r['val_dice'])}")
    lines += [
        "",
        "Figures: `tumour_slices.png` (Fig. 3), `dice_vs_size.png` (Fig. 4a/c), `overlays.png` (Fig. 4b/d), "
        "`tumour_free_dice.png` (Fig. 5), `glf_coefficients.png` (Fig. 6), `glf_tversky_trajectory.png` (Fig. 7).",
        "",
    ]
    return "\n".join(lines)

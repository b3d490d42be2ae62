"""The adaptive-GLF study: paper training with seeds, and the rule ablation.

Every number of docs/lung.md's "paper training" and "ablation" tables comes from this script
(``results.json`` in ``--out``). It uses the library only (data.ct, architectures.munet,
keras_losses, evaluation.segmentation), so it runs the same whatever shape tasks/ has.

    # the rule readings (guard x beta^2 statistic x counts), one seed, on both data sources
    python benchmarks/bench_glf_study.py ablation --out reports/glf-study
    # D, E, T, G(D), G(E) at the paper's Adam 1e-4, three seeds, on the real patches
    python benchmarks/bench_glf_study.py paper --out reports/glf-study --seeds 0,1,2

Training: mU-Net (paper Sec. II-C init: truncated normal sd 0.05, bias 0.1, batch-norm decay
0.9, dropout 0.6), Adam, batch 8, augmentation as in train.py; validation Dice (pooled pixels
at 0.5 over the validation patients) every ``--eval-every`` steps; the weights of the best
validation Dice are the ones tested. G(D) = deterministic rule (library defaults unless the
ablation says otherwise), G(E) = exploratory rule, exact mode; both start from the Dice values
(1, 1, 1) (paper Fig. 6: "all three coefficients are initialized to the corresponding Dice
values"). T and E use fixed coefficients (``--tversky``, ``--beta2``), see docs/lung.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PATCHES = "../shared/data/msd_lung_patches"
ABLATION_GUARDS = ("literal", "reversed", "off")
ABLATION_BETA2 = ("p_r", "beta2_p_r")
ABLATION_COUNTS = ("soft", "hard")
MODELS = ("D", "E", "T", "G(D)", "G(E)")
# Paper's numbers (Seo et al. 2021, Figs. 3 and 5 / text of Sec. III), lung, in %.
PAPER_LUNG = {
    "recall": {"G(D)": 88.3, "G(E)": 90.4, "best conventional": 82.0},
    "tumour_free_dice": {"T": 71.6, "G(D)": 75.4, "G(E)": 77.4},
    "precision_max": 96.3,
}


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(value, indent=1, default=float), encoding="utf-8")
    os.replace(tmp, path)


def load_results(out: Path) -> dict:
    path = out / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def make_data(source: str | None, image_size: int, seed: int):
    from data.ct import CTDataConfig, prepare_ct_data

    cfg = CTDataConfig(
        task="lung", data_dir=source, image_size=image_size, seed=seed, augment=True, verbose=False
    )
    return prepare_ct_data(cfg)


def build_network(image_size: int, depth: int, filters: int):
    from architectures.munet import build_munet

    # Paper Sec. II-C: truncated normal sd 0.05, bias 0.1, batch-norm decay 0.9, dropout 0.6.
    return build_munet(
        (image_size, image_size, 1),
        depth=depth,
        base_filters=filters,
        batch_norm=True,
        bn_momentum=0.9,
        dropout=0.6,
        kernel_stddev=0.05,
        bias_value=0.1,
    )


def _val_dice(model, data, batch: int) -> float:
    import numpy as np

    tp = fp = fn = 0.0
    for x, y in data.val(batch):
        p = np.asarray(model.predict_on_batch(np.asarray(x))) >= 0.5
        t = np.asarray(y) > 0.5
        tp += float(np.sum(p & t))
        fp += float(np.sum(p & ~t))
        fn += float(np.sum(~p & t))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def test_metrics(model, data, batch: int = 16) -> dict:
    import numpy as np

    from evaluation.segmentation import concat_counts, slice_counts, summarize

    parts = []
    for x, y in data.test(batch, all_slices=True):
        probs = np.asarray(model.predict_on_batch(np.asarray(x)))
        parts.append(slice_counts(np.asarray(y), probs, 0.5))
    s = summarize(concat_counts(parts))
    return {
        "precision": s["tumour_slices"]["precision"],
        "recall": s["tumour_slices"]["recall"],
        "dice": s["tumour_slices"]["dice"],
        "tumour_free_dice": s["tumour_free_slices"]["dice"],
        "n_tumour": s["tumour_slices"]["n"],
        "n_tumour_free": s["tumour_free_slices"]["n"],
    }


def train_one(
    kind: str,
    data,
    *,
    image_size: int,
    depth: int,
    filters: int,
    steps: int,
    eval_every: int,
    lr: float,
    seed: int,
    batch: int = 8,
    rule_options: dict | None = None,
    tversky=(0.3, 0.7),
    beta2: float = 2.0,
    run_dir: Path | None = None,
) -> dict:
    """Train model ``kind`` (D, E, T, G(D), G(E)); test the best-validation weights."""
    import keras

    import keras_losses as kl
    from keras_losses.adaptive import prepare_adaptive_glf, read_trajectory
    from keras_losses.adaptive.trajectory import summarize_trajectory

    keras.utils.set_random_seed(seed)
    net = build_network(image_size, depth, filters)
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    callbacks = []
    if kind in ("G(D)", "G(E)"):
        rule = "det" if kind == "G(D)" else "exp"
        options = dict(rule_options or {}) if rule == "det" else {}
        model, callbacks = prepare_adaptive_glf(
            net, kl.GeneralizedLoss(), rule, optimizer, run_dir=run_dir, rule_options=options
        )
    else:
        loss = {
            "D": lambda: kl.DiceLoss(),
            "E": lambda: kl.EffectivenessLoss(beta2=beta2),
            "T": lambda: kl.TverskyLoss(alpha=tversky[0], beta=tversky[1]),
        }[kind]()
        net.compile(optimizer=optimizer, loss=loss)
        model = net

    curve, best = [], {"dice": -1.0, "weights": None, "step": 0}

    class Validate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            dice = _val_dice(model, data, 16)
            step = (epoch + 1) * eval_every
            curve.append([step, dice])
            if dice > best["dice"]:
                best.update(dice=dice, weights=model.get_weights(), step=step)

    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(
        data.train(batch).repeat(),
        steps_per_epoch=eval_every,
        epochs=max(1, steps // eval_every),
        callbacks=[*callbacks, Validate()],
        verbose=0,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    last = test_metrics(model, data)
    model.set_weights(best["weights"])
    result = {
        "model": kind,
        "seed": seed,
        "steps": steps,
        "test": test_metrics(model, data),
        "test_last": last,
        "best_val_dice": best["dice"],
        "best_step": best["step"],
        "val_curve": curve,
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
    }
    if kind in ("G(D)", "G(E)") and run_dir is not None:
        rows = read_trajectory(Path(run_dir) / "glf_trajectory.csv")
        result["trajectory"] = summarize_trajectory(rows)
        result["rule_options"] = rule_options or {}
    keras.backend.clear_session()
    return result


def _spec(args, source: str | None) -> dict:
    if source is None:  # the built-in phantom, as the main job
        return {
            "image_size": args.phantom_size,
            "depth": args.phantom_depth,
            "filters": args.phantom_filters,
            "steps": args.phantom_steps,
            "eval_every": args.phantom_eval_every,
        }
    return {
        "image_size": 48,
        "depth": args.depth,
        "filters": args.filters,
        "steps": args.steps,
        "eval_every": args.eval_every,
    }


def run_ablation(args) -> dict:
    out = Path(args.out)
    results = load_results(out)
    table = results.setdefault("ablation", {})
    sources = {"patches": args.data_dir, "phantom": None}
    for name in args.sources.split(","):
        source = sources[name]
        spec = _spec(args, source)
        data = make_data(source, spec["image_size"], args.seed)
        for guard in ABLATION_GUARDS:
            for b2 in ABLATION_BETA2:
                for counts in ABLATION_COUNTS:
                    key = f"{name}/guard={guard}/beta2={b2}/counts={counts}"
                    if key in table:
                        continue
                    options = {"guard_mode": guard, "beta2_statistic": b2, "counts": counts}
                    print(f"[ablation] {key}", flush=True)
                    r = train_one(
                        "G(D)",
                        data,
                        **spec,
                        lr=args.lr,
                        seed=args.seed,
                        rule_options=options,
                        run_dir=out / "runs" / key.replace("/", "_").replace("=", "-"),
                    )
                    r["source"] = name
                    table[key] = r
                    results["ablation_settings"] = {
                        "patches": {**_spec(args, args.data_dir), "data": args.data_dir},
                        "phantom": _spec(args, None),
                        "lr": args.lr,
                        "seed": args.seed,
                        "statistic": "per-image (library default)",
                        "guard_scale": "none (library default)",
                    }
                    _write_json(out / "results.json", results)
                    t = r["test"]
                    print(
                        f"  P {t['precision']:.3f} R {t['recall']:.3f} Dice {t['dice']:.3f} "
                        f"TF-Dice {t['tumour_free_dice']} final {r['trajectory']['final']} "
                        f"at-bound {r['trajectory']['max_at_bound_fraction']:.2f} "
                        f"fig6 {r['trajectory']['fig6']['alpha_p_in_band_fraction']:.2f}/"
                        f"{r['trajectory']['fig6']['alpha_n_in_band_fraction']:.2f}/"
                        f"{r['trajectory']['fig6']['beta2_above_1_fraction']:.2f} "
                        f"({r['train_cpu_s']} s CPU)",
                        flush=True,
                    )
    return results


def _mean_sd(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": m, "sd": sd, "n": len(values), "values": values}


def aggregate_paper(runs: dict) -> dict:
    """Mean and sd over seeds per model and metric, and the paper's claims checked."""
    summary = {}
    for kind in MODELS:
        rs = [r for r in runs.values() if r["model"] == kind]
        if not rs:
            continue
        summary[kind] = {
            m: _mean_sd([r["test"][m] for r in rs])
            for m in ("precision", "recall", "dice", "tumour_free_dice")
        }
        summary[kind]["best_val_dice"] = _mean_sd([r["best_val_dice"] for r in rs])
    claims = {}
    if all(k in summary for k in MODELS):
        best_fixed = max(("D", "E", "T"), key=lambda k: summary[k]["recall"]["mean"])
        for g in ("G(D)", "G(E)"):
            claims[f"{g} recall >= best fixed ({best_fixed}) recall"] = {
                "paper": f"{PAPER_LUNG['recall'][g]} vs {PAPER_LUNG['recall']['best conventional']}",
                "ours": [summary[g]["recall"]["mean"], summary[best_fixed]["recall"]["mean"]],
                "holds": summary[g]["recall"]["mean"] >= summary[best_fixed]["recall"]["mean"],
            }
            claims[f"{g} Dice >= T Dice"] = {
                "paper": "about 10 % higher (Fig. 3c)",
                "ours": [summary[g]["dice"]["mean"], summary["T"]["dice"]["mean"]],
                "holds": summary[g]["dice"]["mean"] >= summary["T"]["dice"]["mean"],
            }
            claims[f"{g} tumour-free Dice >= T tumour-free Dice"] = {
                "paper": f"{PAPER_LUNG['tumour_free_dice'][g]} vs {PAPER_LUNG['tumour_free_dice']['T']}",
                "ours": [
                    summary[g]["tumour_free_dice"]["mean"],
                    summary["T"]["tumour_free_dice"]["mean"],
                ],
                "holds": summary[g]["tumour_free_dice"]["mean"]
                >= summary["T"]["tumour_free_dice"]["mean"],
            }
    return {"summary": summary, "claims": claims}


def run_paper(args) -> dict:
    out = Path(args.out)
    results = load_results(out)
    runs = results.setdefault("paper_runs", {})
    spec = _spec(args, args.data_dir)
    for seed in (int(s) for s in args.seeds.split(",")):
        data = make_data(args.data_dir, 48, seed)
        for kind in args.models.split(","):
            key = f"{kind}/seed={seed}"
            if key in runs:
                continue
            print(f"[paper] {key}", flush=True)
            r = train_one(
                kind,
                data,
                **spec,
                lr=args.lr,
                seed=seed,
                tversky=(args.tversky, round(1 - args.tversky, 6)),
                beta2=args.beta2,
                run_dir=out
                / "runs"
                / f"paper_{kind}_seed-{seed}".replace("(", "").replace(")", ""),
            )
            runs[key] = r
            results["paper_settings"] = {
                **spec,
                "data": args.data_dir,
                "lr": args.lr,
                "batch": 8,
                "tversky": [args.tversky, round(1 - args.tversky, 6)],
                "beta2": args.beta2,
                "G(D)": "deterministic rule, library defaults, from (1, 1, 1)",
                "G(E)": "exploratory rule, exact mode, from (1, 1, 1)",
            }
            results["paper"] = aggregate_paper(runs)
            results["paper_reference"] = PAPER_LUNG
            _write_json(out / "results.json", results)
            t = r["test"]
            print(
                f"  P {t['precision']:.3f} R {t['recall']:.3f} Dice {t['dice']:.3f} "
                f"TF-Dice {t['tumour_free_dice']} best val {r['best_val_dice']:.3f} "
                f"@{r['best_step']} ({r['train_cpu_s']} s CPU, {r['train_wall_s']} s wall)",
                flush=True,
            )
    return results


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _ms(stat) -> str:
    return "n/a" if stat["mean"] is None else f"{100 * stat['mean']:.1f} ± {100 * stat['sd']:.1f}"


def report(paths: list[str]) -> str:
    """Markdown tables (paper training, claims, ablation) from one or more results.json."""
    merged: dict = {}
    for path in paths:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        for key, value in r.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
    lines = []
    if merged.get("paper_runs"):
        agg = aggregate_paper(merged["paper_runs"])
        lines += [
            "| model | precision | recall | Dice | tumour-free Dice | best val Dice | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, m in agg["summary"].items():
            rec = PAPER_LUNG["recall"].get(k)
            tfd = PAPER_LUNG["tumour_free_dice"].get(k)
            lines.append(
                f"| {k} | {_ms(m['precision'])} | {_ms(m['recall'])}{f' [{rec}]' if rec else ''} | "
                f"{_ms(m['dice'])} | {_ms(m['tumour_free_dice'])}{f' [{tfd}]' if tfd else ''} | "
                f"{_ms(m['best_val_dice'])} | {m['dice']['n']} |"
            )
        lines += ["", "| claim | paper | ours (mean) | held |", "|---|---|---|---|"]
        for claim, c in agg["claims"].items():
            lines.append(
                f"| {claim} | {c['paper']} | {_pct(c['ours'][0])} vs {_pct(c['ours'][1])} | "
                f"{'yes' if c['holds'] else 'no'} |"
            )
        for kind in ("G(E)", "G(D)"):
            for key, r in merged["paper_runs"].items():
                if r["model"] == kind and "trajectory" in r:
                    tr = r["trajectory"]
                    lines.append(
                        f"\n{key}: final {tr['final']}, max at floor/ceiling "
                        f"{tr['max_at_bound_fraction']:.2f}, Fig. 6 fractions {tr['fig6']}"
                    )
        lines.append("")
    if merged.get("ablation"):
        lines += [
            "| data | guard | beta^2 statistic | counts | precision | recall | Dice | tumour-free Dice | "
            "final alpha_P, alpha_N, beta^2 | steps at floor/ceiling: alpha_P / alpha_N / beta^2 | "
            "alpha_P, alpha_N in [0.5, 2] (% of steps) | beta^2 > 1 (% of steps) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, r in merged["ablation"].items():
            source, guard, b2, counts = (p.split("=")[-1] for p in key.split("/"))
            t, tr = r["test"], r["trajectory"]
            final = ", ".join(f"{tr['final'][c]:.3g}" for c in ("alpha_p", "alpha_n", "beta2"))
            at = " / ".join(
                f"{100 * tr['at_bound_fraction'][c]['floor_or_ceiling']:.0f}"
                for c in ("alpha_p", "alpha_n", "beta2")
            )
            f6 = tr["fig6"]
            lines.append(
                f"| {source} | {guard} | {b2} | {counts} | {_pct(t['precision'])} | "
                f"{_pct(t['recall'])} | {_pct(t['dice'])} | {_pct(t['tumour_free_dice'])} | "
                f"{final} | {at} % | {100 * f6['alpha_p_in_band_fraction']:.0f} / "
                f"{100 * f6['alpha_n_in_band_fraction']:.0f} | "
                f"{100 * f6['beta2_above_1_fraction']:.0f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="markdown tables from results.json files")
    rep.add_argument("results", nargs="+", help="results.json files (merged)")
    for name in ("ablation", "paper"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, help="output folder (results.json, runs/)")
        p.add_argument("--data-dir", default=PATCHES, help=f"real lung patches (default {PATCHES})")
        p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
        p.add_argument("--depth", type=int, default=3, help="mU-Net depth on the patches")
        p.add_argument("--filters", type=int, default=8, help="mU-Net base filters on the patches")
        p.add_argument("--steps", type=int, default=1000, help="optimizer steps on the patches")
        p.add_argument("--eval-every", type=int, default=50, help="steps between validations")
    abl = sub.choices["ablation"]
    abl.add_argument("--seed", type=int, default=0, help="seed (split, weights, augmentation)")
    abl.add_argument("--sources", default="patches,phantom", help="patches and/or phantom")
    abl.add_argument("--phantom-size", type=int, default=128, help="phantom slice size")
    abl.add_argument("--phantom-depth", type=int, default=4, help="mU-Net depth on the phantom")
    abl.add_argument("--phantom-filters", type=int, default=8, help="base filters, phantom")
    abl.add_argument("--phantom-steps", type=int, default=150, help="steps on the phantom")
    abl.add_argument("--phantom-eval-every", type=int, default=30, help="validation interval")
    pap = sub.choices["paper"]
    pap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    pap.add_argument("--models", default=",".join(MODELS), help="models to train")
    pap.add_argument("--tversky", type=float, default=0.3, help="Tversky alpha (beta = 1 - alpha)")
    pap.add_argument("--beta2", type=float, default=2.0, help="Effectiveness beta^2")
    args = parser.parse_args(argv)
    if args.command == "report":
        print(report(args.results))
    elif args.command == "ablation":
        run_ablation(args)
    else:
        run_paper(args)


if __name__ == "__main__":
    main()

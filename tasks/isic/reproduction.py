"""The lossest reproduction: vanilla vs loss estimator, ODIN, and its report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tasks.common import model_of_run
from tasks.isic.config import EvalConfig, IsicConfig, log
from tasks.isic.evaluation import build_eval_data, evaluate_model
from tasks.isic.figures import plot_scores, plot_summary
from tasks.isic.paper import PAPER
from tasks.isic.training import run_training

# --quick: what fits a shared 2-core CPU in about half an hour (everything else as in the paper)
QUICK = {
    "image_size": 64,
    "width": 0.25,
    "weights": "none",
    "max_per_class": 600,
    "epochs": 24,
    "lr_halve_every": 8,
    "batch_size": 32,
    "max_ood": 300,
}


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="ISIC 2019 / HAM10000 folder (default: the built-in synthetic set)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of split, sampling and initialization (default: 0)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder"
    )
    for key, kind in (
        ("image_size", int),
        ("width", float),
        ("weights", str),
        ("max_per_class", int),
        ("epochs", int),
        ("lr_halve_every", int),
        ("batch_size", int),
        ("max_ood", int),
    ):
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=kind,
            default=None,
            dest=key,
            help=f"override (--quick: {QUICK[key]}; full: the paper's default)",
        )


def reproduce(args) -> Path:
    import keras

    import keras_losses  # noqa: F401
    from training import io

    out = Path(args.out or "reports/lossest")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(
            f"{out} already exists; pass --overwrite to replace it or --out to choose another folder"
        )
    settings = dict(QUICK) if args.quick else {"max_ood": 500}
    for key in QUICK:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    max_ood = settings.pop("max_ood")
    results, scores = {}, {}
    data = None
    for key, loss in (("vanilla", "ce"), ("proposed", "ce+loss-estimator")):
        cfg = IsicConfig(loss=loss, data_dir=args.data_dir, seed=args.seed, **settings)
        log(f"training {key} ({loss})")
        run = run_training(cfg, out / key, overwrite=True)
        ecfg = EvalConfig(max_ood=max_ood)
        if data is None:  # same split (same seed) for both models: build the OOD sets once
            data = build_eval_data(run, ecfg)
        model = keras.saving.load_model(model_of_run(run)[1], compile=False)
        results[key], scores[key] = evaluate_model(model, data, ecfg)
        results[key]["history"] = str(run / "history.csv")
    summary = {
        "experiment": "lossest",
        "paper": "Narayanaswamy et al. 2021, arXiv:2103.03788",
        "settings": {
            **dataclasses.asdict(IsicConfig(data_dir=args.data_dir, seed=args.seed, **settings)),
            "max_ood": max_ood,
            "quick": bool(args.quick),
        },
        "paper_values": PAPER,
        "ood_set_sizes": {
            k: int(len(v)) for k, v in data["sets"].items() if not k.endswith("-labels")
        },
        **results,
    }
    io.write_json(out / "results.json", summary)
    plot_summary(results, PAPER, out / "summary.png")
    plot_scores(scores, out / "odin_scores.png")
    io.write_text(out / "report.md", report_markdown(summary))
    log(f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'summary.png'}")
    return out


def report_markdown(s: dict) -> str:
    v, p = s["vanilla"], s["proposed"]
    st = s["settings"]
    lines = [
        "# Loss estimators and ODIN on dermoscopy (Narayanaswamy et al. 2021)",
        "",
        f"Data: `{st['data_dir'] or 'built-in synthetic set'}`; image size {st['image_size']} px, VGG-16 width {st['width']}, "
        f"weights {st['weights']}, {st['epochs']} epochs (lr halved every {st['lr_halve_every']}), batch {st['batch_size']}, "
        f"at most {st['max_per_class'] or 'all'} images per class, seed {st['seed']}; {v['n_val']} validation images; "
        f"in-distribution classes {', '.join(st['classes'])}.",
        "",
        "## Classification (cf. Fig. 3)",
        "",
        "| | paper vanilla | ours vanilla | paper proposed | ours proposed |",
        "|---|---|---|---|---|",
        f"| balanced accuracy % | {s['paper_values']['balanced_accuracy']['vanilla']} | {v['balanced_accuracy']:.2f} | "
        f"{s['paper_values']['balanced_accuracy']['proposed']} | {p['balanced_accuracy']:.2f} |",
    ]
    for c in v["sensitivity"]:
        lines.append(
            f"| sensitivity {c} % | - | {v['sensitivity'][c]:.2f} | - | {p['sensitivity'][c]:.2f} |"
        )
    lines += [
        "",
        "## OOD detection with ODIN (cf. Table 1, Fig. 5)",
        "",
        f"T and eps tuned on `{v['odin']['tuned_on']}` (vanilla: T={v['odin']['temperature']:g}, eps={v['odin']['epsilon']:g}; "
        f"proposed: T={p['odin']['temperature']:g}, eps={p['odin']['epsilon']:g}) and applied unchanged to the other sets.",
        "",
        "| OOD set | n | FPR@95TPR paper (v/p) | FPR@95TPR ours (v/p) | det. error ours (v/p) | AUROC paper (v/p) | AUROC ours (v/p) | AUPR-In ours (v/p) | AUPR-Out ours (v/p) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    pv = s["paper_values"]
    for name, mv in v["odin"]["sets"].items():
        mp = p["odin"]["sets"][name]
        fpr_paper = (
            "/".join(f"{x:g}" for x in pv["fpr_at_95_tpr"][name])
            if name in pv["fpr_at_95_tpr"]
            else "-"
        )
        auroc_paper = "/".join(f"{x:g}" for x in pv["auroc"][name]) if name in pv["auroc"] else "-"
        lines.append(
            f"| {name} | {mv['n_out']} | {fpr_paper} | {mv['fpr_at_95_tpr']:.2f}/{mp['fpr_at_95_tpr']:.2f} | "
            f"{mv['detection_error']:.2f}/{mp['detection_error']:.2f} | {auroc_paper} | {mv['auroc']:.2f}/{mp['auroc']:.2f} | "
            f"{mv['aupr_in']:.2f}/{mp['aupr_in']:.2f} | {mv['aupr_out']:.2f}/{mp['aupr_out']:.2f} |"
        )
    lines.append(
        f"| clin-skin | - | - | - | - | {pv['clin-skin_auroc'][0]}/{pv['clin-skin_auroc'][1]} | no equivalent set | - | - |"
    )
    lines += [
        "",
        "Max-softmax baseline (T=1, eps=0) AUROC, vanilla/proposed: "
        + ", ".join(f"{n} {v['msp'][n]['auroc']:.2f}/{p['msp'][n]['auroc']:.2f}" for n in v["msp"])
        + ".",
        "",
        "Set notes:",
        "",
    ]
    lines += [f"- {k}: {t}" for k, t in pv["sets"].items()]
    if "new_class_labels" in v:
        lines.append(f"- new-class here = {', '.join(v['new_class_labels'])}")
    lines += ["", "![summary](summary.png)", "", "![ODIN scores](odin_scores.png)", ""]
    return "\n".join(lines)

"""Balanced accuracy and ODIN OOD detection of saved isic runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.common import model_of_run
from tasks.isic.config import OOD_SETS, EvalConfig, log
from tasks.isic.figures import plot_scores
from tasks.isic.training import list_records, load, predict_probs, resolve_data_dir
from training.config import add_arguments, from_args


def build_eval_data(run_dir, ecfg: EvalConfig) -> dict:
    """Validation images and every OOD set, from a run's config and split."""
    import numpy as np

    from data import ood_sets
    from training import io
    from training.rundir import load_run_config

    conf = load_run_config(run_dir)
    if ecfg.data_dir:
        conf["data_dir"] = ecfg.data_dir
    data_dir = resolve_data_dir(conf)
    inside, held = list_records(conf, data_dir)
    split = io.read_json(Path(run_dir) / "split.json")
    by_id = {r.image_id: r for r in inside}
    missing = [i for i in split["val"] if i not in by_id]
    if missing:
        from data.msd import DataError

        raise DataError(
            f"{data_dir}: the run's validation split names images that are not there: {missing[:5]}"
        )
    val = [by_id[i] for i in split["val"]]
    classes = list(conf["classes"])
    images, masks = load(val, conf)
    labels = np.array([classes.index(r.label) for r in val])
    size, sog = conf["image_size"], conf["sog_power"] or None
    n, seed = ecfg.max_ood, conf.get("seed", 0)
    sets = {}
    for name in ecfg.ood_sets:
        if name == "b-box":
            sets[name] = ood_sets.bbox_images(images, masks)[:n]
        elif name == "b-box-70":
            sets[name] = ood_sets.bbox70_images(images, masks)[:n]
        elif name == "derm-skin":
            sets[name] = ood_sets.derm_skin_images(images, masks, seed=seed)[:n]
        elif name == "natural":
            sets[name] = ood_sets.natural_images(min(n, max(len(images), 50)), size, seed, sog)
        elif name == "histology":
            sets[name] = ood_sets.histology_images(min(n, max(len(images), 50)), size, seed, sog)
        elif name == "new-class":
            rng = np.random.default_rng(seed)
            pick = [held[i] for i in sorted(rng.permutation(len(held))[:n])]
            sets[name] = load(pick, conf)[0] if pick else np.zeros((0, size, size, 3), np.uint8)
            sets["new-class-labels"] = sorted({r.label for r in pick})
        else:
            raise ValueError(
                f"--ood-sets: unknown set {name!r}; expected some of {', '.join(OOD_SETS)}"
            )
    if ecfg.ood_folder:
        sets["folder"] = ood_sets.folder_images(
            ecfg.ood_folder, size, conf["crop_fraction"], sog, limit=n
        )
    return {
        "conf": conf,
        "images": images,
        "masks": masks,
        "labels": labels,
        "classes": classes,
        "sets": sets,
    }


def evaluate_model(model, data: dict, ecfg: EvalConfig) -> dict:
    """Classification metrics and OOD metrics (max-softmax baseline and tuned ODIN)."""
    import numpy as np

    from architectures.vgg import logits_model
    from evaluation.odin import odin_scores, tune_odin
    from evaluation.ood import balanced_accuracy, ood_metrics, per_class_sensitivity

    classes, images, labels = data["classes"], data["images"], data["labels"]
    bs = ecfg.eval_batch_size
    probs = predict_probs(model, images, bs)
    pred = np.argmax(probs, axis=1)
    confusion = np.zeros((len(classes), len(classes)), int)
    np.add.at(confusion, (labels, pred), 1)
    result = {
        "balanced_accuracy": 100 * balanced_accuracy(labels, pred, len(classes)),
        "accuracy": 100 * float(np.mean(pred == labels)),
        "sensitivity": dict(
            zip(
                classes,
                [100 * s for s in per_class_sensitivity(labels, pred, len(classes))],
                strict=True,
            )
        ),
        "confusion": confusion.tolist(),
        "n_val": len(labels),
    }
    log(f"balanced accuracy {result['balanced_accuracy']:.2f} % on {len(labels)} validation images")
    sets = {k: v for k, v in data["sets"].items() if not k.endswith("-labels") and len(v)}
    lm = logits_model(model)
    msp_in = odin_scores(lm, images, 1.0, 0.0, batch_size=bs)
    result["msp"] = {
        name: ood_metrics(msp_in, odin_scores(lm, x, 1.0, 0.0, batch_size=bs))
        for name, x in sets.items()
    }
    if ecfg.odin_tune_set not in sets:
        raise ValueError(
            f"--odin-tune-set {ecfg.odin_tune_set!r} is not among the built OOD sets ({', '.join(sets)})"
        )
    log(f"tuning ODIN on '{ecfg.odin_tune_set}'")
    t, e, table = tune_odin(
        lm, images, sets[ecfg.odin_tune_set], ecfg.temperatures, ecfg.epsilons, batch_size=bs
    )
    log(f"ODIN: T={t:g}, eps={e:g}")
    odin_in = odin_scores(lm, images, t, e, batch_size=bs)
    scores = {"in": odin_in}
    result["odin"] = {
        "temperature": t,
        "epsilon": e,
        # Score at 95 % TPR on the validation (in-distribution) images: predict.py flags an
        # image out-of-distribution below it.
        "threshold": float(np.percentile(odin_in, 5)),
        "tuned_on": ecfg.odin_tune_set,
        "grid": table,
        "sets": {},
    }
    for name, x in sets.items():
        scores[name] = odin_scores(lm, x, t, e, batch_size=bs)
        result["odin"]["sets"][name] = ood_metrics(odin_in, scores[name])
        m = result["odin"]["sets"][name]
        log(
            f"  {name:10s} n={m['n_out']:4d}  FPR@95TPR {m['fpr_at_95_tpr']:6.2f}  AUROC {m['auroc']:6.2f}"
        )
    if "new-class-labels" in data["sets"]:
        result["new_class_labels"] = data["sets"]["new-class-labels"]
    return result, scores


def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument(
        "--model", required=True, help="a run directory (best.keras) or a .keras file"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder for metrics.json and figures (default: <run>/evaluation)",
    )
    add_arguments(parser, EvalConfig)


def evaluate(args) -> dict:
    import keras

    import keras_losses  # noqa: F401  (registers the losses for load_model)
    from training import io

    ecfg = from_args(EvalConfig, args)
    run_dir, model_path = model_of_run(args.model)
    out = Path(args.out) if args.out else run_dir / "evaluation"
    data = build_eval_data(run_dir, ecfg)
    model = keras.saving.load_model(model_path, compile=False)
    result, scores = evaluate_model(model, data, ecfg)
    result["model"] = str(model_path)
    io.write_json(out / "metrics.json", result)
    plot_scores({"model": scores}, out / "odin_scores.png")
    log(f"wrote {out / 'metrics.json'}")
    return result

"""Test-split balanced accuracy and ODIN OOD detection of saved isic runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.common import model_of_run
from tasks.isic.config import OOD_SETS, EvalConfig, log
from tasks.isic.figures import IN_KEY, plot_scores
from tasks.isic.training import list_records, load, predict_probs, resolve_data_dir
from training.config import add_arguments, from_args


def _records_by_id(records, ids, data_dir, what):
    from data.validate import DataError

    by_id = {r.image_id: r for r in records}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(
            f"{data_dir}: the run's {what} split names images that are not there: {missing[:5]}"
        )
    return [by_id[i] for i in ids]


def build_eval_data(run_dir, ecfg: EvalConfig) -> dict:
    """Validation and test images of a run's split, and every OOD set.

    Validation (model selection, ODIN tuning and threshold) and test (every reported number)
    come from ``split.json``. B-Box, B-Box-70 and Derm-Skin are cut from ORIGINAL images of the
    in-distribution classes that were never used for training: the validation and test splits
    and, with ``--max-per-class``, the images left out, in one seeded order (so the sets may
    share source images, as transformations of the same held-out lesions). A B-Box image of a
    test lesion is a different input from the clean test image, and nothing is fitted on either.
    ``details`` records each set's size, its distinct source images and the splits they come
    from.
    """
    import numpy as np

    from core import io
    from data import ood_sets, validate
    from data.dermoscopy import list_dermoscopy
    from data.validate import DataError
    from tasks.isic.training import crop_shape
    from training.rundir import load_run_config

    conf = load_run_config(run_dir)
    if ecfg.data_dir:
        conf["data_dir"] = ecfg.data_dir
    data_dir = resolve_data_dir(conf)
    inside, held = list_records(conf, data_dir)
    split = io.read_json(Path(run_dir) / "split.json", expect=dict)
    validate.raise_problems(validate.check_disjoint(split, Path(run_dir) / "split.json"))
    if "test" not in split:
        raise DataError(
            f"{Path(run_dir) / 'split.json'} has no test split (a run trained before the "
            "train/validation/test split); train it again"
        )
    classes = list(conf["classes"])
    val = _records_by_id(inside, split["val"], data_dir, "validation")
    test = _records_by_id(inside, split["test"], data_dir, "test")
    val_images, _ = load(val, conf)
    test_images, _ = load(test, conf)
    size, crop, sog = conf["image_size"], conf["crop_fraction"], conf["sog_power"] or None
    shape = crop_shape(conf)
    n, seed = ecfg.max_ood, conf.get("seed", 0)
    rng = np.random.default_rng(seed)
    train = set(split["train"])
    every, _ = list_dermoscopy(data_dir, conf.get("layout", "auto"))
    pool = [r for r in every if r.label in classes and r.image_id not in train]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    where = {i: "validation" for i in split["val"]} | {i: "test" for i in split["test"]}

    def sources(ids) -> dict:
        count = {}
        for i in ids:
            k = where.get(i, "left out by --max-per-class")
            count[k] = count.get(k, 0) + 1
        return {"distinct_sources": len(set(ids)), "source_splits": count}

    sets, notes, details = {}, {}, {}
    for name in ecfg.ood_sets:
        log(f"building OOD set '{name}'")
        if name in ("b-box", "b-box-70", "b-box-70-image"):
            kind = {"b-box": "lesion", "b-box-70": "lesion-70", "b-box-70-image": "image-70"}[name]
            sets[name], ids = ood_sets.bbox_images(
                pool, size, crop, sog, kind=kind, limit=n, crop_shape=shape, with_ids=True
            )
            details[name] = sources(ids)
        elif name == "derm-skin":
            sets[name], ids = ood_sets.derm_skin_images(
                pool, size, crop, sog, seed=seed, limit=n, crop_shape=shape, with_ids=True
            )
            details[name] = sources(ids)
        elif name == "natural":
            sets[name] = ood_sets.natural_images(n, size, crop, sog, seed, crop_shape=shape)
            details[name] = {
                "distinct_sources": len(ood_sets.natural_photographs()),
                "source_splits": {"photographs shipped with the installed packages": n},
            }
        elif name == "histology":
            sets[name] = ood_sets.histology_images(n, size, crop, sog, seed, crop_shape=shape)
            details[name] = {
                "distinct_sources": 1,
                "source_splits": {"skimage.data.immunohistochemistry": n},
            }
        elif name == "new-class":
            pick = [held[i] for i in sorted(rng.permutation(len(held))[:n])]
            sets[name] = load(pick, conf)[0] if pick else np.zeros((0, size, size, 3), np.uint8)
            notes[name] = sorted({r.label for r in pick})
            details[name] = {
                "distinct_sources": len({r.image_id for r in pick}),
                "source_splits": {f"held-out classes {', '.join(notes[name])}": len(pick)},
            }
        else:
            raise ValueError(
                f"--ood-sets: unknown set {name!r}; expected some of {', '.join(OOD_SETS)}"
            )
        details[name] = {"n": int(len(sets[name])), **details[name]}
    if ecfg.ood_folder:
        sets["folder"] = ood_sets.folder_images(
            ecfg.ood_folder, size, crop, sog, limit=n, crop_shape=shape
        )
        details["folder"] = {"n": int(len(sets["folder"])), "source_splits": {ecfg.ood_folder: 1}}
    empty = [k for k, x in sets.items() if len(x) == 0]
    if empty:
        log(f"OOD sets with no image (left out): {', '.join(empty)}")
    return {
        "conf": conf,
        "val": (val_images, np.array([classes.index(r.label) for r in val])),
        "test": (test_images, np.array([classes.index(r.label) for r in test])),
        "classes": classes,
        "sets": {k: x for k, x in sets.items() if len(x)},
        "notes": notes,
        "details": details,
        "pool_size": len(pool),
    }


def _classification(model, images, labels, classes, bs) -> dict:
    import numpy as np

    from evaluation.ood import balanced_accuracy, per_class_sensitivity

    pred = np.argmax(predict_probs(model, images, bs), axis=1)
    confusion = np.zeros((len(classes), len(classes)), int)
    np.add.at(confusion, (labels, pred), 1)
    sens = per_class_sensitivity(labels, pred, len(classes))
    return {
        "balanced_accuracy": 100 * balanced_accuracy(labels, pred),
        "accuracy": 100 * float(np.mean(pred == labels)),
        "sensitivity": {c: 100 * s for c, s in zip(classes, sens, strict=True)},
        "confusion": confusion.tolist(),
        "n": int(len(labels)),
    }


def _estimator_kendall_tau(model, images, labels, num_classes, bs):
    """Kendall tau between the loss estimate and the true unweighted CE (None for vanilla)."""
    import numpy as np
    from scipy.stats import kendalltau

    if model.output_shape[-1] != num_classes + 1:
        return None
    out = model.predict(np.asarray(images, np.float32), batch_size=bs, verbose=0)
    p = np.clip(out[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(kendalltau(out[:, -1], -np.log(p)).statistic)


def evaluate_model(model, data: dict, ecfg: EvalConfig) -> tuple[dict, dict]:
    """Test-split classification and OOD metrics (max-softmax baseline and tuned ODIN).

    ODIN's T and eps are tuned on ``ecfg.odin_tune_set`` against the VALIDATION images (paper
    Sec. 4.2: "The hyperparameters T and eta were fine tuned for both the models using the NCT
    dataset"); its threshold is the 95 % TPR score on validation. Every metric is then measured
    with the TEST images as the in-distribution set; the tuning set's own row is marked
    ``held_out: false``.
    """
    import numpy as np

    from architectures.vgg import logits_model
    from evaluation.odin import odin_scores, tune_odin
    from evaluation.ood import ood_metrics

    classes, bs = data["classes"], ecfg.eval_batch_size
    (x_val, y_val), (x_test, y_test) = data["val"], data["test"]
    result = _classification(model, x_test, y_test, classes, bs)
    result["val_balanced_accuracy"] = _classification(model, x_val, y_val, classes, bs)[
        "balanced_accuracy"
    ]
    tau = _estimator_kendall_tau(model, x_test, y_test, len(classes), bs)
    if tau is not None:
        result["estimator_kendall_tau"] = tau
    log(
        f"test balanced accuracy {result['balanced_accuracy']:.2f} % on {len(y_test)} images "
        f"(validation {result['val_balanced_accuracy']:.2f} %)"
    )
    sets = data["sets"]
    if ecfg.odin_tune_set not in sets:
        raise ValueError(
            f"--odin-tune-set {ecfg.odin_tune_set!r} is not among the built OOD sets ({', '.join(sets)})"
        )
    lm = logits_model(model)
    msp_in = odin_scores(lm, x_test, 1.0, 0.0, batch_size=bs)
    result["msp"] = {
        name: ood_metrics(msp_in, odin_scores(lm, x, 1.0, 0.0, batch_size=bs))
        for name, x in sets.items()
    }
    x_tune_in, x_tune_out = x_val, sets[ecfg.odin_tune_set]
    if ecfg.odin_tune_images:
        rng = np.random.default_rng(data["conf"].get("seed", 0))
        k = ecfg.odin_tune_images
        x_tune_in = x_val[np.sort(rng.permutation(len(x_val))[:k])]
        x_tune_out = x_tune_out[np.sort(rng.permutation(len(x_tune_out))[:k])]
    log(
        f"tuning ODIN on '{ecfg.odin_tune_set}' ({len(x_tune_out)} images) against "
        f"{len(x_tune_in)} validation images"
    )
    t, e, table = tune_odin(
        lm,
        x_tune_in,
        x_tune_out,
        ecfg.temperatures,
        ecfg.epsilons,
        batch_size=bs,
        verbose=False,
    )
    log(f"ODIN: T={t:g}, eps={e:g}")
    odin_val = odin_scores(lm, x_val, t, e, batch_size=bs)
    odin_in = odin_scores(lm, x_test, t, e, batch_size=bs)
    scores = {IN_KEY: odin_in}
    result["odin"] = {
        "temperature": t,
        "epsilon": e,
        # Score at 95 % TPR on the validation images: predict.py flags an image
        # out-of-distribution below it.
        "threshold": float(np.percentile(odin_val, 5)),
        "tuned_on": ecfg.odin_tune_set,
        "tuning_images": {"validation": int(len(x_tune_in)), "tuning set": int(len(x_tune_out))},
        "grid": table,
        "sets": {},
    }
    for name, x in sets.items():
        scores[name] = odin_scores(lm, x, t, e, batch_size=bs)
        m = ood_metrics(odin_in, scores[name])
        m["held_out"] = name != ecfg.odin_tune_set
        result["odin"]["sets"][name] = m
        log(
            f"  {name:15s} n={m['n_out']:4d}  FPR@95TPR {m['fpr_at_95_tpr']:6.2f}  AUROC {m['auroc']:6.2f}"
            + ("" if m["held_out"] else "  (tuning set)")
        )
    result["notes"] = data["notes"]
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

    import keras_losses  # noqa: F401  (registers the losses for load_model)
    from core import io
    from training.io import check_model_input, load_model

    ecfg = from_args(EvalConfig, args)
    run_dir, model_path = model_of_run(args.model)
    out = Path(args.out) if args.out else run_dir / "evaluation"
    data = build_eval_data(run_dir, ecfg)
    model = load_model(model_path, compile=False)
    check_model_input(model, data["test"][0].shape[1:], model_path)
    result, scores = evaluate_model(model, data, ecfg)
    result["model"] = str(model_path)
    io.write_json(out / "metrics.json", result)
    plot_scores({"model": scores}, out / "odin_scores.png")
    log(f"wrote {out / 'metrics.json'}")
    return result

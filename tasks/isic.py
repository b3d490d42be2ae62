"""Dermoscopy with a loss-estimator head and ODIN OOD detection (Narayanaswamy et al. 2021).

    python train.py --task isic --loss ce                  # vanilla VGG-16 (synthetic set)
    python train.py --task isic --loss ce+loss-estimator --data-dir ../shared/data/ham10000
    python evaluate.py --task isic --model runs/isic-ce-loss-estimator
    python reproduce.py lossest --quick --data-dir ../shared/data/ham10000

Reference: V. Narayanaswamy, J. J. Thiagarajan, D. Rajan, A. Spanias, "Loss estimators improve
model generalization", arXiv:2103.03788 (2021): Sec. 3 (head, lambda = 0.5), Sec. 4 (ISIC 2019 set-up, Fig. 3,
Table 1, Fig. 5). Paper values are quoted in each option's help.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
from pathlib import Path

# Optional[X], not X | None: training.config parses typing.Optional but not the X | None form
from typing import Optional

from tasks.common import model_of_run
from training.config import add_arguments, from_args, option

LOSSES = ("ce", "ce+loss-estimator")
IN_CLASSES = ["MEL", "NV", "BCC", "AK", "DF"]
OOD_SETS = ["b-box", "b-box-70", "derm-skin", "natural", "histology", "new-class"]


@dataclasses.dataclass
class IsicConfig:
    loss: str = option(
        "ce+loss-estimator",
        "ce: vanilla VGG-16; ce+loss-estimator: joint L_CE + lambda L_rank (paper Sec. 3)",
        choices=LOSSES,
    )
    data_dir: Optional[str] = option(  # noqa: UP045
        None,
        "ISIC 2019 or HAM10000 folder (CSV + images/ [+ masks/]); none: the built-in synthetic set",
    )
    layout: str = option(
        "auto",
        "CSV layout: auto, isic (ISIC_2019_Training_GroundTruth.csv) or ham (HAM10000_metadata.csv)",
        choices=("auto", "isic", "ham"),
    )
    classes: list[str] = option(
        list(IN_CLASSES),
        "in-distribution classes; the others are held out as new classes (paper Sec. 4: MEL,NV,BCC,AK,DF)",
    )
    image_size: int = option(224, "input side in pixels (paper: 224; e.g. 64 on a CPU)")
    crop_fraction: float = option(0.85, "centre crop, fraction of the width (paper: 0.85)")
    sog_power: float = option(6.0, "Shades-of-Gray Minkowski norm p; 0 disables (paper: 6)")
    max_per_class: Optional[int] = option(  # noqa: UP045
        None, "use at most this many images per class (seeded); none: all (paper: all)"
    )
    val_fraction: float = option(
        0.1, "validation fraction, stratified and grouped by lesion_id (paper: 90/10)"
    )
    seed: int = option(0, "seed of the split, sampling, augmentation and initialization")
    weights: str = option(
        "imagenet",
        "VGG-16 initialization: imagenet (if cached in ~/.keras/models, else random), none, or a .h5 path (paper: ImageNet)",
    )
    width: float = option(
        1.0,
        "filter multiplier of VGG-16 (1 = keras.applications.VGG16; <1 a narrower copy for CPUs)",
    )
    dropout: float = option(0.4, "dropout before the classifier (paper: 0.4)")
    lr: float = option(1e-4, "Adam learning rate (paper: 1e-4)")
    lr_halve_every: int = option(10, "halve the learning rate every this many epochs (paper: 10)")
    weight_decay: float = option(5e-4, "weight decay (paper: 5e-4)")
    weight_decay_mode: str = option(
        "l2",
        "l2: PyTorch-Adam style, an L2 term wd/2 ||w||^2 whose gradient wd*w is added before Adam's scaling (the paper's "
        "PyTorch code); decoupled: keras AdamW (decay scaled by the learning rate)",
        choices=("l2", "decoupled"),
    )
    batch_size: int = option(64, "batch size (paper: 64)")
    epochs: int = option(50, "epochs (paper: 50)")
    steps_per_epoch: Optional[int] = option(  # noqa: UP045
        None, "batches per epoch; none: training images / batch size"
    )
    lambda_rank: float = option(0.5, "weight of the ranking loss (paper: 0.5)")
    margin: float = option(
        1.0, "margin gamma of the ranking loss (paper, after Yoo and Kweon 2019: 1)"
    )
    balanced_sampling: bool = option(
        True, "class-weighted random sampling: every class equally likely per draw (paper: on)"
    )
    class_weighted_ce: bool = option(
        True, "class-weighted cross-entropy, w_c = N / (C n_c) (paper: on)"
    )
    augment: bool = option(True, "in-graph flips, rotation, translation, colour jitter (paper: on)")
    rotation_deg: float = option(180.0, "maximum rotation in degrees for augmentation")
    translation: float = option(0.1, "maximum translation, fraction of the side, for augmentation")
    synthetic_per_class: int = option(
        40, "images per class of the built-in synthetic set (no --data-dir)"
    )


@dataclasses.dataclass
class EvalConfig:
    data_dir: Optional[str] = option(None, "data folder (default: the run's)")  # noqa: UP045
    ood_sets: list[str] = option(list(OOD_SETS), f"OOD sets to build: {', '.join(OOD_SETS)}")
    ood_folder: Optional[str] = option(  # noqa: UP045
        None, "a folder of your own OOD images, evaluated as set 'folder'"
    )
    odin_tune_set: str = option(
        "natural",
        "the one OOD set ODIN's T and eps are tuned on, then applied unchanged to the others (paper Sec. 4)",
    )
    temperatures: list[float] = option(
        [1.0, 10.0, 100.0, 1000.0], "ODIN temperature grid (Liang et al. 2018)"
    )
    epsilons: list[float] = option(
        [0.0, 0.0005, 0.001, 0.002, 0.005, 0.01],
        "ODIN perturbation grid, in [0, 1] intensity units (Liang et al. 2018)",
    )
    max_ood: int = option(500, "at most this many images per OOD set")
    eval_batch_size: int = option(64, "batch size of evaluation")


def log(message: str) -> None:
    print(f"[isic] {message}", flush=True)


# ------------------------------------------------------------------------------------ data
def resolve_data_dir(cfg) -> Path:
    from data.synthetic_dermoscopy import synthetic_isic_dir

    if cfg.get("data_dir"):
        return Path(cfg["data_dir"])
    root = synthetic_isic_dir(cfg.get("synthetic_per_class", 40), 96, cfg.get("seed", 0))
    log(f"no --data-dir: using the built-in synthetic dermoscopy set in {root}")
    return root


def list_records(cfg: dict, data_dir: Path):
    from data.dermoscopy import list_dermoscopy, subsample
    from data.msd import DataError

    records, missing = list_dermoscopy(data_dir, cfg.get("layout", "auto"))
    if missing:
        log(
            f"{len(missing)} listed images are missing from {data_dir} (first: {', '.join(missing[:5])}); using the {len(records)} present"
        )
    records = subsample(records, cfg.get("max_per_class"), cfg.get("seed", 0))
    classes = list(cfg["classes"])
    present = {r.label for r in records}
    absent = [c for c in classes if c not in present]
    if absent:
        raise DataError(
            f"{data_dir}: in-distribution classes {', '.join(absent)} have no images (--classes {','.join(classes)})"
        )
    inside = [r for r in records if r.label in classes]
    held_out = [r for r in records if r.label not in classes]
    return inside, held_out


def load(records, cfg: dict):
    from data.dermoscopy import load_images

    return load_images(records, cfg["image_size"], cfg["crop_fraction"], cfg["sog_power"] or None)


def check_data(cfg: IsicConfig) -> int:
    from data.dermoscopy import check_images

    data_dir = resolve_data_dir(dataclasses.asdict(cfg))
    inside, held = list_records(dataclasses.asdict(cfg), data_dir)
    problems = check_images(inside + held)
    for p in problems:
        print(p)
    counts = {
        c: sum(r.label == c for r in inside + held)
        for c in sorted({r.label for r in inside + held})
    }
    log(
        f"checked {len(inside) + len(held)} images in {data_dir}: {counts}; {len(problems)} problem(s)"
    )
    return len(problems)


# ------------------------------------------------------------------------------------ model
def build_model(cfg: IsicConfig, num_classes: int, class_weights, steps_per_epoch: int):
    import keras

    import keras_losses
    from architectures.vgg import build_vgg16_classifier

    estimator = cfg.loss == "ce+loss-estimator"
    l2 = cfg.weight_decay / 2 if cfg.weight_decay_mode == "l2" else 0.0
    model = build_vgg16_classifier(
        (cfg.image_size, cfg.image_size, 3),
        num_classes,
        loss_estimator=estimator,
        weights=cfg.weights,
        width=cfg.width,
        dropout=cfg.dropout,
        l2=l2,
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.lr,
        decay_steps=max(1, cfg.lr_halve_every * steps_per_epoch),
        decay_rate=0.5,
        staircase=True,
    )
    if cfg.weight_decay_mode == "decoupled":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    weights = class_weights if cfg.class_weighted_ce else None
    if estimator:
        loss = keras_losses.LossEstimatorLoss(
            lambda_=cfg.lambda_rank, margin=cfg.margin, class_weights=weights
        )
    elif weights is not None:
        loss = keras_losses.ClassWeightedCategoricalCrossentropy(weights)
    else:
        loss = keras.losses.CategoricalCrossentropy()
    model.compile(optimizer=optimizer, loss=loss)
    return model


def predict_probs(model, images, batch_size: int = 64):
    """Class probabilities (the loss estimate, if any, is dropped)."""
    import numpy as np

    from architectures.vgg import probs_model

    out = probs_model(model).predict(
        np.asarray(images, np.float32), batch_size=batch_size, verbose=0
    )
    return out


def _balanced_accuracy_callback(images, labels, num_classes, batch_size):
    import keras
    import numpy as np

    from evaluation.ood import balanced_accuracy

    class ValBalancedAccuracy(keras.callbacks.Callback):
        """Adds ``val_balanced_accuracy`` to the epoch logs (the checkpoint monitors it)."""

        def on_epoch_end(self, epoch, logs=None):
            if not hasattr(self, "_probs"):  # one sub-model, so predict is traced once
                from architectures.vgg import probs_model

                self._probs = probs_model(self.model)
            pred = np.argmax(
                self._probs.predict(
                    np.asarray(images, np.float32), batch_size=batch_size, verbose=0
                ),
                axis=1,
            )
            value = balanced_accuracy(labels, pred, num_classes)
            if logs is not None:
                logs["val_balanced_accuracy"] = value
            print(f"  epoch {epoch + 1}: val_balanced_accuracy {100 * value:.2f} %", flush=True)

    return ValBalancedAccuracy()


# ------------------------------------------------------------------------------------ training
def run_training(cfg: IsicConfig, out, *, resume=False, overwrite=False, strategy="auto") -> Path:
    """Train one model; returns its run directory (config.json, split.json, best.keras, ...)."""
    import numpy as np

    from data.dermoscopy import Augment, inverse_frequency_weights, lesion_split, make_dataset
    from tasks.common import seed_everything
    from training import io
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import make_strategy

    strat = make_strategy(strategy)
    seed_everything(cfg.seed)
    conf = dataclasses.asdict(cfg)
    data_dir = resolve_data_dir(conf)
    inside, _ = list_records(conf, data_dir)
    run = RunDir(out, resume=resume, overwrite=overwrite)
    classes = list(cfg.classes)
    labels = np.array([classes.index(r.label) for r in inside])
    if run.resuming and (run / "split.json").exists():
        split = io.read_json(run / "split.json")
    else:
        tr, va = lesion_split(labels, [r.lesion_id for r in inside], cfg.val_fraction, cfg.seed)
        split = {"train": [inside[i].image_id for i in tr], "val": [inside[i].image_id for i in va]}
    run.write_config({"task": "isic", **conf, "data_dir_used": str(data_dir)})
    io.write_json(run / "split.json", split)
    by_id = {r.image_id: i for i, r in enumerate(inside)}
    tr = np.array([by_id[i] for i in split["train"]])
    va = np.array([by_id[i] for i in split["val"]])
    images, _ = load([inside[i] for i in np.concatenate([tr, va])], conf)
    x_tr, x_va = images[: len(tr)], images[len(tr) :]
    y_tr, y_va = labels[tr], labels[va]
    counts = np.bincount(y_tr, minlength=len(classes))
    log(
        f"{len(tr)} training / {len(va)} validation images; training counts "
        + ", ".join(f"{c} {n}" for c, n in zip(classes, counts, strict=True))
    )
    class_weights = inverse_frequency_weights(y_tr, len(classes))
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(tr) / cfg.batch_size))
    aug = (
        Augment(rotation_deg=cfg.rotation_deg, translation=cfg.translation) if cfg.augment else None
    )
    train_ds = make_dataset(
        x_tr,
        y_tr,
        len(classes),
        cfg.batch_size,
        training=True,
        seed=cfg.seed,
        balanced=cfg.balanced_sampling,
        augment=aug,
    )
    val_ds = make_dataset(x_va, y_va, len(classes), cfg.batch_size, training=False)
    with strat.scope():
        model = build_model(cfg, len(classes), class_weights, steps)
    io.write_json(run / "class_weights.json", dict(zip(classes, class_weights, strict=True)))
    callback = _balanced_accuracy_callback(x_va, y_va, len(classes), cfg.batch_size)
    fit_model(
        model,
        train_ds,
        val_ds,
        run_dir=run,
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        monitor="val_balanced_accuracy",
        mode="max",
        callbacks=[callback],
        verbose=2,
        tensorboard=importlib.util.find_spec("tensorboard") is not None,  # TF 2.21 wheels lack it
    )
    run.mark_complete(loss=cfg.loss, epochs=cfg.epochs, train_images=len(tr))
    return run.path


def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, IsicConfig)


def train(args) -> Path | None:
    from tasks.common import check_or_train

    cfg = from_args(IsicConfig, args)
    return check_or_train(
        args, "isic", cfg, lambda: check_data(cfg), run_training, data_dir=cfg.data_dir
    )


# ---------------------------------------------------------------------------------- evaluation
def build_eval_data(run_dir, ecfg: EvalConfig) -> dict:
    """Validation images and every OOD set, from a run's config and split."""
    import numpy as np

    from evaluation import ood_sets
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
    model = keras.saving.load_model(model_path)
    result, scores = evaluate_model(model, data, ecfg)
    result["model"] = str(model_path)
    io.write_json(out / "metrics.json", result)
    plot_scores({"model": scores}, out / "odin_scores.png")
    log(f"wrote {out / 'metrics.json'}")
    return result


# ---------------------------------------------------------------------------------- figures
def plot_scores(scores_by_model: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from training import io

    names = list(scores_by_model)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for key, s in scores_by_model[name].items():
            ax.hist(
                np.asarray(s),
                bins=40,
                range=(0, 1),
                histtype="step",
                density=True,
                label=key,
                lw=1.5 if key == "in" else 1,
            )
        ax.set_title(f"{name}: ODIN scores")
        ax.set_xlabel("max softmax of perturbed input at T")
        ax.legend(fontsize=7)
    io.save_figure(fig, path)


def plot_summary(results: dict, paper: dict, path) -> None:
    """Fig. 3-style per-class sensitivity + balanced accuracy, and Table 1-style AUROC bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from training import io

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    classes = list(results["vanilla"]["sensitivity"])
    x = np.arange(len(classes) + 1)
    for k, (key, label) in enumerate(
        (("vanilla", "vanilla (ours)"), ("proposed", "loss estimator (ours)"))
    ):
        r = results[key]
        vals = [r["sensitivity"][c] for c in classes] + [r["balanced_accuracy"]]
        a1.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
    a1.scatter(
        [x[-1] - 0.19, x[-1] + 0.19],
        [paper["balanced_accuracy"]["vanilla"], paper["balanced_accuracy"]["proposed"]],
        marker="*",
        s=120,
        c="k",
        label="paper",
        zorder=3,
    )
    a1.set_xticks(x, [*classes, "bal. acc."])
    a1.set_ylabel("%")
    a1.set_title("Sensitivity per class and balanced accuracy (cf. Fig. 3)")
    a1.legend(fontsize=8)
    sets = list(results["vanilla"]["odin"]["sets"])
    x = np.arange(len(sets))
    for k, key in enumerate(("vanilla", "proposed")):
        a2.bar(
            x + (k - 0.5) * 0.38,
            [results[key]["odin"]["sets"][s]["auroc"] for s in sets],
            0.38,
            label=f"{key} (ours)",
        )
    for i, s in enumerate(sets):
        p = paper["auroc"].get(s)
        if p:
            a2.scatter(
                [i - 0.19, i + 0.19],
                p,
                marker="*",
                s=100,
                c="k",
                zorder=3,
                label="paper" if i == 0 else None,
            )
    a2.set_xticks(x, sets, rotation=20)
    a2.set_ylim(0, 105)
    a2.set_ylabel("AUROC %")
    a2.set_title("ODIN OOD detection (cf. Table 1, Fig. 5)")
    a2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    io.save_figure(fig, path)


# ---------------------------------------------------------------------------------- reproduce
# Narayanaswamy et al. 2021: Fig. 3 (balanced accuracy), Table 1 (ODIN, vanilla / proposed), Fig. 5
PAPER = {
    "balanced_accuracy": {"vanilla": 73.1, "proposed": 77.9},
    "fpr_at_95_tpr": {"histology": (51.41, 17.93), "b-box": (36.43, 5.16)},
    "auroc": {
        "histology": (87.27, 96.43),
        "b-box": (90.74, 98.74),
        "b-box-70": (100.0, 100.0),
        "natural": (79.03, 87.57),
        "derm-skin": (87.14, 95.69),
        "new-class": (56.3, 65.26),
    },
    "clin-skin_auroc": (82.58, 92.15),
    "sets": {
        "histology": "NCT (colorectal H&E) in the paper; here crops of scikit-image's immunohistochemistry slide",
        "natural": "ImageNet in the paper; here crops of scikit-image's bundled photographs",
        "b-box": "B-Box",
        "b-box-70": "B-Box-70",
        "derm-skin": "Derm-Skin",
        "new-class": "held-out classes (paper Fig. 5)",
        "clin-skin": "Clin-Skin: no equivalent set here (clinical skin photographs are not available offline)",
    },
}

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
        model = keras.saving.load_model(model_of_run(run)[1])
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

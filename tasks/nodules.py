"""Baltatzis et al. (2021): cross-entropy vs siamese contrastive loss under distribution shift.

A LeNet-5 is trained on synthetic nodules of one distribution D(i_mal, i_ben) (foreground
intensity of malignant / benign nodules) and tested on others, with (a) cross-entropy end to
end, or (b) a siamese encoder trained with the contrastive loss and then (c) a classifier
head trained with cross-entropy on the frozen encoder. Table 1 of the paper shows that the
loss decides whether the network learns shape (which transfers) or intensity (which does not).

    python train.py --task nodules --loss ce --train-dist 150,150
    python train.py --task nodules --loss contrastive --train-dist 180,160
    python evaluate.py --task nodules --model runs/nodules-ce --test-dist 130,170 170,130
    python reproduce.py nodules --out reports/nodules [--seeds 3] [--quick]

Reference:
    V. Baltatzis, L. Le Folgoc, S. Ellis, O. E. Martinez Manzanera, K.-M. Bintsi, A. Nair,
    S. Desai, B. Glocker, J. A. Schnabel, "The effect of the loss on generalization: empirical
    study on synthetic lung nodule data", iMIMIC / MICCAI workshops 2021 (arXiv:2108.04815).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from training.config import add_arguments, from_args, option

LOSSES = ("ce", "contrastive")
PAPER = "Baltatzis et al. 2021"
SELECTIONS = ("best", "last")

# Table 1 of the paper: (scenario, train D(i_mal, i_ben), test D, loss, (acc, se, sp)).
TABLE1 = (
    (1, (150, 150), (130, 170), "ce", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "ce", (0.62, 0.87, 0.37)),
    (1, (150, 150), (130, 170), "contrastive", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "contrastive", (0.15, 0.30, 0.00)),
    (2, (180, 160), (150, 190), "ce", (0.94, 0.90, 0.98)),
    (2, (180, 160), (190, 150), "ce", (0.96, 0.94, 0.98)),
    (2, (180, 160), (150, 190), "contrastive", (0.27, 0.01, 0.53)),
    (2, (180, 160), (190, 150), "contrastive", (1.00, 1.00, 1.00)),
    (3, (180, 150), (150, 190), "ce", (0.59, 0.35, 0.83)),
)


@dataclass
class NodulesConfig:
    """Data, model and training settings of one nodule run (paper settings by default)."""

    loss: str = option("ce", f"ce: f+g end to end; contrastive: siamese f, then g on frozen f ({PAPER}, Fig. 1)", choices=LOSSES)
    train_dist: list[int] = option([150, 150], f"training distribution I_MAL,I_BEN: foreground intensity of malignant and benign nodules ({PAPER}: S1 150,150; S2 180,160; S3 180,150)")
    n_samples: int = option(200, f"samples drawn from the training distribution ({PAPER}: 200)")
    val_fraction: float = option(0.15, f"fraction of them kept for validation ({PAPER}: 85 %% train, 15 %% validation)")
    epochs: int = option(100, f"training epochs of each stage ({PAPER}: 100)")
    # Optional, not `int | None`: training.config does not parse `X | None` flags yet.
    head_epochs: Optional[int] = option(None, "epochs of the classifier head on the frozen encoder (default: --epochs)")  # noqa: UP045
    head_lr: float = option(
        1e-2,
        "Adam learning rate of the head g on the frozen contrastive encoder (our choice; with the "
        f"{PAPER} rate 1e-4, 100 epochs left g at chance on its own training set in scenario 2, "
        "whose contrastive embeddings have norm ~8 and classes ~1 (the margin) apart)",
    )
    batch_size: int = option(32, f"batch size; contrastive pairs are all pairs within a batch ({PAPER}: 32)")
    lr: float = option(1e-4, f"Adam learning rate ({PAPER}: 1e-4)")
    margin: float = option(1.0, f"contrastive loss margin m (Hadsell et al. 2006; {PAPER}: 1)")
    embedding_dim: int = option(84, "width of the encoder's last layer (LeNet-5: 84)")
    image_size: int = option(64, "image height and width in pixels (our choice)")
    noise_sd: float = option(8.0, "standard deviation of the foreground pixel noise (our choice)")
    select: str = option("best", "model used for evaluation: best (lowest validation loss) or last epoch", choices=SELECTIONS)
    seed: int = option(0, "seed of the training data, the split, shuffling and initialisation")

    def __post_init__(self):
        from data.nodules import parse_distribution

        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}; received {self.loss!r}")
        self.train_dist = list(parse_distribution(self.train_dist, "--train-dist"))
        for name in ("n_samples", "epochs", "batch_size", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1; received {getattr(self, name)}")
        if self.head_epochs is not None and self.head_epochs < 1:
            raise ValueError(f"--head-epochs must be >= 1; received {self.head_epochs}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1); received {self.val_fraction}")
        if self.n_samples < 4 or round(self.n_samples * self.val_fraction) < 2:
            raise ValueError(
                f"--n-samples {self.n_samples} with --val-fraction {self.val_fraction} leaves fewer "
                "than 2 validation samples; use more samples"
            )
        if self.image_size < 32:
            raise ValueError(f"--image-size must be at least 32 for LeNet-5; received {self.image_size}")
        if self.lr <= 0 or self.head_lr <= 0 or self.margin <= 0:
            raise ValueError(
                f"--lr, --head-lr and --margin must be positive; received {self.lr}, {self.head_lr} and {self.margin}"
            )


def log(message: str) -> None:
    print(f"[nodules {time.strftime('%H:%M:%S')}] {message}", flush=True)


def nodule_spec(cfg: dict):
    from data.nodules import NoduleSpec

    return NoduleSpec(size=int(cfg["image_size"]), noise_sd=float(cfg["noise_sd"]))


def seed_of_test_set(seed: int, dist) -> int:
    """The data seed of the test set D(dist) of run seed ``seed``: never a training seed,
    and different for every test distribution."""
    return 1_000_000 + int(seed) * 65_536 + int(dist[0]) * 256 + int(dist[1])


def training_data(cfg: dict):
    """(x_train, y_train, x_val, y_val) of a run's config: the first 85 % train, the rest
    validation (labels alternate, so both halves are balanced)."""
    from data.nodules import generate_nodules

    images, _, labels = generate_nodules(
        int(cfg["n_samples"]), cfg["train_dist"][0], cfg["train_dist"][1], int(cfg["seed"]), nodule_spec(cfg)
    )
    n_val = int(round(len(images) * float(cfg["val_fraction"])))
    n_train = len(images) - n_val
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


# ------------------------------------------------------------------------------------ training
def _compile_classifier(model, lr):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def _feature_dataset(features, labels, batch_size: int, seed: int | None = None):
    """(features, label) batches; shuffled with ``seed`` like the image batches."""
    import numpy as np
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(features, np.float32), np.asarray(labels, np.int32)))
    if seed is not None:
        ds = ds.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def check_data(cfg: NodulesConfig) -> int:
    """Generate the training set, check it and print its whole-image intensity facts."""
    from data.msd import DataError
    from data.nodules import check_arrays

    x_tr, y_tr, x_va, y_va = training_data(dataclasses.asdict(cfg))
    try:
        check_arrays(x_tr, y_tr, "training set")
        check_arrays(x_va, y_va, "validation set")
    except DataError as err:
        print(err, file=sys.stderr)
        return 1
    log(
        f"D({cfg.train_dist[0]}, {cfg.train_dist[1]}): {len(x_tr)} train + {len(x_va)} validation; "
        f"whole-image mean malignant {x_tr[y_tr == 1].mean():.1f}, benign {x_tr[y_tr == 0].mean():.1f}"
    )
    return 0


def run_training(cfg: NodulesConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto") -> Path:
    """Train one model (mode (a), or modes (b) then (c)); returns the run directory.

    Layout: config.json, best.keras / last.keras (the classifier g(f(x))), history.csv; for
    the contrastive loss instead ``siamese/`` (the encoder's run, best.keras = f) and
    ``head/`` (the head's run on f's outputs, best.keras = g), and best.keras / last.keras
    = g(f(x)) with the best / last head.
    """
    return train_model(cfg, out, resume=resume, overwrite=overwrite, strategy=strategy, verbose=verbose)[0]


def train_model(cfg: NodulesConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto"):
    """:func:`run_training`, returning ``(run directory, the selected classifier)``."""
    import keras

    import keras_losses
    from architectures.lenet import HEAD_NAME, build_classifier, build_encoder, build_head
    from data.nodules import make_dataset
    from tasks.common import seed_everything
    from training import io
    from training.fit import fit_model
    from training.rundir import COMPLETE_MARKER, RunDir
    from training.strategy import make_strategy

    conf = dataclasses.asdict(cfg)
    seed_everything(cfg.seed)
    run = RunDir(out, resume=resume, overwrite=overwrite)
    run.write_config({"task": "nodules", **conf})
    x_tr, y_tr, x_va, y_va = training_data(conf)
    train_ds = make_dataset(x_tr, y_tr, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_ds = make_dataset(x_va, y_va, cfg.batch_size, shuffle=False)
    shape = (cfg.image_size, cfg.image_size, 1)
    tb = _tensorboard_available()
    dist = f"D({cfg.train_dist[0]}, {cfg.train_dist[1]})"
    start = time.time()
    with make_strategy(strategy).scope():
        if cfg.loss == "ce":
            log(f"(a) LeNet-5 f+g with cross-entropy on {dist}: {len(x_tr)} train, {len(x_va)} val, {cfg.epochs} epochs")
            model = _compile_classifier(build_classifier(input_shape=shape), cfg.lr)
            fit_model(model, train_ds, val_ds, run_dir=run, epochs=cfg.epochs, tensorboard=tb, verbose=verbose)
        else:
            # RunDir clears the COMPLETED marker of the folder it opens: look first.
            siamese_done = resume and (run / "siamese" / COMPLETE_MARKER).exists()
            siamese = RunDir(run / "siamese", resume=resume)
            if siamese_done:
                siamese.mark_complete(stage="siamese encoder")
                log(f"(b) siamese encoder already trained in {siamese.path}")
            else:
                log(f"(b) siamese LeNet-5 f with the contrastive loss (margin {cfg.margin}) on {dist}, {cfg.epochs} epochs")
                siamese.write_config({"task": "nodules", "stage": "siamese encoder", **conf})
                encoder = build_encoder(shape, embedding_dim=cfg.embedding_dim)
                encoder.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=keras_losses.ContrastiveLoss(cfg.margin))
                fit_model(encoder, train_ds, val_ds, run_dir=siamese, epochs=cfg.epochs, tensorboard=tb, verbose=verbose)
                siamese.mark_complete(stage="siamese encoder")
            encoder = keras.saving.load_model(siamese / f"{cfg.select}.keras", compile=False)
            encoder.trainable = False
            head_epochs = cfg.head_epochs or cfg.epochs
            log(f"(c) classifier head g on the frozen encoder, cross-entropy, {head_epochs} epochs")
            # f is frozen and has no dropout or batch norm, so training g on f's outputs is
            # training g(f(x)) with f frozen, without running f every epoch.
            head_done = resume and (run / "head" / COMPLETE_MARKER).exists()
            head_run = RunDir(run / "head", resume=resume)
            if head_done:
                head_run.mark_complete(stage="classifier head")
            else:
                head_run.write_config({"task": "nodules", "stage": "classifier head", **conf})
                head = _compile_classifier(build_head(encoder.output.shape[-1]), cfg.head_lr)
                emb_tr = encoder.predict(x_tr[..., None], batch_size=256, verbose=0)
                emb_va = encoder.predict(x_va[..., None], batch_size=256, verbose=0)
                fit_model(
                    head,
                    _feature_dataset(emb_tr, y_tr, cfg.batch_size, cfg.seed),
                    _feature_dataset(emb_va, y_va, cfg.batch_size),
                    run_dir=head_run, epochs=head_epochs, tensorboard=tb, verbose=verbose,
                )
                head_run.mark_complete(stage="classifier head")
            for name in SELECTIONS:  # the classifier g(f(x)) of each saved head
                model = _compile_classifier(build_classifier(encoder, train_encoder=False), cfg.lr)
                model.get_layer(HEAD_NAME).set_weights(keras.saving.load_model(head_run / f"{name}.keras").get_weights())
                io.save_model(model, run / f"{name}.keras")
    model = keras.saving.load_model(run / f"{cfg.select}.keras")
    val = predict_report(model, x_va, y_va)
    run.mark_complete(seconds=round(time.time() - start, 1), val_acc=val["acc"], select=cfg.select)
    log(f"done in {time.time() - start:.0f} s; validation accuracy {val['acc']:.3f} ({cfg.select}.keras) -> {run.path}")
    return run.path, model


def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, NodulesConfig)


def train(args) -> Path | None:
    from tasks.common import default_out

    cfg = from_args(NodulesConfig, args)
    if getattr(args, "check_data", False):
        sys.exit(check_data(cfg))
    out = args.out or default_out("nodules", cfg.loss)
    return run_training(cfg, out, resume=args.resume, overwrite=args.overwrite, strategy=args.strategy)


# ---------------------------------------------------------------------------------- evaluation
def load_run(path):
    """(classifier, run config) of a run directory or a ``.keras`` file inside one."""
    import keras

    import keras_losses  # noqa: F401  (registers the losses the saved models were compiled with)
    from training.rundir import load_run_config

    path = Path(path)
    if path.is_dir():
        cfg = load_run_config(path)
        model_path = path / f"{cfg.get('select', 'best')}.keras"
    elif path.suffix == ".keras":
        model_path, cfg = path, load_run_config(path.parent)
    else:
        raise FileNotFoundError(f"--model {path}: expected a run directory or a .keras file")
    if not model_path.exists():
        raise FileNotFoundError(f"--model {path}: {model_path.name} is missing (did the run finish?)")
    if cfg.get("task") != "nodules":
        raise ValueError(f"--model {path}: this is a run of task {cfg.get('task')!r}, not 'nodules'")
    return keras.saving.load_model(model_path), cfg


def predict_report(model, images, labels, batch_size: int = 256) -> dict:
    """acc, se, sp (malignant positive) of ``model`` on images (n, h, w)."""
    from evaluation.classification import binary_report

    probs = model.predict(images[..., None].astype("float32"), batch_size=batch_size, verbose=0)
    return binary_report(labels, probs, positive=1)


def make_test_set(cfg: dict, dist, seed: int, n: int):
    """images, labels of the test set D(dist) for a run of seed ``seed``."""
    from data.nodules import generate_nodules

    images, _, labels = generate_nodules(n, dist[0], dist[1], seed_of_test_set(seed, dist), nodule_spec(cfg))
    return images, labels


def embeddings(model, images, batch_size: int = 256):
    from architectures.lenet import encoder_of

    return encoder_of(model).predict(images[..., None].astype("float32"), batch_size=batch_size, verbose=0)


def _dist_name(d) -> str:
    return f"D({d[0]},{d[1]})"


def evaluate_run(model, cfg: dict, test_dists, n_test: int, seed: int | None = None) -> dict:
    """Metrics of a trained model on each test distribution, and the arrays the figures need."""
    seed = int(cfg["seed"]) if seed is None else seed
    x_tr, y_tr, _, _ = training_data(cfg)
    results, sets = [], {"train": (x_tr, y_tr)}
    for dist in test_dists:
        x, y = make_test_set(cfg, dist, seed, n_test)
        sets[_dist_name(dist)] = (x, y)
        report = predict_report(model, x, y)
        results.append({"test": list(dist), **report})
    return {"results": results, "sets": sets}


def example_indices(labels, count: int = 1):
    """The first ``count`` malignant and benign indices."""
    import numpy as np

    labels = np.asarray(labels)
    return list(np.flatnonzero(labels == 1)[:count]) + list(np.flatnonzero(labels == 0)[:count])


def saliency_row(model, sets: dict) -> list:
    """One row of Fig. 3: (caption, image, saliency) for a malignant and a benign example of
    each set (the training set first)."""
    from evaluation.saliency import saliency_maps

    items = []
    for name, (x, y) in sets.items():
        idx = example_indices(y)
        sal = saliency_maps(model, x[idx])
        for k, i in enumerate(idx):
            items.append((f"{name} {'mal' if y[i] == 1 else 'ben'}", x[i], sal[k]))
    return items


def embedding_panel(model, title: str, sets: dict):
    """One panel of Fig. 2: (title, train, tests) with embeddings of every set."""
    train = (embeddings(model, sets["train"][0]), sets["train"][1], "train")
    tests = [(embeddings(model, x), y, name) for name, (x, y) in sets.items() if name != "train"]
    return title, train, tests


def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument("--model", required=True, help="run directory of train.py (or a .keras file in one)")
    parser.add_argument(
        "--test-dist", nargs="+", default=None, metavar="I_MAL,I_BEN",
        help="test distributions, e.g. 130,170 170,130 (default: the training distribution)",
    )
    parser.add_argument("--n-test", type=int, default=200, help=f"samples per test distribution ({PAPER}: 200)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the test sets (default: the run's seed)")
    parser.add_argument("--out", default=None, help="folder for metrics.json and figures (default: MODEL/evaluation)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PCA (Fig. 2) and saliency (Fig. 3) figures")


def evaluate(args) -> dict:
    from data.nodules import parse_distribution
    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure
    from training import io

    if args.n_test < 2:
        raise ValueError(f"--n-test must be at least 2; received {args.n_test}")
    model, cfg = load_run(args.model)
    dists = [parse_distribution(d, "--test-dist") for d in (args.test_dist or [",".join(map(str, cfg["train_dist"]))])]
    run_path = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    out = Path(args.out) if args.out else run_path / "evaluation"
    ev = evaluate_run(model, cfg, dists, args.n_test, args.seed)
    title = f"{cfg['loss']} trained on {_dist_name(cfg['train_dist'])}"
    for r in ev["results"]:
        log(f"{title}, test {_dist_name(r['test'])}: acc {r['acc']:.3f}  se {r['se']:.3f}  sp {r['sp']:.3f}")
    metrics = {"model": str(args.model), "loss": cfg["loss"], "train": cfg["train_dist"], "results": ev["results"]}
    io.write_json(out / "metrics.json", metrics)
    if not args.no_figures:
        io.save_figure(embedding_figure([embedding_panel(model, title, ev["sets"])], n_cols=1), out / "embedding_pca.png")
        io.save_figure(saliency_figure([(cfg["loss"], saliency_row(model, ev["sets"]))], title), out / "saliency.png")
    log(f"wrote {out / 'metrics.json'}")
    return metrics


# -------------------------------------------------------------------------------- reproduction
# `reproduce.py nodules --quick`: one seed, fewer epochs; sized for a shared 2-core CPU.
QUICK = {"seeds": 1, "epochs": 30}


def add_reproduce_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--seeds", type=int, default=None, help="seeds to average Table 1 over (default 3; --quick: 1)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of each stage (default {PAPER}: 100; --quick: 30)")
    parser.add_argument("--n-samples", type=int, default=200, help=f"training-distribution samples ({PAPER}: 200)")
    parser.add_argument("--n-test", type=int, default=200, help=f"samples per test distribution ({PAPER}: 200)")
    parser.add_argument("--image-size", type=int, default=64, help="image size in pixels (our choice: 64)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs in OUT/runs and train only the rest")


def _training_runs():
    """The models Table 1 needs: (scenario, train dist, loss), in table order."""
    seen = []
    for scenario, train, _, loss, _ in TABLE1:
        if (scenario, train, loss) not in seen:
            seen.append((scenario, train, loss))
    return seen


def _mean_sd(values):
    import numpy as np

    v = np.asarray(values, float)
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def reproduce(args) -> Path:
    """Train every model of Table 1 for each seed, evaluate, write report.md, results.json,
    details.json and the figures (from the first seed) into ``--out``."""
    import os

    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure
    from training import io

    seeds = args.seeds or (QUICK["seeds"] if args.quick else 3)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else 100)
    if seeds < 1 or epochs < 1:
        raise ValueError(f"--seeds and --epochs must be >= 1; received {seeds} and {epochs}")
    out = Path(args.out or "reports/nodules")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise FileExistsError(f"--out {out} already exists; pass --resume to reuse its finished runs, or remove it")
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    load = os.getloadavg()[0]
    per_seed = {}  # (scenario, train, test, loss) -> list of reports
    panels, sal_rows = [], []
    for seed in range(seeds):
        test_cache = {}
        for scenario, train, loss in _training_runs():
            cfg = NodulesConfig(
                loss=loss, train_dist=list(train), n_samples=args.n_samples, epochs=epochs,
                image_size=args.image_size, seed=seed,
            )
            run_path = out / "runs" / f"seed{seed}" / f"s{scenario}-{loss}"
            if args.resume and (run_path / "COMPLETED").exists():
                log(f"seed {seed}: S{scenario} {loss} already trained in {run_path}")
                model, conf = load_run(run_path)
            else:
                log(f"seed {seed}: S{scenario} {loss} on {_dist_name(train)}")
                model = train_model(cfg, run_path, resume=args.resume, verbose=0)[1]
                conf = dataclasses.asdict(cfg)
            tests = [row[2] for row in TABLE1 if row[0] == scenario and row[3] == loss]
            x_tr, y_tr, x_va, y_va = training_data(conf)
            sets = {"train": (x_tr, y_tr)}
            val_acc = predict_report(model, x_va, y_va)["acc"]
            for dist in tests:
                if dist not in test_cache:
                    test_cache[dist] = make_test_set(conf, dist, seed, args.n_test)
                x, y = test_cache[dist]
                sets[_dist_name(dist)] = (x, y)
                report = {**predict_report(model, x, y), "val_acc": val_acc}
                per_seed.setdefault((scenario, train, dist, loss), []).append(report)
                log(f"  test {_dist_name(dist)}: acc {report['acc']:.3f} se {report['se']:.3f} sp {report['sp']:.3f}")
            if seed == 0:
                title = f"S{scenario} {loss}, train {_dist_name(train)}"
                panels.append(embedding_panel(model, title, sets))
                sal_rows.append((f"S{scenario} {loss}", saliency_row(model, sets)))
    elapsed = time.time() - start

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
    io.write_json(out / "results.json", {"rows": rows})
    defaults = NodulesConfig()
    settings = {
        "seeds": seeds, "epochs": epochs, "n_samples": args.n_samples, "n_test": args.n_test,
        "image_size": args.image_size, "quick": bool(args.quick), "batch_size": defaults.batch_size,
        "lr": defaults.lr, "head_lr": defaults.head_lr,
        "seconds": round(elapsed, 1), "load_average_at_start": round(load, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    io.write_json(out / "details.json", {"settings": settings, "rows": details})
    io.save_figure(embedding_figure(panels, n_cols=3), out / "fig2_embedding_pca.png", dpi=80)
    io.save_figure(saliency_figure(sal_rows, "Gradient saliency (Simonyan et al.), seed 0"), out / "fig3_saliency.png", dpi=80)
    io.write_text(out / "report.md", report_markdown(rows, details, settings))
    log(f"Table 1 reproduced in {elapsed / 60:.1f} min -> {out / 'report.md'}")
    return out


def report_markdown(rows, details, settings) -> str:
    """report.md: our Table 1 beside the paper's, the settings and the figures."""
    s = settings
    lines = [
        f"# Table 1 of {PAPER}: CE vs contrastive loss under distribution shift",
        "",
        f"Settings: {s['seeds']} seed(s), {s['epochs']} epochs per stage, {s['n_samples']} training-distribution "
        f"samples (85 % train / 15 % validation), {s['n_test']} test samples per distribution, "
        f"{s['image_size']}x{s['image_size']} images, batch {s['batch_size']}, Adam lr {s['lr']} "
        f"(head on the frozen contrastive encoder: {s['head_lr']})"
        + (" (--quick)" if s["quick"] else "") + ".",
        f"Wall time {s['seconds'] / 60:.1f} min on {s['cpus']} CPU(s) (load average {s['load_average_at_start']} at "
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
    lines += [
        "",
        "Fig. 2: PCA of the encoder's last layer (fitted on the training set), training set dark, test sets light, "
        "malignant red x, benign blue o, 2-sd ellipses (seed 0).",
        "",
        "![PCA of embeddings](fig2_embedding_pca.png)",
        "",
        "Fig. 3: gradient saliency maps for training and test examples (seed 0).",
        "",
        "![Saliency](fig3_saliency.png)",
        "",
    ]
    return "\n".join(lines)

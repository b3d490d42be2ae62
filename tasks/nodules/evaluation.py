"""Accuracy, sensitivity, specificity, saliency and PCA of saved nodules runs, trained on
synthetic nodules or on real ones (:mod:`tasks.nodules.real`), and ``evaluate.py --task nodules``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.nodules import paper
from tasks.nodules.config import log, nodule_spec, seed_of_test_set
from tasks.nodules.paper import PAPER
from tasks.nodules.real import crop_spec, cue_report, nodules_of, real_test_sets, split_patients
from tasks.nodules.sets import training_data


def load_run(path):
    """(classifier, run config) of a run directory or a ``.keras`` file inside one."""
    from tasks.common import check_finished
    from training import io
    from training.rundir import load_run_config

    path = Path(path)
    check_finished(path if path.is_dir() else path.parent)
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
    model = io.load_model(model_path, compile=False)
    size = int(cfg.get("image_size", 0) or 0)
    if size:
        io.check_model_input(model, (size, size, 1), model_path)
    return model, cfg


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


def saliency_row(model, sets: dict, kind: str = "score") -> list:
    """One row of Fig. 3: (caption, image, saliency) for a malignant and a benign example of
    each set (the training set first). ``kind``: "score" (gradient of the class score, the
    paper's [7], Simonyan et al. 2014) or "log_prob" (of the log probability)."""
    from architectures.lenet import class_scores
    from evaluation.saliency import saliency_maps

    scores = (lambda batch: class_scores(model, batch)) if kind == "score" else None
    items = []
    for name, (x, y) in sets.items():
        idx = example_indices(y)
        sal = saliency_maps(model, x[idx], scores=scores)
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
    parser.add_argument("--n-test", type=int, default=paper.N_TEST, help=f"samples per test distribution ({PAPER}: 200)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the test sets (default: the run's seed)")
    parser.add_argument("--out", default=None, help="folder for metrics.json and figures (default: MODEL/evaluation)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PCA (Fig. 2) and saliency (Fig. 3) figures")
    parser.add_argument(
        "--data-dir", default=None,
        help="runs trained on real nodules: a folder of image/ + nodule_mask/ NIfTI pairs with nodules.csv to test on "
        "(every labelled nodule); default: the run's own held-out test patients",
    )


def evaluate(args) -> dict:
    from core import io
    from data.nodules import parse_distribution
    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure

    if args.n_test < 2:
        raise ValueError(f"--n-test must be at least 2; received {args.n_test}")
    model, cfg = load_run(args.model)
    if cfg.get("data_dir"):
        return evaluate_real(args, model, cfg)
    if getattr(args, "data_dir", None):
        raise ValueError(f"--data-dir: {args.model} was trained on synthetic nodules; test it with --test-dist")
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
        rows = [(cfg["loss"], saliency_row(model, ev["sets"], cfg.get("saliency", "score")))]
        io.save_figure(saliency_figure(rows, title), out / "saliency.png")
    log(f"wrote {out / 'metrics.json'}")
    return metrics


# Runs trained on real nodules (reproduce.py nodules-real, tasks/nodules/real.py)


def linear_probe(model, train: tuple, tests: dict) -> dict:
    """Balanced accuracy of a logistic regression fitted on the encoder's F6 outputs of the
    training set, per test set: what the (frozen) embedding holds, whatever the trained head
    learnt from it. A diagnostic of ours, not in the paper."""
    from sklearn.linear_model import LogisticRegression

    from evaluation.classification import binary_report

    probe = LogisticRegression(max_iter=2000).fit(embeddings(model, train[0]), train[1])
    out = {}
    for name, (x, y, _) in tests.items():
        pred = probe.predict_proba(embeddings(model, x))
        out[name] = binary_report(y, pred, positive=1)["balanced_acc"]
    return out


def evaluate_real_model(model, cfg: dict, tests: dict | None = None, probe_on=None) -> list[dict]:
    """acc, se, sp, balanced accuracy, class counts and the cue correlations on each test set
    (``tests``: name -> (images, labels, mean HU); default the run's held-out test sets), and
    with ``probe_on`` (training images, labels) the :func:`linear_probe` balanced accuracy."""
    from evaluation.classification import binary_report

    rows = []
    tests = tests or real_test_sets(cfg)
    probe = linear_probe(model, probe_on, tests) if probe_on is not None else {}
    for name, (x, y, hu) in tests.items():
        probs = model.predict(x[..., None].astype("float32"), batch_size=256, verbose=0)
        rows.append({
            "test": name, "n_malignant": int((y == 1).sum()), "n_benign": int((y == 0).sum()),
            **binary_report(y, probs, positive=1), **cue_report(probs[:, 1], y, hu),
        })
        # One class for every nodule: the classifier (for contrastive runs, the head) did not
        # learn to separate, whatever its encoder holds; counted in the table.
        if name in probe:
            rows[-1]["probe_balanced_acc"] = probe[name]
        rows[-1]["one_class"] = bool(rows[-1]["tp"] + rows[-1]["fp"] == 0 or rows[-1]["tn"] + rows[-1]["fn"] == 0)
    return rows


def evaluate_real(args, model, cfg: dict) -> dict:
    """``evaluate.py`` for a run trained on real nodules: its held-out test sets, or every
    labelled nodule of ``--data-dir``; metrics.json and the two figures into MODEL/evaluation."""
    import numpy as np

    from core import io
    from data.lidc import load_nodules
    from evaluation.embedding import embedding_figure
    from evaluation.saliency import saliency_figure

    run_path = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    out = Path(args.out) if args.out else run_path / "evaluation"
    seen = None
    if args.data_dir:
        found = load_nodules(args.data_dir, crop_spec(cfg), log=log)
        for message in found.skipped:
            log(f"skipped: {message}")
        keep = found.labels >= 0
        hu = np.array([r["mean_hu"] for r in found.info], np.float32)
        tests = {Path(args.data_dir).name: (found.images[keep], found.labels[keep], hu[keep])}
        seen = nodules_of_seen_patients(cfg, [r["patient_id"] for r, k in zip(found.info, keep, strict=True) if k])
        if seen:
            log(
                f"warning: {seen} of the {int(keep.sum())} nodules of {args.data_dir} belong to the training or "
                "validation patients of this run's split, so these numbers are not held out (without --data-dir: the "
                "run's test patients)"
            )
    else:
        tests = real_test_sets(cfg)
    rows = evaluate_real_model(model, cfg, tests)
    title = f"{cfg['loss']} trained on real nodules ({cfg['scenario']})"
    for r in rows:
        log(f"{title}, test {r['test']}: acc {r['acc']:.3f} balanced {r['balanced_acc']:.3f} se {r['se']:.3f} sp {r['sp']:.3f}")
    metrics = {"model": str(args.model), "loss": cfg["loss"], "scenario": cfg["scenario"], "results": rows}
    if seen is not None:
        metrics["nodules_of_training_or_validation_patients"] = seen
    io.write_json(out / "metrics.json", metrics)
    if not args.no_figures:
        sets = {k: (x, y) for k, (x, y, _) in tests.items()}
        if Path(cfg["data_dir"]).is_dir():  # the training set, where the PCA is fitted
            sets = {"train": figure_sets(cfg)["train"], **sets}
        else:
            sets = {"train": next(iter(sets.values())), **sets}
        io.save_figure(embedding_figure([embedding_panel(model, title, sets)], n_cols=1), out / "embedding_pca.png")
        io.save_figure(saliency_figure([(cfg["loss"], saliency_row(model, sets, cfg.get("saliency", "score")))], title), out / "saliency.png")
    log(f"wrote {out / 'metrics.json'}")
    return metrics


def nodules_of_seen_patients(cfg: dict, patient_ids) -> int:
    """How many of ``patient_ids`` (one per nodule) are the run's training or validation
    patients; 0 when the run's own data folder is not there to tell."""
    if not Path(cfg["data_dir"]).is_dir():
        return 0
    own = [r["patient_id"] for r in nodules_of(cfg).info]
    parts = split_patients(own, int(cfg["seed"]), float(cfg["val_fraction"]), float(cfg["test_fraction"]))
    return sum(parts.get(p) in ("train", "val") for p in patient_ids)


def figure_sets(cfg: dict) -> dict:
    """name -> (images, labels) of the training set and each test set, for the figures."""
    x_tr, y_tr, _, _ = training_data(cfg)
    return {"train": (x_tr, y_tr), **{k: (x, y) for k, (x, y, _) in real_test_sets(cfg).items()}}

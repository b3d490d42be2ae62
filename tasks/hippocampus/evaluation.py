"""Gradient pixel attacks on saved hippocampus runs: Dice vs attacked pixels and value."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tasks.common import model_of_run
from tasks.hippocampus.config import AttackConfig, log
from tasks.hippocampus.figures import write_figures
from tasks.hippocampus.paper import PAPER
from tasks.hippocampus.training import load_split_slices
from training.config import add_arguments, from_args


def select_attack_images(masks, max_images, seed):
    """Indices of test slices with foreground, a seeded subset of at most ``max_images``."""
    import numpy as np

    idx = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
    if max_images is not None and len(idx) > max_images:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_images, replace=False))
    return idx


def run_evaluation(models, out, acfg: AttackConfig, *, data_dir=None, cache_dir=None) -> dict:
    """Clean Dice, input gradients and every attack curve of each model; writes
    ``metrics.json`` and the figures into ``out``; returns the results dict."""
    import numpy as np

    import keras_losses  # noqa: F401  (registers the losses for load_model)
    from core import io
    from evaluation.attacks import attack_dice, dice_per_image, random_values
    from evaluation.gradients import input_gradients
    from training.io import check_model_input, load_model
    from training.rundir import load_run_config

    runs = [model_of_run(m) for m in models]
    configs = [load_run_config(r) for r, _ in runs]
    splits = [_read_split(r / "split.json") for r, _ in runs]
    data_keys = ("size", "max_intensity", "scaling", "clip_percentile")
    for (r, _), c, s in zip(runs[1:], configs[1:], splits[1:], strict=True):
        if s["test"] != splits[0]["test"] or any(c.get(k) != configs[0].get(k) for k in data_keys):
            raise ValueError(
                f"{r} was trained with another test split or slice settings than {runs[0][0]}; "
                "models compared in one evaluation must share them"
            )
    data_dir = data_dir or configs[0]["data_dir"]
    images, masks, _ = load_split_slices(
        data_dir, configs[0], splits[0]["test"], cache_dir or configs[0].get("cache_dir")
    )
    attack_idx = select_attack_images(masks, acfg.max_test_images, acfg.attack_seed)
    if len(attack_idx) == 0:
        raise ValueError(f"{data_dir}: the test volumes hold no foreground slice to attack")
    xa, ya = images[attack_idx], masks[attack_idx].astype(np.float32)
    log(f"{len(images)} test slices; attacking {len(attack_idx)} slices with foreground")

    values = np.asarray(acfg.values, np.float32)
    n_sweep = np.arange(0, acfg.n_max + 1, acfg.n_step)
    n_random = np.arange(0, acfg.n_max + 1, acfg.random_n_step)
    rand = random_values(len(n_random), acfg.repetitions, max(acfg.n_max, 1), acfg.attack_seed)
    fig_idx = _figure_examples(ya)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "paper": PAPER,
        "test_volumes": len(splits[0]["test"]),
        "test_slices": int(len(images)),
        "attacked_slices": int(len(attack_idx)),
        "attacked_slice_indices": attack_idx.tolist(),
        "dice": f"hard Dice (threshold {acfg.threshold:.2f}) per slice, averaged over the attacked slices",
        "pooled_dice": "hard Dice of all attacked slices' pixels together (2 sum TP / sum(|T| + |P|))",
        "attack": dataclasses.asdict(acfg),
        "models": {},
    }
    visuals = {}
    for (run, model_path), conf in zip(runs, configs, strict=True):
        name = conf.get("loss", run.name)
        log(f"{name}: loading {model_path}")
        model = load_model(model_path, compile=False)
        check_model_input(model, images.shape[1:], model_path)
        probs = model.predict(images, batch_size=128, verbose=0)
        per_slice = dice_per_image(masks, probs, acfg.threshold)
        fg = masks.reshape(len(masks), -1).any(axis=1)
        pred_all, true_all = probs > acfg.threshold, masks > 0
        global_dice = (
            2 * np.logical_and(pred_all, true_all).sum() / max(pred_all.sum() + true_all.sum(), 1)
        )
        grads = input_gradients(model, xa)
        log(f"{name}: value sweep (N = {acfg.n_fixed})")
        d_values, p_values, c_values = attack_dice(
            model,
            xa,
            ya,
            grads,
            np.full(len(values), acfg.n_fixed),
            values,
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
            return_predictions=True,
            ranking=acfg.ranking,
            return_counts=True,
        )
        log(f"{name}: pixel-count sweep (value {acfg.fixed_value})")
        d_count, c_count = attack_dice(
            model,
            xa,
            ya,
            grads,
            n_sweep,
            np.full(len(n_sweep), acfg.fixed_value),
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
            ranking=acfg.ranking,
            return_counts=True,
        )
        log(f"{name}: random values, {len(n_random)} pixel counts x {acfg.repetitions} repetitions")
        d_rand, c_rand = attack_dice(
            model,
            xa,
            ya,
            grads,
            np.repeat(n_random, acfg.repetitions),
            rand,
            batch_size=acfg.attack_batch,
            threshold=acfg.threshold,
            ranking=acfg.ranking,
            return_counts=True,
        )
        d_rand = d_rand.reshape(len(xa), len(n_random), acfg.repetitions)
        c_rand = c_rand.reshape(len(xa), len(n_random), acfg.repetitions, 2)
        per_rep = d_rand.mean(axis=0)  # (levels, repetitions): mean over slices per repetition
        # BCE's under-confidence on the small foreground: the median logit inside the true mask
        p_in = np.clip(probs[masks > 0], 1e-7, 1 - 1e-7)
        median_logit = float(np.median(np.log(p_in / (1 - p_in)))) if p_in.size else float("nan")
        results["models"][name] = {
            "run": str(run),
            "clean_dice_attacked_slices": float(
                dice_per_image(ya, probs[attack_idx], acfg.threshold).mean()
            ),
            "clean_dice_foreground_slices": float(per_slice[fg].mean()),
            "clean_dice_global": float(global_dice),
            "median_logit_in_mask": median_logit,
            "value_sweep": {
                "n_pixels": acfg.n_fixed,
                "values": values.tolist(),
                "dice": d_values.mean(0).tolist(),
                "pooled_dice": _pooled(c_values).tolist(),
            },
            "count_sweep": {
                "value": acfg.fixed_value,
                "n_pixels": n_sweep.tolist(),
                "dice": d_count.mean(0).tolist(),
                "pooled_dice": _pooled(c_count).tolist(),
            },
            "random_sweep": {
                "n_pixels": n_random.tolist(),
                "repetitions": acfg.repetitions,
                "mean": per_rep.mean(1).tolist(),
                "std": per_rep.std(1).tolist(),
                "min": per_rep.min(1).tolist(),
                "max": per_rep.max(1).tolist(),
                "pooled_dice": _pooled(c_rand).mean(-1).tolist(),
            },
        }
        m = results["models"][name]
        log(
            f"{name}: clean Dice {m['clean_dice_foreground_slices']:.3f} (foreground slices), "
            f"{m['clean_dice_global']:.3f} (global); N={acfg.n_fixed} v={values[-1]:g}: "
            f"{m['value_sweep']['dice'][-1]:.3f}"
        )
        visuals[name] = {
            "grads": grads[fig_idx],
            "clean": probs[attack_idx][fig_idx],
            "value_preds": p_values[fig_idx[0]],
        }
    figures = write_figures(out, xa[fig_idx], ya[fig_idx], visuals, results, acfg)
    results["figures"] = [f.name for f in figures]
    io.write_json(out / "metrics.json", results)
    log(f"wrote {out / 'metrics.json'} and {len(figures)} figures")
    return results


def _pooled(counts):
    """Dice over all attacked slices together from ``(M, ..., 2)`` counts [|T & P|, |T| + |P|]."""
    import numpy as np

    total = counts[..., 1].sum(0)
    return np.where(total > 0, 2 * counts[..., 0].sum(0) / np.maximum(total, 1), 1.0)


def _figure_examples(masks, count=3):
    """Attacked slices shown in the figures: those of the 50th, 75th and 90th percentile mask area."""
    import numpy as np

    area = masks.reshape(len(masks), -1).sum(1)
    order = np.argsort(area, kind="stable")
    picks = [order[min(int(q * len(order)), len(order) - 1)] for q in (0.9, 0.75, 0.5)[:count]]
    return np.array(sorted(set(picks), key=picks.index))


def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        help="run directories (or .keras files inside them) to evaluate; several models are "
        "compared in one set of figures and must share the test split",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: <first run>/evaluation)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MSD Task04 folder (default: the one the run was trained on)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="decode cache (default: the run's, else ~/.cache/...)"
    )
    add_arguments(parser, AttackConfig)


def evaluate(args) -> dict:
    acfg = from_args(AttackConfig, args)
    out = args.out or str(model_of_run(args.model[0])[0] / "evaluation")
    return run_evaluation(args.model, out, acfg, data_dir=args.data_dir, cache_dir=args.cache_dir)


def _read_split(path) -> dict:
    """A run's ``split.json``, checked: an object of case id lists, each case in one part."""
    from core import io
    from data import validate

    split = io.read_json(path, expect=dict)
    validate.raise_problems(validate.check_disjoint(split, path))
    return split

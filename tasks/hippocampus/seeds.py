"""Results over seeds: mean and spread of every curve point, convergence, and their figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PLATEAU_WINDOW = 3  # epochs in the running mean of the validation Dice
PLATEAU_TOL = 0.01  # Dice: "on the plateau" = within this of the running mean's maximum


def stat(per_seed) -> dict:
    """``{"mean", "sd", "per_seed"}`` of a list of numbers or of equal-length lists (elementwise);
    sd is the sample standard deviation over seeds (ddof 1; 0 for a single seed)."""
    a = np.asarray(per_seed, float)
    sd = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros_like(a[0])
    return {"mean": a.mean(axis=0).tolist(), "sd": np.asarray(sd).tolist(), "per_seed": a.tolist()}


def plateau(val_dice) -> dict:
    """Where a validation-Dice curve levels off.

    ``plateau_epoch``: the first (1-based) epoch at which the running mean over
    ``PLATEAU_WINDOW`` epochs comes within ``PLATEAU_TOL`` of its maximum; ``converged``: the
    running mean of the last epochs is within ``PLATEAU_TOL`` of that maximum, i.e. training
    ended on the plateau.
    """
    v = np.asarray(val_dice, float)
    w = min(PLATEAU_WINDOW, len(v))
    run = np.convolve(v, np.ones(w) / w, mode="valid")
    top = run.max()
    return {
        "plateau_epoch": int(np.flatnonzero(run >= top - PLATEAU_TOL)[0]) + w,
        "best_epoch": int(np.argmax(v)) + 1,
        "final_running_mean": float(run[-1]),
        "max_running_mean": float(top),
        "converged": bool(run[-1] >= top - PLATEAU_TOL),
    }


def aggregate(per_seed: list[dict], histories: list[dict]) -> dict:
    """Per-loss mean and sd over seeds of the evaluation results of each seed.

    ``per_seed[i]``: ``run_evaluation``'s results for seed i; ``histories[i][loss]``: that run's
    per-epoch validation Dice (pooled).
    """
    names = list(per_seed[0]["models"])
    models = {}
    for name in names:
        ms = [r["models"][name] for r in per_seed]
        v, c, r = ms[0]["value_sweep"], ms[0]["count_sweep"], ms[0]["random_sweep"]
        values = np.round(np.asarray(v["values"], float), 6)  # float32 levels, e.g. 0.2000000030
        value_dice = [m["value_sweep"]["dice"] for m in ms]
        fig2 = values <= 0.2 + 1e-6
        hist = [h[name] for h in histories]
        models[name] = {
            "clean_dice_foreground_slices": stat([m["clean_dice_foreground_slices"] for m in ms]),
            "clean_dice_pooled": stat([m["clean_dice_global"] for m in ms]),
            "clean_dice_attacked_slices": stat([m["clean_dice_attacked_slices"] for m in ms]),
            "median_logit_in_mask": stat([m["median_logit_in_mask"] for m in ms]),
            "value_sweep": {
                "n_pixels": v["n_pixels"],
                "values": v["values"],
                "dice": stat(value_dice),
                "pooled_dice": stat([m["value_sweep"]["pooled_dice"] for m in ms]),
            },
            "count_sweep": {
                "value": c["value"],
                "n_pixels": c["n_pixels"],
                "dice": stat([m["count_sweep"]["dice"] for m in ms]),
                "pooled_dice": stat([m["count_sweep"]["pooled_dice"] for m in ms]),
            },
            "random_sweep": {
                "n_pixels": r["n_pixels"],
                "repetitions": r["repetitions"],
                # per seed: the mean over repetitions of the mean Dice over the attacked slices
                "dice": stat([m["random_sweep"]["mean"] for m in ms]),
                "sd_over_repetitions": stat([m["random_sweep"]["std"] for m in ms]),
                "pooled_dice": stat([m["random_sweep"]["pooled_dice"] for m in ms]),
            },
            "training": {
                "val_dice_per_epoch": stat(hist),
                **{k: [plateau(h)[k] for h in hist] for k in plateau(hist[0])},
            },
        }
        m = models[name]
        m["curves"] = {
            "fig2": {
                "x": values[fig2].tolist(),
                "x_is": "value written (N fixed)",
                "mean": np.asarray(m["value_sweep"]["dice"]["mean"])[fig2].tolist(),
                "sd": np.asarray(m["value_sweep"]["dice"]["sd"])[fig2].tolist(),
            },
            "fig3": {
                "x": values.tolist(),
                "x_is": "value written (N fixed)",
                "mean": m["value_sweep"]["dice"]["mean"],
                "sd": m["value_sweep"]["dice"]["sd"],
            },
            "fig5": {
                "x": c["n_pixels"],
                "x_is": f"pixels set to {c['value']:g}",
                "mean": m["count_sweep"]["dice"]["mean"],
                "sd": m["count_sweep"]["dice"]["sd"],
            },
            "fig6": {
                "x": r["n_pixels"],
                "x_is": "pixels set to uniform random values in [0, 1]",
                "mean": m["random_sweep"]["dice"]["mean"],
                "sd": m["random_sweep"]["dice"]["sd"],
            },
        }
    return models


def write_seed_figures(out: Path, models: dict, n_fixed: int, n_seeds: int) -> list[Path]:
    """Figs. 2, 3, 5, 6 as mean +- sd over seeds, and the validation-Dice curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core import io

    paths = []
    specs = [
        (
            "fig2",
            "hippocampus_fig2_values.png",
            f"Fig. 2: N = {n_fixed} pixels set to v <= 0.2",
            f"value v written into the {n_fixed} highest-gradient pixels",
        ),
        (
            "fig3",
            "hippocampus_fig3_values.png",
            f"Fig. 3: N = {n_fixed} pixels set to v in [0, 1]",
            f"value v written into the {n_fixed} highest-gradient pixels",
        ),
        (
            "fig5",
            "hippocampus_fig5_count.png",
            "Fig. 5: N pixels set to 0.2",
            "N pixels set to 0.2 (highest gradient first)",
        ),
        (
            "fig6",
            "hippocampus_fig6_random.png",
            "Fig. 6: N pixels set to random values in [0, 1]",
            "N pixels set to random values in [0, 1]",
        ),
    ]
    for key, fname, title, xlabel in specs:
        fig, ax = plt.subplots(figsize=(4.4, 3.1))
        for name, m in models.items():
            cv = m["curves"][key]
            x, mean, sd = (np.asarray(cv[k], float) for k in ("x", "mean", "sd"))
            ax.plot(x, mean, marker="o" if len(x) < 12 else ".", label=name)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(f"Dice (mean +- sd, {n_seeds} seeds)", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        paths.append(io.save_figure(fig, out / fname, dpi=90))

    fig, ax = plt.subplots(figsize=(4.4, 3.1))
    for name, m in models.items():
        s = m["training"]["val_dice_per_epoch"]
        mean, sd = np.asarray(s["mean"]), np.asarray(s["sd"])
        ep = np.arange(1, len(mean) + 1)
        ax.plot(ep, mean, label=name)
        ax.fill_between(ep, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation Dice, pooled (mean +- sd, {n_seeds} seeds)", fontsize=7)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Convergence: validation Dice per epoch", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_convergence.png", dpi=90))
    return paths

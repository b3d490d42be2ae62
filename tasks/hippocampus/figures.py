"""Figures of the robustness evaluation (the paper's Figures 1-7)."""

from __future__ import annotations

from pathlib import Path

from tasks.hippocampus.config import AttackConfig


def write_figures(out: Path, images, masks, visuals, results, acfg: AttackConfig) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from core import io

    names = list(visuals)
    paths = []

    # Fig. 1: gradient maps (grayscale) and positive gradients over the true mask.
    ex = min(2, len(images))
    fig, axes = plt.subplots(
        len(names), 2 * ex, figsize=(2.0 * 2 * ex, 2.0 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        for e in range(ex):
            g = visuals[name]["grads"][e, ..., 0]
            a = axes[r, 2 * e]
            a.imshow(g, cmap="gray")
            a.set_title(f"{name}: gradient", fontsize=7)
            a = axes[r, 2 * e + 1]
            a.imshow(masks[e, ..., 0], cmap="gray", vmin=0, vmax=2)
            # positive gradients above 10 % of the largest: the pixels an attack picks first
            pos = np.ma.masked_where(g <= 0.1 * max(g.max(), 1e-12), g)
            a.imshow(pos, cmap="autumn", alpha=0.9)
            a.set_title("grad. > 10% max on mask", fontsize=7)
    _no_ticks(axes)
    fig.suptitle("Fig. 1: gradient of the predicted output w.r.t. the input", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig1_gradients.png", dpi=90))

    # Figs. 2-3: Dice vs value (N fixed).
    for fig_no, vmax in ((2, 0.2), (3, None)):
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        for name in names:
            s = results["models"][name]["value_sweep"]
            v, d = np.array(s["values"]), np.array(s["dice"])
            keep = v <= vmax + 1e-9 if vmax is not None else np.ones_like(v, bool)
            ax.plot(v[keep], d[keep], marker="o", label=name)
        ax.set_xlabel(f"value written into the {acfg.n_fixed} highest-gradient pixels")
        ax.set_ylabel("Dice")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"Fig. {fig_no}: Dice vs noise level (N = {acfg.n_fixed})", fontsize=9)
        paths.append(io.save_figure(fig, out / f"hippocampus_fig{fig_no}_values.png", dpi=90))

    # Fig. 4: predicted masks shrinking as the written value grows (one slice).
    values = results["models"][names[0]]["value_sweep"]["values"]
    fig, axes = plt.subplots(
        len(names),
        len(values) + 1,
        figsize=(1.4 * (len(values) + 1), 1.5 * len(names)),
        squeeze=False,
    )
    for r, name in enumerate(names):
        axes[r, 0].imshow(masks[0, ..., 0], cmap="gray")
        axes[r, 0].set_title("true mask", fontsize=6)
        axes[r, 0].set_ylabel(name, fontsize=7)
        for c, v in enumerate(values):
            axes[r, c + 1].imshow(
                visuals[name]["value_preds"][c, ..., 0] > acfg.threshold, cmap="gray"
            )
            axes[r, c + 1].set_title(f"v = {v:g}", fontsize=6)
    _no_ticks(axes)
    fig.suptitle(f"Fig. 4: predicted masks, N = {acfg.n_fixed} pixels set to v", fontsize=8)
    paths.append(io.save_figure(fig, out / "hippocampus_fig4_masks.png", dpi=90))

    # Fig. 5: Dice vs N at the fixed value.
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name in names:
        s = results["models"][name]["count_sweep"]
        ax.plot(s["n_pixels"], s["dice"], marker=".", label=name)
    ax.set_xlabel(f"pixels set to {acfg.fixed_value:g} (highest gradient first)")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Fig. 5: Dice vs number of attacked pixels", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig5_count.png", dpi=90))

    # Fig. 6: random values in [0, 1], mean and spread over repetitions.
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name in names:
        s = results["models"][name]["random_sweep"]
        n, mean, std = np.array(s["n_pixels"]), np.array(s["mean"]), np.array(s["std"])
        ax.plot(n, mean, marker=".", label=name)
        ax.fill_between(n, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("pixels set to random values in [0, 1]")
    ax.set_ylabel("Dice (mean +- std over repetitions)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Fig. 6: random attack, {acfg.repetitions} repetitions", fontsize=9)
    paths.append(io.save_figure(fig, out / "hippocampus_fig6_random.png", dpi=90))

    # Fig. 7: clean predictions of every model beside the image and the true mask.
    fig, axes = plt.subplots(
        len(images),
        len(names) + 2,
        figsize=(1.5 * (len(names) + 2), 1.6 * len(images)),
        squeeze=False,
    )
    for r in range(len(images)):
        axes[r, 0].imshow(images[r, ..., 0], cmap="gray")
        axes[r, 1].imshow(masks[r, ..., 0], cmap="gray")
        for c, name in enumerate(names):
            axes[r, c + 2].imshow(visuals[name]["clean"][r, ..., 0] > acfg.threshold, cmap="gray")
        if r == 0:
            for c, title in enumerate(["image", "true mask", *names]):
                axes[0, c].set_title(title, fontsize=7)
    _no_ticks(axes)
    fig.suptitle("Fig. 7: clean predictions", fontsize=8)
    paths.append(io.save_figure(fig, out / "hippocampus_fig7_predictions.png", dpi=90))
    return paths


def _no_ticks(axes):
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])

"""Figures of the loss-estimator evaluation and reproduction."""

from __future__ import annotations

IN_KEY = "in (test)"  # the in-distribution scores' key, drawn thicker


def plot_scores(scores_by_model: dict, path) -> None:
    """Histograms of ODIN scores per model: the in-distribution set (key :data:`IN_KEY`) and
    each OOD set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from core import io

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
                lw=2.0 if key == IN_KEY else 1,
            )
        ax.set_title(f"{name}: ODIN scores")
        ax.set_xlabel("max softmax of perturbed input at T")
        ax.legend(fontsize=7)
    io.save_figure(fig, path)


def plot_summary(summary: dict, path) -> None:
    """Fig. 3-style sensitivity + balanced accuracy, Table 1-style ODIN AUROC: mean ± sd over
    seeds (error bars), the paper's values as stars; the ODIN tuning set is marked †."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from core import io
    from tasks.isic import paper

    models = summary["aggregate"]["models"]
    tuned = summary["odin_tune_set"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.0))
    classes = list(models["vanilla"]["sensitivity"])
    x = np.arange(len(classes) + 1)
    for k, (key, label) in enumerate((("vanilla", "vanilla"), ("proposed", "loss estimator"))):
        m = models[key]
        stats = [m["sensitivity"][c] for c in classes] + [m["balanced_accuracy"]]
        a1.bar(
            x + (k - 0.5) * 0.38,
            [s["mean"] for s in stats],
            0.38,
            yerr=[s["sd"] for s in stats],
            capsize=3,
            label=f"{label} (ours, n={len(summary['seeds'])} seeds)",
        )
    a1.scatter(
        [x[-1] - 0.19, x[-1] + 0.19],
        paper.BALANCED_ACCURACY,
        marker="*",
        s=120,
        c="k",
        label="paper (8 classes)",
        zorder=3,
    )
    a1.set_xticks(x, [*classes, "bal. acc."])
    a1.set_ylabel("% on the test split")
    a1.set_title("Sensitivity per class and balanced accuracy (cf. Fig. 3)")
    a1.legend(fontsize=7)
    sets = list(models["vanilla"]["odin"])
    x = np.arange(len(sets))
    for k, key in enumerate(("vanilla", "proposed")):
        stats = [models[key]["odin"][s]["auroc"] for s in sets]
        a2.bar(
            x + (k - 0.5) * 0.38,
            [s["mean"] for s in stats],
            0.38,
            yerr=[s["sd"] for s in stats],
            capsize=3,
            label=f"{key} (ours)",
        )
    for i, s in enumerate(sets):
        p = paper.NEW_CLASS_AUROC if s == "new-class" else paper.TABLE1.get(s, {}).get("auroc")
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
    a2.axhline(50, color="grey", lw=0.8, ls=":")
    a2.set_xticks(x, [f"{s} †" if s == tuned else s for s in sets], rotation=20)
    a2.set_ylim(0, 105)
    a2.set_ylabel("AUROC % (test vs set)")
    a2.set_title(f"ODIN OOD detection (cf. Table 1, Fig. 5); † tuning set ({tuned})")
    a2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)
    io.save_figure(fig, path)


def plot_learning_curves(histories: dict, path) -> None:
    """Validation balanced accuracy per epoch, one line per seed, one panel per model.

    ``histories[model]`` is a list of ``history.csv`` paths (columns ``epoch`` and
    ``val_balanced_accuracy``); the marker is the epoch the checkpoint kept (the maximum). Shows
    whether a run was still improving when it stopped (the evidence for what limits a recipe).
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from core import io

    names = list(histories)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for k, file in enumerate(histories[name]):
            with open(file, newline="") as f:
                rows = list(csv.DictReader(f))
            epoch = np.array([int(r["epoch"]) for r in rows])
            value = 100 * np.array([float(r["val_balanced_accuracy"]) for r in rows])
            (line,) = ax.plot(epoch, value, lw=1, label=f"run {k + 1}")
            best = int(np.argmax(value))
            ax.plot(epoch[best], value[best], "o", color=line.get_color())
        ax.axhline(20, color="grey", lw=0.6, ls=":")  # chance with 5 classes
        ax.set_title(f"{name}: validation balanced accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.legend(fontsize=7)
    io.save_figure(fig, path)

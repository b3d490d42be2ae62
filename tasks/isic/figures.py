"""Figures of the loss-estimator evaluation and reproduction."""

from __future__ import annotations


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

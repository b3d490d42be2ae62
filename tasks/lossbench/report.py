"""results.json, the report table (mean +- sd per loss and task, ranks) and the figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

METRICS = (("dice", "higher"), ("hd95_mm", "lower"))


def _stats(values):
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None, None, 0
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), sd, len(values)


def ranks(means: dict[str, float | None], better: str) -> dict[str, float | None]:
    """Rank 1 = best; ties share the average of their ranks; a missing value ranks last."""
    from scipy.stats import rankdata

    names = list(means)
    worst = -math.inf if better == "higher" else math.inf
    keys = [means[n] if means[n] is not None else worst for n in names]
    keys = [-k for k in keys] if better == "higher" else keys
    return {n: float(r) for n, r in zip(names, rankdata(keys, method="average"), strict=True)}


def summarise(runs: dict) -> dict:
    """``runs[task][loss][seed] -> metrics`` to ``summary[task][loss]`` with mean, sd, ranks."""
    summary = {}
    for task, by_loss in runs.items():
        rows = {}
        for loss, by_seed in by_loss.items():
            row = {"seeds": sorted(int(s) for s in by_seed)}
            for metric, _ in METRICS:
                mean, sd, n = _stats([m[metric] for m in by_seed.values()])
                row[metric] = {"mean": mean, "sd": sd, "n": n}
            per_class = {}
            for m in by_seed.values():
                for cname, values in m["per_class"].items():
                    acc = per_class.setdefault(
                        cname,
                        {
                            "dice": [],
                            "hd95_mm": [],
                            "empty_prediction": 0,
                            "empty_label": 0,
                            "both_empty": 0,
                        },
                    )
                    acc["dice"].append(values["dice"])
                    acc["hd95_mm"].append(values["hd95_mm"])
                    for key in ("empty_prediction", "empty_label", "both_empty"):
                        acc[key] += values[key]
            row["per_class"] = {
                c: {
                    "dice": dict(zip(("mean", "sd", "n"), _stats(v["dice"]), strict=True)),
                    "hd95_mm": dict(zip(("mean", "sd", "n"), _stats(v["hd95_mm"]), strict=True)),
                    **{k: v[k] for k in ("empty_prediction", "empty_label", "both_empty")},
                }
                for c, v in per_class.items()
            }
            row["plateau"] = sum(bool(m.get("plateau")) for m in by_seed.values())
            row["epochs"] = [m.get("epochs") for m in by_seed.values()]
            rows[loss] = row
        for metric, better in METRICS:
            r = ranks({n: row[metric]["mean"] for n, row in rows.items()}, better)
            for n in rows:
                rows[n][f"rank_{metric}"] = r[n]
        summary[task] = rows
    return summary


def _fmt(stat: dict, scale: float = 1.0, digits: int = 1) -> str:
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean'] * scale:.{digits}f}"
    return text + (f" ± {stat['sd'] * scale:.{digits}f}" if stat["sd"] is not None else "")


def table(summary: dict) -> str:
    """The report table in Markdown: one block per task, losses by Dice rank."""
    lines = []
    for task, rows in summary.items():
        lines += [
            f"**{task}** (test set; mean ± sd over seeds; Dice %, HD95 mm; rank 1 = best)",
            "",
            "| loss | Dice | HD95 | Dice rank | HD95 rank | seeds | at plateau | empty predictions |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in sorted(rows.items(), key=lambda kv: kv[1]["rank_dice"]):
            empty = sum(c["empty_prediction"] for c in row["per_class"].values())
            lines.append(
                f"| {name} | {_fmt(row['dice'], 100)} | {_fmt(row['hd95_mm'])} | "
                f"{row['rank_dice']:g} | {row['rank_hd95_mm']:g} | {len(row['seeds'])} | "
                f"{row['plateau']}/{len(row['seeds'])} | {empty} |"
            )
        lines.append("")
    return "\n".join(lines)


def figure(runs: dict, path: Path) -> Path:
    """Per task: test Dice (x) against HD95 (y), one point per loss at its seed mean, with the
    seeds' spread as error bars (± sd) and each seed as a faint dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(runs)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 5.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, (loss, by_seed) in enumerate(sorted(runs[task].items())):
            d = [
                m["dice"] * 100
                for m in by_seed.values()
                if m["dice"] is not None and m["hd95_mm"] is not None
            ]
            h = [
                m["hd95_mm"]
                for m in by_seed.values()
                if m["dice"] is not None and m["hd95_mm"] is not None
            ]
            if not d:
                continue
            color = plt.cm.tab20(i % 20)
            ax.scatter(d, h, s=10, color=color, alpha=0.35)
            ax.errorbar(
                np.mean(d),
                np.mean(h),
                xerr=np.std(d, ddof=1) if len(d) > 1 else 0,
                yerr=np.std(h, ddof=1) if len(h) > 1 else 0,
                fmt="o",
                color=color,
                capsize=2,
                label=loss,
            )
            ax.annotate(
                loss,
                (np.mean(d), np.mean(h)),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("test Dice, mean of the foreground classes (%)")
        ax.set_ylabel("test HD95 (mm), mean of the foreground classes")
        ax.set_title(f"{task}: better is right and down")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(runs: dict, path: Path) -> Path:
    """Validation Dice per epoch of every run (one panel per task): where each run plateaued."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(runs)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, (loss, by_seed) in enumerate(sorted(runs[task].items())):
            color = plt.cm.tab20(i % 20)
            for j, m in enumerate(by_seed.values()):
                curve = m.get("val_dice_curve") or []
                ax.plot(
                    range(1, len(curve) + 1),
                    [v * 100 for v in curve],
                    color=color,
                    lw=1,
                    alpha=0.8,
                    label=loss if j == 0 else None,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation Dice (%)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

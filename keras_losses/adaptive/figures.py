"""Figures of an adaptive-GLF run: Fig. 6 (coefficients vs iteration) and Fig. 7 (Tversky space)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_losses.adaptive.deterministic import DEFAULT_THRESHOLDS
from keras_losses.adaptive.trajectory import read_trajectory

# Each coefficient beside the statistic that drives it in the deterministic rule (Fig. 2b): the
# statistic the rule banded (rule_p, rule_n, rule_b: per-image or pooled, soft or hard, with or
# without beta^2, as the run's options say), or, for a run without them (the exploratory rule,
# which bands nothing), the batch-pooled ratio of the same counts, drawn without band lines.
_PANELS = (
    ("alpha_p", r"$\alpha_P$", "rule_p", "tp_fp", r"$\langle TP/FP\rangle$"),
    ("alpha_n", r"$\alpha_N$", "rule_n", "tp_fn", r"$\langle TP/FN\rangle$"),
    ("beta2", r"$\beta^2$", "rule_b", "p_r_ratio", r"banded $P_{\alpha_P}/R_{\alpha_N}$ statistic"),
)


def _load(trajectory_csvs) -> dict[str, list[dict]]:
    if isinstance(trajectory_csvs, (str, os.PathLike)):
        trajectory_csvs = {Path(trajectory_csvs).parent.name or "run": trajectory_csvs}
    if not trajectory_csvs:
        raise ValueError("trajectory_csvs: expected at least one {label: path}; received none")
    runs = {}
    for label, path in trajectory_csvs.items():
        rows = read_trajectory(path)
        if not rows:
            raise ValueError(f"GLF trajectory {path} ({label}) has no rows")
        runs[str(label)] = rows
    return runs


def _save(fig, out_png) -> Path:
    import matplotlib.pyplot as plt

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out


def _col(rows, key):
    return np.array([r[key] for r in rows], dtype=float)


def plot_coefficients(trajectory_csvs, out_png, thresholds=DEFAULT_THRESHOLDS) -> Path:
    """Fig. 6: each GLF coefficient vs iteration beside its driving statistic.

    The right-hand panels plot what the deterministic rule banded at each step (``rule_p``,
    ``rule_n``, ``rule_b`` of the trajectory: for beta^2 that is beta^2 P_ap/R_an under the
    default ``beta2_statistic``), with the band edges; a run without them (exploratory) shows
    the batch-pooled <TP/FP>, <TP/FN>, P_ap/R_an, dashed. (The paper's Fig. 6 plots precision,
    recall and the ratio of weighted recall and weighted precision.)

    Args:
        trajectory_csvs: ``{label: path to glf_trajectory.csv}`` (e.g. deterministic and
            exploratory runs on one figure), or one path.
        out_png: the PNG to write.
        thresholds: band edges drawn on the statistic panels (log scale). Default
            (1/15, 1/5, 5, 15): the text gives 1/15 only, the others are ours (symmetric).

    Returns the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _load(trajectory_csvs)
    fig, axes = plt.subplots(3, 2, figsize=(10, 8), sharex=True)
    banded = False
    for label, rows in runs.items():
        it = _col(rows, "iteration")
        for r, (coef, coef_tex, rule, pooled, stat_tex) in enumerate(_PANELS):
            (line,) = axes[r, 0].plot(it, _col(rows, coef), label=label, lw=1.2)
            values = _col(rows, rule) if rule in rows[0] else np.full(len(rows), np.nan)
            if np.isfinite(values).any():
                banded = True
                axes[r, 1].plot(it, values, color=line.get_color(), lw=0.8, alpha=0.8, label=f"{label}: banded")
            else:
                axes[r, 1].plot(
                    it, _col(rows, pooled), color=line.get_color(), lw=0.8, alpha=0.8, ls="--",
                    label=f"{label}: batch-pooled",
                )
            axes[r, 0].set_ylabel(coef_tex)
            axes[r, 1].set_ylabel(stat_tex)
    for r in range(3):
        axes[r, 0].set_yscale("log")  # multiplicative updates: equal steps on a log axis
        axes[r, 1].set_yscale("log")
        if banded:
            for t in thresholds:
                axes[r, 1].axhline(t, color="0.6", lw=0.6, ls="--")
        axes[r, 0].axhline(1.0, color="0.6", lw=0.6, ls=":")
    axes[0, 0].set_title("GLF coefficient")
    axes[0, 1].set_title("statistic the rule bands (band edges: 1/15 the text's, 1/5, 5, 15 ours)", fontsize=8)
    axes[0, 1].legend(fontsize=7)
    axes[2, 0].set_xlabel("iteration")
    axes[2, 1].set_xlabel("iteration")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Adaptive GLF coefficients (cf. Seo et al. 2021, Fig. 6)")
    return _save(fig, out_png)


def tversky_coordinates(alpha_p, alpha_n, beta2):
    """GLF coefficients -> Tversky weights (a, b) of 1 - TP/(TP + a FP + b FN), scaled by 2.

    Formula:
        a = 2 alpha_p / (1 + beta2),  b = 2 beta2 alpha_n / (1 + beta2)
    Dice is (1, 1); Effectiveness losses (alpha_p = alpha_n = 1) lie on a + b = 2.
    """
    alpha_p, alpha_n, beta2 = (np.asarray(v, dtype=float) for v in (alpha_p, alpha_n, beta2))
    return 2 * alpha_p / (1 + beta2), 2 * beta2 * alpha_n / (1 + beta2)


def plot_tversky_trajectory(trajectory_csvs, out_png) -> Path:
    """Fig. 7: the coefficient trajectory in Tversky space, coloured by iteration.

    Axes (2 alpha_P/(1+beta^2), 2 beta^2 alpha_N/(1+beta^2)), the Tversky weights of FP and FN
    to which GLF reduces (the paper's text prints "2 alpha_P(1 + beta^2)" and "2 beta^2
    alpha_P/(1 + beta^2)", neither of which does: these are the consistent form); the Dice point (1, 1) and the
    Effectiveness line a + b = 2 are marked. One marker shape per run. Axes are linear as in
    the paper, or logarithmic when a run spans more than [0.05, 5].

    Args:
        trajectory_csvs: ``{label: path to glf_trajectory.csv}`` or one path.
        out_png: the PNG to write.

    Returns the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _load(trajectory_csvs)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    markers = "os^Dv<>"
    all_a, all_b, sc = [1.0], [1.0], None
    for k, (label, rows) in enumerate(runs.items()):
        a, b = tversky_coordinates(
            _col(rows, "next_alpha_p"), _col(rows, "next_alpha_n"), _col(rows, "next_beta2")
        )
        a0, b0 = tversky_coordinates(rows[0]["alpha_p"], rows[0]["alpha_n"], rows[0]["beta2"])
        a, b = np.concatenate([[a0], a]), np.concatenate([[b0], b])
        it = np.concatenate([[rows[0]["iteration"] - 1], _col(rows, "iteration")])
        ax.plot(a, b, color="0.75", lw=0.5, zorder=1)
        sc = ax.scatter(
            a,
            b,
            c=it,
            cmap="viridis",
            s=10,
            marker=markers[k % len(markers)],
            label=label,
            zorder=2,
        )
        all_a += list(a)
        all_b += list(b)
    values = np.array(all_a + all_b)
    if values.max() <= 5 and values.min() >= 0.05:
        hi = max(2.2, 1.05 * values.max())
        line = np.linspace(0, 2, 200)
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
    else:  # a run that wandered over orders of magnitude: log axes, the same marks
        lo, hi = values.min() / 2, values.max() * 2
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        line = np.geomspace(max(lo, 1e-12), 2 - max(lo, 1e-12), 400)
    ax.plot(line, 2 - line, "k--", lw=1, label="Effectiveness (a + b = 2)")
    ax.plot([1], [1], marker="*", color="red", ms=14, ls="none", label="Dice (1, 1)", zorder=3)
    ax.set_xlabel(r"$2\alpha_P/(1+\beta^2)$  (weight of FP)")
    ax.set_ylabel(r"$2\beta^2\alpha_N/(1+\beta^2)$  (weight of FN)")
    ax.set_aspect("equal")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="iteration", shrink=0.8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)
    ax.set_title("GLF trajectory in Tversky space (cf. Seo et al. 2021, Fig. 7)")
    return _save(fig, out_png)

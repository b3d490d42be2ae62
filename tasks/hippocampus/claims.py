"""The paper's claims, declared before any result and judged by ``evaluation.claims``.

Each claim quotes Rajput (2021) and says which per-seed effect is measured (a paired difference:
both losses are trained, attacked and scored on the same seed's split and slices). The verdict,
held / not held / inconclusive, comes from the shared rule (``evaluation/claims.py``: the 90 %
t interval of the mean per-seed effect against 0 and against the paper's effect). Where the
paper's words give an effect size (Figs. 3 and 5 name Dice levels), it is declared; otherwise
the claim is one of direction only. Thresholds that turn the paper's words into numbers
("very low") are ours and are written in the claim.
"""

from __future__ import annotations

import numpy as np

from evaluation.claims import AllOf, Claim, not_tested

VERY_LOW_DROP = 0.05  # our reading of "very low" (Fig. 2): at most 0.05 Dice lost


def _at(xs, ys, x):
    xs = np.asarray(xs, float)
    i = int(np.argmin(np.abs(xs - x)))
    return float(np.asarray(ys, float)[i])


def views(models: dict) -> tuple[dict, list[dict]]:
    """Per-loss numbers the claims read: the seed means, and one view per seed."""

    def view(m, pick):
        v, c, r = m["value_sweep"], m["count_sweep"], m["random_sweep"]
        return {
            "clean": pick(m["clean_dice_foreground_slices"]),
            "clean_attacked": pick(m["clean_dice_attacked_slices"]),
            "values": v["values"],
            "value_dice": pick(v["dice"]),
            "counts": c["n_pixels"],
            "count_dice": pick(c["dice"]),
            "random_n": r["n_pixels"],
            "random_dice": pick(r["dice"]),
        }

    mean = {k: view(m, lambda s: s["mean"]) for k, m in models.items()}
    n_seeds = len(next(iter(models.values()))["clean_dice_foreground_slices"]["per_seed"])
    seeds = [
        {k: view(m, lambda s, i=i: s["per_seed"][i]) for k, m in models.items()}
        for i in range(n_seeds)
    ]
    return mean, seeds


def _drop(v, curve):
    """Mean Dice lost from the clean attacked slices over the levels of a curve (N > 0 / v)."""
    return float(v["clean_attacked"] - np.mean(curve))


def _mean_drops(v):
    return {
        "fig3_values": _drop(v, v["value_dice"]),
        "fig5_count": _drop(v, v["count_dice"][1:]),
        "fig6_random": _drop(v, v["random_dice"][1:]),
    }


def _fig2_drop(x) -> float:
    """Dice lost from v = 0 to v = 0.2 (Fig. 2)."""
    return _at(x["values"], x["value_dice"], 0.0) - _at(x["values"], x["value_dice"], 0.2)


def declared_claims(n_fixed: int, fixed_value: float) -> list[tuple]:
    """``(claim, needed losses, effect(view))`` for every claim; ``effect`` gives one seed's
    effect (a float for a :class:`Claim`, ``{part: float}`` for an :class:`AllOf`)."""
    others = ("dice", "bce+dice", "bce+dice+focal")
    figs = ("fig3_values", "fig5_count", "fig6_random")
    return [
        (
            Claim(
                "dice-more-accurate-than-bce",
                "clean Dice (foreground test slices): Dice loss minus BCE",
                paper="Dice loss gives us more accurate results for segmentation compared to BCE (Sec. 5)",
            ),
            ("dice", "bce"),
            lambda v: v["dice"]["clean"] - v["bce"]["clean"],
        ),
        (
            AllOf(
                "bce+dice-most-accurate",
                "clean Dice (foreground test slices): BCE+Dice minus each other loss",
                tuple(
                    Claim(f"bce+dice minus {k}", f"clean Dice: BCE+Dice minus {k}")
                    for k in ("bce", "dice", "bce+dice+focal")
                ),
                paper="combining BCE and Dice loss gives us the best result in terms of "
                "segmentation (Sec. 5); we also saw a little increase in the accuracy or Dice "
                "Score (Sec. 4)",
            ),
            ("bce", "dice", "bce+dice", "bce+dice+focal"),
            lambda v: {
                f"bce+dice minus {k}": v["bce+dice"]["clean"] - v[k]["clean"]
                for k in ("bce", "dice", "bce+dice+focal")
            },
        ),
        (
            Claim(
                "fig2-dice-drops-faster",
                f"Fig. 2 (N = {n_fixed}): Dice lost from v = 0 to v = 0.2, Dice loss minus BCE+Dice",
                paper="as the level of perturbation increases model with Dice loss starts "
                "decreasing more rapidly compared to the model trained with BCE+Dice loss",
            ),
            ("dice", "bce+dice"),
            lambda v: _fig2_drop(v["dice"]) - _fig2_drop(v["bce+dice"]),
        ),
        (
            AllOf(
                "fig2-bce-focal-drop-very-low",
                f"Fig. 2 (N = {n_fixed}): {VERY_LOW_DROP} minus the Dice lost from v = 0 to "
                "v = 0.2, for BCE and for BCE+Dice+Focal",
                tuple(
                    Claim(f"{k}: {VERY_LOW_DROP} minus drop", f"{VERY_LOW_DROP} minus {k}'s drop")
                    for k in ("bce", "bce+dice+focal")
                ),
                paper="the amount of drop in Dice score is very low for both BCE and Focal",
                note=f"'very low' read as at most {VERY_LOW_DROP} Dice (ours)",
            ),
            ("bce", "bce+dice+focal"),
            lambda v: {
                f"{k}: {VERY_LOW_DROP} minus drop": VERY_LOW_DROP - _fig2_drop(v[k])
                for k in ("bce", "bce+dice+focal")
            },
        ),
        (
            Claim(
                "fig3-bce+dice-keeps-more-at-v0.6",
                f"Fig. 3 (N = {n_fixed}, v = 0.6): Dice of BCE+Dice minus Dice of Dice loss",
                paper="noise level=0.6 Dice score for the model trained with Dice loss has already "
                "dipped below 5% whereas for the model trained with BCE+Dice loss, Dice Score "
                "remains around 60%",
                paper_effect=0.55,
                note="the paper's effect: 'around 60 %' minus 'below 5 %', 0.60 - 0.05",
            ),
            ("dice", "bce+dice"),
            lambda v: (
                _at(v["bce+dice"]["values"], v["bce+dice"]["value_dice"], 0.6)
                - _at(v["dice"]["values"], v["dice"]["value_dice"], 0.6)
            ),
        ),
        (
            Claim(
                "fig5-bce+dice-keeps-more-at-n30",
                f"Fig. 5 (N = 30, v = {fixed_value:g}): Dice of BCE+Dice minus Dice of Dice loss",
                paper="by the time we replace 30 pixels by 0.2 Dice score for the model trained "
                "with Dice loss has reduced to 30% whereas for the model trained with BCE+Dice "
                "loss is still above 70%",
                paper_effect=0.40,
                note="the paper's effect: 'above 70 %' minus '30 %', 0.70 - 0.30",
            ),
            ("dice", "bce+dice"),
            lambda v: (
                _at(v["bce+dice"]["counts"], v["bce+dice"]["count_dice"], 30)
                - _at(v["dice"]["counts"], v["dice"]["count_dice"], 30)
            ),
        ),
        (
            Claim(
                "fig6-bce+dice-keeps-more-random",
                "Fig. 6 (random values in [0, 1]): mean Dice over N > 0, BCE+Dice minus Dice loss",
                paper="Result of Figure 6 also shows the similar trend i.e., BCE+Dice outperforming "
                "Dice in terms of robustness against adversarial attacks",
            ),
            ("dice", "bce+dice"),
            lambda v: (
                float(np.mean(v["bce+dice"]["random_dice"][1:]))
                - float(np.mean(v["dice"]["random_dice"][1:]))
            ),
        ),
        (
            AllOf(
                "bce-degrades-least",
                "mean Dice drop from clean over Figs. 3, 5 and 6: each other loss minus BCE",
                tuple(Claim(f"{k} minus bce", f"mean drop: {k} minus BCE") for k in others),
                paper="BCE is much more resilient to both the level of noise and the number of "
                "pixels changed (Sec. 5)",
            ),
            ("bce", *others),
            lambda v: {f"{k} minus bce": _mean_drop(v[k]) - _mean_drop(v["bce"]) for k in others},
        ),
        (
            AllOf(
                "bce+dice-degrades-less-than-dice",
                "mean Dice drop from clean in each of Figs. 3, 5 and 6: Dice loss minus BCE+Dice",
                tuple(Claim(f, f"{f}: mean drop, Dice loss minus BCE+Dice") for f in figs),
                paper="Combining loss functions gives us the combined property of both BCE and "
                "Dice, i.e., better accuracy or Dice score of Dice loss and better robustness of "
                "BCE (Sec. 4)",
            ),
            ("dice", "bce+dice"),
            lambda v: {f: _mean_drops(v["dice"])[f] - _mean_drops(v["bce+dice"])[f] for f in figs},
        ),
    ]


def _mean_drop(v) -> float:
    return float(np.mean(list(_mean_drops(v).values())))


NOT_TESTED = [
    (
        "fig1-gradient-spread",
        "Fig. 1: BCE spreads its active gradients over a wider region than Dice loss; the combined "
        "losses lie in between",
        "a visual judgement of gradient maps: the figure is drawn (hippocampus_fig1_gradients.png), "
        "the paper gives no measure to test",
    ),
    (
        "figs4-7-masks",
        "Figs. 4 and 7: masks shrink with the noise level; the four clean masks look alike",
        "qualitative figures, drawn (hippocampus_fig4_masks.png, hippocampus_fig7_predictions.png)",
    ),
]


def check_claims(models: dict, n_fixed: int, fixed_value: float) -> list[dict]:
    """Every claim's verdict by the shared rule, with its per-seed effects and interval."""
    _, seeds = views(models)
    out = []
    for claim, needs, effect in declared_claims(n_fixed, fixed_value):
        if not all(k in models for k in needs):
            out.append(
                not_tested(
                    claim.name, claim.text, f"needs the losses {', '.join(needs)}", claim.paper
                )
            )
            continue
        per_seed = [effect(s) for s in seeds]
        if isinstance(claim, AllOf):
            out.append(claim.judge({p.name: [e[p.name] for e in per_seed] for p in claim.parts}))
        else:
            out.append(claim.judge(per_seed))
    for name, text, why in NOT_TESTED:
        out.append(not_tested(name, text, why))
    return out

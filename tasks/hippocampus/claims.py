"""The paper's claims, checked one by one on the seed means (and on every seed alone).

Each claim quotes Rajput (2021) and states the test we apply; thresholds that turn the
paper's words into numbers ("very low", "around 60 %") are ours and are written in the claim.
"""

from __future__ import annotations

import numpy as np

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


def claim_tests(n_fixed: int, fixed_value: float):
    """``(claim, paper quote, needed losses, test(view) -> (held, numbers))`` for every claim."""

    def c1(v):
        return v["dice"]["clean"] > v["bce"]["clean"], {
            k: round(v[k]["clean"], 4) for k in ("dice", "bce")
        }

    def c2(v):
        best = max(v, key=lambda k: v[k]["clean"])
        return best == "bce+dice", {k: round(x["clean"], 4) for k, x in v.items()}

    def fig2_drop(x):
        return _at(x["values"], x["value_dice"], 0.0) - _at(x["values"], x["value_dice"], 0.2)

    def c3(v):
        d, bd = fig2_drop(v["dice"]), fig2_drop(v["bce+dice"])
        return d > bd, {"drop v=0->0.2: dice": round(d, 4), "bce+dice": round(bd, 4)}

    def c4(v):
        drops = {k: round(fig2_drop(v[k]), 4) for k in ("bce", "bce+dice+focal")}
        return max(drops.values()) <= VERY_LOW_DROP, {"drop v=0->0.2": drops}

    def c5(v):
        d = _at(v["dice"]["values"], v["dice"]["value_dice"], 0.6)
        bd = _at(v["bce+dice"]["values"], v["bce+dice"]["value_dice"], 0.6)
        return d < 0.05 and bd >= 0.5, {"v=0.6: dice": round(d, 4), "bce+dice": round(bd, 4)}

    def c6(v):
        d = _at(v["dice"]["counts"], v["dice"]["count_dice"], 30)
        bd = _at(v["bce+dice"]["counts"], v["bce+dice"]["count_dice"], 30)
        return d <= 0.4 and bd > 0.7, {"N=30: dice": round(d, 4), "bce+dice": round(bd, 4)}

    def c7(v):
        d = float(np.mean(v["dice"]["random_dice"][1:]))
        bd = float(np.mean(v["bce+dice"]["random_dice"][1:]))
        return bd > d, {"mean over N>0: dice": round(d, 4), "bce+dice": round(bd, 4)}

    def c8(v):
        drops = {k: round(float(np.mean(list(_mean_drops(x).values()))), 4) for k, x in v.items()}
        return drops["bce"] <= min(drops.values()), {"mean drop": drops}

    def c9(v):
        d, bd = _mean_drops(v["dice"]), _mean_drops(v["bce+dice"])
        return all(bd[k] < d[k] for k in d), {
            "mean drop dice": {k: round(x, 4) for k, x in d.items()},
            "bce+dice": {k: round(x, 4) for k, x in bd.items()},
        }

    return [
        (
            "Dice loss is more accurate than BCE (clean Dice, foreground slices)",
            "Dice loss gives us more accurate results for segmentation compared to BCE (Sec. 5)",
            ("dice", "bce"),
            c1,
        ),
        (
            "BCE+Dice has the highest clean Dice of the four",
            "combining BCE and Dice loss gives us the best result in terms of segmentation (Sec. 5); "
            "we also saw a little increase in the accuracy or Dice Score (Sec. 4)",
            ("bce", "dice", "bce+dice", "bce+dice+focal"),
            c2,
        ),
        (
            f"Fig. 2 (N = {n_fixed}): the Dice-loss model loses more Dice than BCE+Dice from v = 0 to v = 0.2",
            "as the level of perturbation increases model with Dice loss starts decreasing more rapidly "
            "compared to the model trained with BCE+Dice loss",
            ("dice", "bce+dice"),
            c3,
        ),
        (
            f"Fig. 2: BCE and BCE+Dice+Focal lose at most {VERY_LOW_DROP} Dice from v = 0 to v = 0.2",
            "the amount of drop in Dice score is very low for both BCE and Focal",
            ("bce", "bce+dice+focal"),
            c4,
        ),
        (
            f"Fig. 3 (N = {n_fixed}, v = 0.6): Dice loss below 5 % while BCE+Dice stays near 60 % (>= 50 %)",
            "noise level=0.6 Dice score for the model trained with Dice loss has already dipped below 5% "
            "whereas for the model trained with BCE+Dice loss, Dice Score remains around 60%",
            ("dice", "bce+dice"),
            c5,
        ),
        (
            f"Fig. 5 (N = 30, v = {fixed_value:g}): Dice loss about 30 % (<= 40 %) while BCE+Dice stays above 70 %",
            "by the time we replace 30 pixels by 0.2 Dice score for the model trained with Dice loss has "
            "reduced to 30% whereas for the model trained with BCE+Dice loss is still above 70%",
            ("dice", "bce+dice"),
            c6,
        ),
        (
            "Fig. 6 (random values in [0, 1]): BCE+Dice keeps more Dice than Dice loss (mean over N > 0)",
            "Result of Figure 6 also shows the similar trend i.e., BCE+Dice outperforming Dice in terms "
            "of robustness against adversarial attacks",
            ("dice", "bce+dice"),
            c7,
        ),
        (
            "BCE degrades least (smallest mean Dice drop from clean over Figs. 3, 5 and 6)",
            "BCE is much more resilient to both the level of noise and the number of pixels changed (Sec. 5)",
            ("bce", "dice", "bce+dice", "bce+dice+focal"),
            c8,
        ),
        (
            "BCE+Dice degrades less than Dice loss in each of Figs. 3, 5 and 6",
            "Combining loss functions gives us the combined property of both BCE and Dice, i.e., better "
            "accuracy or Dice score of Dice loss and better robustness of BCE (Sec. 4)",
            ("dice", "bce+dice"),
            c9,
        ),
    ]


NOT_TESTED = [
    (
        "Fig. 1: BCE spreads its active gradients over a wider region than Dice loss; the combined "
        "losses lie in between",
        "a visual judgement of gradient maps: the figure is drawn (hippocampus_fig1_gradients.png), "
        "the paper gives no measure to test",
    ),
    (
        "Figs. 4 and 7: masks shrink with the noise level; the four clean masks look alike",
        "qualitative figures, drawn (hippocampus_fig4_masks.png, hippocampus_fig7_predictions.png)",
    ),
]


def check_claims(models: dict, n_fixed: int, fixed_value: float) -> list[dict]:
    """Every claim: held on the seed means?, on how many seeds alone, and the numbers."""
    mean, seeds = views(models)
    out = []
    for text, quote, needs, test in claim_tests(n_fixed, fixed_value):
        if not all(k in mean for k in needs):
            out.append(
                {
                    "claim": text,
                    "paper": quote,
                    "held": None,
                    "why": f"needs the losses {', '.join(needs)}",
                }
            )
            continue
        held, numbers = test(mean)
        per_seed = [bool(test(s)[0]) for s in seeds]
        out.append(
            {
                "claim": text,
                "paper": quote,
                "held": bool(held),
                "held_on_seeds": f"{sum(per_seed)}/{len(per_seed)}",
                "numbers": numbers,
            }
        )
    for text, why in NOT_TESTED:
        out.append({"claim": text, "held": None, "why": why})
    return out

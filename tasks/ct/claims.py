"""The GLF paper's claims on the lung data, declared before any result and judged by the shared rule
(:mod:`evaluation.claims`: a 90 % t interval of the per-seed effect against 0 and the paper's effect).

Each effect is a per-seed difference in % points on the test set (metrics of ``reproduction._flat``),
or, for Fig. 7, a coordinate of the coefficients' end point. Quotes are from
``../shared/papers/seo-bassenne-xing-2021-adaptive-glf.txt``, Sec. III.
"""

from __future__ import annotations

import math

from evaluation.claims import AllOf, Claim, not_tested

FIXED = ("D", "E", "T")
ADAPTIVE = ("G(D)", "G(E)")

# Sec. III: "the proposed training methods yield values of 88.3% (D) and 90.4% (E) for the lung
# dataset ... all statistically significantly larger compared to the 82% ... best recall
# performance obtained with the conventional loss functions".
RECALL = {
    g: Claim(
        f"{g} recall > best conventional recall",
        f"recall on tumour slices, {g} minus the conventional loss (D, E or T) of the highest mean recall, % points",
        paper=f"{p} vs 82.0 (Sec. III)",
        direction="greater",
        paper_effect=round(p - 82.0, 6),
        note="the best conventional loss is picked by our mean recall over the seeds",
    )
    for g, p in (("G(D)", 88.3), ("G(E)", 90.4))
}
# Sec. III: "The Dice coefficients ... show that the new methods overall outperform the existing
# methods by nearly 10% ... for the lung".
DICE = {
    g: AllOf(
        f"{g} Dice > every conventional loss",
        f"Dice on tumour slices, {g} minus each of D, E, T, % points",
        parts=tuple(
            Claim(f"{g} - {k}", f"Dice, {g} minus {k}, % points", direction="greater") for k in FIXED
        ),
        paper="'the new methods overall outperform the existing methods by nearly 10%' (Sec. III, Fig. 3c)",
        note="direction only: 'nearly 10%' does not say against which method",
    )
    for g in ADAPTIVE
}
# Sec. III: "the Dice coefficient is increased from 71.6% ... for the Tversky loss to 75.4% ...
# and 77.4% ... for the deterministic and exploratory training of the GLF".
TUMOUR_FREE = {
    g: Claim(
        f"{g} tumour-free Dice > T",
        f"Dice on tumour-free slices, {g} minus T, % points",
        paper=f"{p} vs 71.6 (Sec. III, Fig. 5)",
        direction="greater",
        paper_effect=round(p - 71.6, 6),
    )
    for g, p in (("G(D)", 75.4), ("G(E)", 77.4))
}
# Sec. III: "The precision ... exhibits little sensitivity to the choice of the training loss,
# with less than 2% ... difference between the worst and best methods for the lung".
PRECISION_SPREAD = Claim(
    "precision spread < 2 % points",
    "precision on tumour slices, best minus worst of D, E, T, G(D), G(E) on the same seed, minus 2, % points",
    paper="'less than 2% ... difference between the worst and best methods for the lung' (Sec. III)",
    direction="less",
    note="a level: the spread minus the stated 2 % points",
)
# Sec. III, Fig. 7: "towards the end of training, the parameter values recover more balanced
# values (1.4, 0.5) and (1.2, 0.8) for the deterministic and exploratory methods". Coordinates
# (2 alpha_P / (1 + beta^2), 2 beta^2 alpha_N / (1 + beta^2)) (keras_losses.adaptive.figures;
# the text prints 2 alpha_P (1 + beta^2) and 2 beta^2 alpha_P / (1 + beta^2), neither of which
# reduces GLF to Tversky); Dice is (1, 1). A claim on which side of Dice each coordinate ends.
END_POINT = {
    g: AllOf(
        f"{g} Fig. 7 end point",
        f"{g}'s coefficients after the last step, as Tversky weights (FP weight, FN weight), minus Dice's (1, 1)",
        parts=(
            Claim(f"{g} FP weight - 1", "FP weight minus 1", direction="greater", paper_effect=round(a - 1, 6)),
            Claim(f"{g} FN weight - 1", "FN weight minus 1", direction="less", paper_effect=round(b - 1, 6)),
        ),
        paper=f"({a}, {b}) (Sec. III, Fig. 7)",
        note="the end point's side of Dice's (1, 1) on each axis, the paper's distances as its effects",
    )
    for g, (a, b) in (("G(D)", (1.4, 0.5)), ("G(E)", (1.2, 0.8)))
}


def _pp(value) -> float:
    return math.nan if value is None else 100.0 * float(value)


def judge_claims(per_seed: dict, trajectories: dict, seeds) -> list[dict]:
    """Every claim above, judged on ``per_seed[seed][model][metric]`` (fractions) and
    ``trajectories[seed][model]["final"]`` (the coefficients after the last step). A claim whose
    models were not run is "not tested" with the reason."""
    from keras_losses.adaptive.figures import tversky_coordinates

    seeds = list(seeds)
    have = set.intersection(*(set(per_seed[s]) for s in seeds)) if seeds else set()

    def metric(model, name):
        return [_pp(per_seed[s][model][name]) for s in seeds]

    def diff(a, b, name):
        return [x - y for x, y in zip(metric(a, name), metric(b, name), strict=True)]

    out = []
    fixed = [k for k in FIXED if k in have]
    for g in ADAPTIVE:
        if g not in have or not fixed:
            out.append(not_tested(RECALL[g].name, RECALL[g].text, f"{g} or a conventional loss was not run"))
            continue
        best = max(fixed, key=lambda k: sum(metric(k, "recall")) / len(seeds))
        out.append({**RECALL[g].judge(diff(g, best, "recall")), "best_conventional": best})
    for g in ADAPTIVE:
        if g not in have or len(fixed) < len(FIXED):
            out.append(not_tested(DICE[g].name, DICE[g].text, "needs D, E, T and the adaptive model"))
            continue
        out.append(DICE[g].judge({f"{g} - {k}": diff(g, k, "dice") for k in FIXED}))
    for g in ADAPTIVE:
        if g not in have or "T" not in have:
            out.append(not_tested(TUMOUR_FREE[g].name, TUMOUR_FREE[g].text, "needs T and the adaptive model"))
            continue
        out.append(TUMOUR_FREE[g].judge(diff(g, "T", "tumour_free_dice")))
    models = [*FIXED, *ADAPTIVE]
    if all(m in have for m in models):
        spread = []
        for s in seeds:
            values = [_pp(per_seed[s][m]["precision"]) for m in models]
            spread.append(max(values) - min(values) - 2.0 if all(map(math.isfinite, values)) else math.nan)
        out.append(PRECISION_SPREAD.judge(spread))
    else:
        out.append(not_tested(PRECISION_SPREAD.name, PRECISION_SPREAD.text, "needs all five models"))
    for g in ADAPTIVE:
        finals = [trajectories.get(s, {}).get(g, {}).get("final") for s in seeds]
        if g not in have or any(f is None for f in finals):
            out.append(not_tested(END_POINT[g].name, END_POINT[g].text, f"no trajectory of {g}"))
            continue
        points = [tversky_coordinates(f["alpha_p"], f["alpha_n"], f["beta2"]) for f in finals]
        effects = {
            f"{g} FP weight - 1": [float(a) - 1 for a, _ in points],
            f"{g} FN weight - 1": [float(b) - 1 for _, b in points],
        }
        out.append({**END_POINT[g].judge(effects), "end_points": [[float(a), float(b)] for a, b in points]})
    return out

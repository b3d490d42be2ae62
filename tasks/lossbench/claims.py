"""The two claims the benchmark tests, declared before any run, judged by evaluation.claims.

Ma et al. 2021, "compound losses are the most robust". Robustness of a loss on one seed: its
worst rank over the four cells task x metric (hippocampus and lung; test Dice, higher better,
and HD95, lower better), ranked among the losses that enter both tasks (ties share the average
rank). Per seed, two effects, both in ranks:

* ``group``: mean worst rank of the non-compound losses minus that of the compound losses;
* ``top``: best (lowest) worst rank of the non-compound losses minus that of the compounds.

Held when both are held (a positive effect: the compounds are ranked better in the worst case,
as a group and at the top), by the shared rule; direction only (the paper gives no size in
these units).

Seo et al. 2021, "G(D)/G(E) beat D, E and T" on the lung patches: the per-seed test Dice
(percentage points) of G(D) minus each of Dice, Effectiveness and Tversky, and the same for
G(E); each rule's claim is held when all three comparisons are held; direction only.
"""

from __future__ import annotations

from evaluation.claims import AllOf, Claim, not_tested
from tasks.lossbench.report import ranks

MA = "Ma et al., Medical Image Analysis 71, 102035, 2021, Sec. 5: compound losses are the most robust"
SEO = "Seo et al., IEEE TMI 40(2), 2021, Sec. III / Fig. 3: the adaptive GLF beats D, E and T"

ROBUST = AllOf(
    "compound-most-robust",
    "worst rank over task x metric (hippocampus and lung; Dice, HD95), per seed",
    parts=(
        Claim("group", "mean worst rank: non-compound minus compound (ranks)", MA),
        Claim("top", "best worst rank: non-compound minus compound (ranks)", MA),
    ),
    paper=MA,
)

SEO_BASELINES = {"D": "Dice", "E": "Effectiveness", "T": "Tversky"}


def glf_claim(rule: str) -> AllOf:
    return AllOf(
        f"{rule}-beats-D-E-T",
        f"lung patches, test Dice of {rule} minus that of each of D, E, T (% points), per seed",
        parts=tuple(
            Claim(f"{rule}-{short}", f"test Dice, {rule} minus {name} (% points)", SEO)
            for short, name in SEO_BASELINES.items()
        ),
        paper=SEO,
        note="E and T at the library's defaults (the benchmark tunes no loss)",
    )


def declarations() -> list[dict]:
    return [
        {
            "claim": c.name,
            "text": c.text,
            "paper": c.paper,
            "parts": [p.declaration() for p in c.parts],
        }
        for c in (ROBUST, glf_claim("G(D)"), glf_claim("G(E)"))
    ]


def worst_ranks(runs: dict, groups: dict[str, str], seed: str) -> dict[str, float] | None:
    """Worst rank over task x metric of each loss that entered every task, on one seed."""
    tasks = list(runs)
    names = [n for n in groups if all(seed in runs[t].get(n, {}) for t in tasks)]
    if len(tasks) < 2 or not names:
        return None
    worst = dict.fromkeys(names, 0.0)
    for t in tasks:
        for metric, better in (("dice", "higher"), ("hd95_mm", "lower")):
            r = ranks({n: runs[t][n][seed][metric] for n in names}, better)
            worst = {n: max(worst[n], r[n]) for n in names}
    return worst


def judge(runs: dict, groups: dict[str, str]) -> dict:
    """Verdicts on both claims from ``runs[task][loss][seed] -> metrics``."""
    out = {}
    seeds = sorted({s for t in runs.values() for by_seed in t.values() for s in by_seed}, key=int)
    effects = {"group": [], "top": []}
    for seed in seeds:
        worst = worst_ranks(runs, groups, seed)
        if worst is None:
            continue
        comp = [w for n, w in worst.items() if groups[n] == "compound"]
        other = [w for n, w in worst.items() if groups[n] != "compound"]
        if comp and other:
            effects["group"].append(sum(other) / len(other) - sum(comp) / len(comp))
            effects["top"].append(min(other) - min(comp))
    if effects["group"]:
        out[ROBUST.name] = ROBUST.judge(effects)
    else:
        out[ROBUST.name] = not_tested(
            ROBUST.name, ROBUST.text, "needs both tasks and compound and non-compound losses", MA
        )
    lung = runs.get("lung", {})
    for rule in ("G(D)", "G(E)"):
        claim = glf_claim(rule)
        needed = [rule, *SEO_BASELINES.values()]
        common = (
            sorted(set.intersection(*[set(lung.get(n, {})) for n in needed]), key=int)
            if all(n in lung for n in needed)
            else []
        )
        if not common:
            out[claim.name] = not_tested(
                claim.name, claim.text, f"needs lung runs of {', '.join(needed)}", SEO
            )
            continue
        dice = {n: [100 * lung[n][s]["dice"] for s in common] for n in needed}
        out[claim.name] = claim.judge(
            {
                f"{rule}-{short}": [a - b for a, b in zip(dice[rule], dice[name], strict=True)]
                for short, name in SEO_BASELINES.items()
            }
        )
    return out

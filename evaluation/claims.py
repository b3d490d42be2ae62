"""Verdicts on a paper's claims: held / not held / inconclusive, by one rule for every study.

A claim is declared before any result is read (a :class:`Claim`, or an :class:`AllOf` of
several): what our effect is (a paired difference per seed, e.g. proposed minus vanilla on the
same seed's split), the direction the paper states, and, where the paper gives one, the size of
the paper's effect in the same units. It is judged by a confidence interval of our mean effect
over the seeds:

    interval = mean ± t(1 - (1 - CONFIDENCE) / 2, n - 1) · sd / sqrt(n)

(Student's t with n - 1 degrees of freedom; ``sd`` the sample standard deviation, ddof 1). With
the effect oriented so that the paper's direction is positive, ``P`` the paper's effect (> 0)
and ``tol`` the claim's tolerance:

- **held** when the interval excludes 0 on the paper's side: ``lower > tol``;
- **not held** when the interval excludes the paper's effect, i.e. ours is reliably smaller or
  opposite: ``upper < P - tol``; a claim of direction only (the paper gives no size) is not held
  when the interval lies on the opposite side of 0: ``upper < -tol``;
- **inconclusive** otherwise.

Held is tested first: an interval above 0 but below the paper's effect is *held* (the direction
is reproduced) and carries ``magnitude = "smaller than the paper's"``; ``magnitude`` is
``"as the paper's"`` when the interval contains ``P`` and ``"larger than the paper's"`` when it
lies above it.

Boundary cases, so that no verdict hinges on float rounding:

- A bound within ``tol`` of 0 or of ``P`` touches it and excludes nothing (``tol`` defaults to
  :data:`TOLERANCE`, 1e-9 in the effect's units: a million times the rounding error of a mean of
  a few numbers of size 100 in float64, and far below any difference a study reports).
- n = 1 (or 0) finite per-seed effect: there is no spread to build an interval from; the
  interval is unbounded (``None`` in JSON) and the verdict is inconclusive.
- Zero spread (all seeds give the same effect): the interval is the point ``[mean, mean]``
  and the rule applies to it unchanged.
- A non-finite per-seed effect (an undefined metric) is left out; ``n`` says how many were used.

A claim that is a pattern or a ranking ("A has the highest Dice of the four", "A degrades
least") is an :class:`AllOf` of paired comparisons (A minus each other), each judged by the rule
above: held when every part is held, not held when any part is not held, inconclusive
otherwise. A claim about a level ("below 5 %") is the difference of the level and the stated
threshold.

**Why 90 %.** Each verdict is a one-sided statement: held says our effect is above 0, not held
says it is below the paper's. The two-sided 90 % interval makes each of them a one-sided test at
the 5 % level, as in the two one-sided tests (TOST) of equivalence testing (Schuirmann 1987,
J. Pharmacokinet. Biopharm. 15:657). With 3 seeds (2 degrees of freedom) t = 2.920, so the
half-width is 1.69 standard deviations of the per-seed effect; a 95 % interval (t = 4.303, 2.48
sd) would leave almost every comparison of 3 seeds inconclusive.

Example::

    claim = Claim(
        "balanced-accuracy",
        "balanced accuracy: estimator minus vanilla, test split, % points",
        paper="77.9 % as opposed to 73.1 % (Sec. 4.1)",
        direction="greater",
        paper_effect=4.8,
    )
    verdict = claim.judge(paired(proposed, vanilla))  # a dict, ready for results.json
    verdict["verdict"]  # "held", "not held" or "inconclusive"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

CONFIDENCE = 0.90  # two-sided; each verdict is a one-sided test at 5 % (see the module docstring)
TOLERANCE = 1e-9  # a bound within this of 0 or of the paper's effect touches it

HELD = "held"
NOT_HELD = "not held"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
DIRECTIONS = ("greater", "less")

RULE = (
    f"{CONFIDENCE:.0%} confidence interval of the mean per-seed effect (Student's t, n - 1 degrees "
    "of freedom): held when it excludes 0 on the paper's side; not held when it excludes the "
    "paper's effect (ours reliably smaller or opposite; for a claim of direction only: the "
    "interval lies on the opposite side of 0); inconclusive otherwise; fewer than 2 seeds: "
    "inconclusive; a claim of several parts is held when every part is held and not held when "
    "any part is not held"
)


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided ``confidence`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(1 - (1 - confidence) / 2, df))


def paired(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-seed differences ``a[i] - b[i]`` of two results measured on the same seeds."""
    if len(a) != len(b):
        raise ValueError(
            f"expected one value per seed on both sides; received {len(a)} and {len(b)}"
        )
    return [float(x) - float(y) for x, y in zip(a, b, strict=True)]


def interval(effects: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean, sd and the t confidence interval of the finite per-seed ``effects``.

    ``interval`` is ``[None, None]`` (unbounded) with fewer than 2 finite values.
    """
    values = [float(x) for x in effects]
    finite = [x for x in values if math.isfinite(x)]
    n = len(finite)
    out = {"per_seed": values, "n": n, "confidence": confidence}
    if n == 0:
        return {**out, "mean": None, "sd": None, "t": None, "interval": [None, None]}
    mean = math.fsum(finite) / n
    if n == 1:
        return {**out, "mean": mean, "sd": None, "t": None, "interval": [None, None]}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in finite) / (n - 1))
    t = t_quantile(confidence, n - 1)
    half = t * sd / math.sqrt(n)
    return {**out, "mean": mean, "sd": sd, "t": t, "interval": [mean - half, mean + half]}


def _fmt(x: float | None) -> str:
    return "unbounded" if x is None else f"{x:.4g}"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, declared before any result.

    Args:
        name: short identifier (a key in results.json).
        text: what is measured, in words: the effect and its units (e.g. "AUROC, estimator minus
            vanilla, % points").
        paper: the paper's words and where they stand.
        direction: ``"greater"`` when the paper says our effect is positive, ``"less"`` when
            negative.
        paper_effect: the paper's effect in the same units and sign convention as ours (positive
            for ``"greater"``, negative for ``"less"``); ``None`` when the paper states only a
            direction (default).
        tolerance: a bound within this of 0 or of ``paper_effect`` touches it (default
            :data:`TOLERANCE`).
        note: how the paper's words were turned into this effect, where that needed a choice.
    """

    name: str
    text: str
    paper: str = ""
    direction: str = "greater"
    paper_effect: float | None = None
    tolerance: float = TOLERANCE
    note: str = ""

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"claim {self.name!r}: direction must be one of {DIRECTIONS}; received {self.direction!r}"
            )
        if self.paper_effect is not None:
            sign = 1 if self.direction == "greater" else -1
            if not math.isfinite(self.paper_effect) or sign * self.paper_effect <= 0:
                raise ValueError(
                    f"claim {self.name!r}: paper_effect must lie on the {self.direction} side of 0; "
                    f"received {self.paper_effect!r}"
                )
        if not self.tolerance >= 0:
            raise ValueError(
                f"claim {self.name!r}: tolerance must be >= 0; received {self.tolerance!r}"
            )

    def declaration(self) -> dict:
        return {
            "claim": self.name,
            "text": self.text,
            "paper": self.paper,
            "direction": self.direction,
            "paper_effect": self.paper_effect,
            "note": self.note,
        }

    def judge(self, effects: Sequence[float], confidence: float = CONFIDENCE) -> dict:
        """The verdict on the per-seed ``effects`` (ours, not oriented), with the numbers used."""
        return self._verdict(interval(effects, confidence))

    def judge_summary(self, mean: float, sd: float, n: int, confidence: float = CONFIDENCE) -> dict:
        """The same verdict from the mean and sample sd (ddof 1) of ``n`` per-seed effects,
        for results that kept only those; ``per_seed`` is then None. Only an effect that is one
        number per seed has such a summary: a difference of two reported means does not (its
        sd needs the pairing)."""
        stats = {"per_seed": None, "n": int(n), "confidence": confidence, "mean": float(mean)}
        if n < 2:
            stats |= {"sd": None, "t": None, "interval": [None, None]}
        else:
            t = t_quantile(confidence, n - 1)
            half = t * float(sd) / math.sqrt(n)
            stats |= {"sd": float(sd), "t": t, "interval": [mean - half, mean + half]}
        return self._verdict(stats)

    def _verdict(self, stats: dict) -> dict:
        sign = 1 if self.direction == "greater" else -1
        lo, hi = stats["interval"]
        out = {**self.declaration(), "effect": stats, "rule": RULE, "magnitude": None}
        if lo is None:
            why = f"{stats['n']} finite per-seed value(s): no interval"
            return {**out, "verdict": INCONCLUSIVE, "reason": why}
        # oriented so that the paper's direction is positive
        olo, ohi = (lo, hi) if sign > 0 else (-hi, -lo)
        p = None if self.paper_effect is None else sign * self.paper_effect
        tol = self.tolerance
        shown = f"interval [{_fmt(lo)}, {_fmt(hi)}]"
        side = "above" if sign > 0 else "below"
        if olo > tol:
            verdict, why = HELD, f"{shown} lies {side} 0"
            if p is not None:
                if ohi < p - tol:
                    out["magnitude"], where = "smaller than the paper's", "beyond it"
                elif olo > p + tol:
                    out["magnitude"], where = "larger than the paper's", "short of it"
                else:
                    out["magnitude"], where = "as the paper's", "inside it"
                why += f"; the paper's effect {self.paper_effect:g} lies {where}"
        elif p is not None and ohi < p - tol:
            verdict = NOT_HELD
            why = f"{shown} excludes the paper's effect {self.paper_effect:g}"
        elif p is None and ohi < -tol:
            verdict = NOT_HELD
            why = f"{shown} lies on the opposite side of 0 from the paper's direction ({self.direction})"
        else:
            verdict = INCONCLUSIVE
            target = "0" if p is None else f"0 and the paper's effect {self.paper_effect:g}"
            why = f"{shown} does not exclude {target}"
        return {**out, "verdict": verdict, "reason": why}


@dataclass(frozen=True)
class AllOf:
    """A claim made of several parts (a ranking, a pattern, "in each of Figs. 3, 5 and 6").

    Held when every part is held, not held when any part is not held, inconclusive otherwise.
    """

    name: str
    text: str
    parts: tuple[Claim, ...] = field(default_factory=tuple)
    paper: str = ""
    note: str = ""

    def __post_init__(self):
        if not self.parts:
            raise ValueError(f"claim {self.name!r}: AllOf needs at least one part")
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"claim {self.name!r}: part names must be distinct; received {names}")

    def judge(self, effects: dict[str, Sequence[float]], confidence: float = CONFIDENCE) -> dict:
        """``effects[part.name]``: that part's per-seed effects."""
        missing = [p.name for p in self.parts if p.name not in effects]
        if missing:
            raise KeyError(f"claim {self.name!r}: no per-seed effects for the part(s) {missing}")
        parts = [p.judge(effects[p.name], confidence) for p in self.parts]
        verdicts = [p["verdict"] for p in parts]
        if all(v == HELD for v in verdicts):
            verdict, why = HELD, f"all {len(parts)} parts held"
        elif NOT_HELD in verdicts:
            bad = [p["claim"] for p in parts if p["verdict"] == NOT_HELD]
            verdict, why = NOT_HELD, f"not held: {', '.join(bad)}"
        else:
            open_ = [p["claim"] for p in parts if p["verdict"] == INCONCLUSIVE]
            verdict, why = INCONCLUSIVE, f"inconclusive: {', '.join(open_)}; none not held"
        return {
            "claim": self.name,
            "text": self.text,
            "paper": self.paper,
            "note": self.note,
            "rule": RULE,
            "verdict": verdict,
            "reason": why,
            "parts": parts,
        }


def not_tested(name: str, text: str, why: str, paper: str = "") -> dict:
    """A claim the study cannot test, with the reason, in the same shape as a verdict."""
    return {"claim": name, "text": text, "paper": paper, "verdict": "not tested", "reason": why}


def summary_line(v: dict, digits: int = 3) -> str:
    """One line for a report: the verdict, our mean effect and its interval, the paper's effect."""
    if "parts" in v:
        return f"**{v['verdict']}** ({v['reason']})"
    if "effect" not in v:
        return f"{v['verdict']} ({v['reason']})"
    e = v["effect"]
    lo, hi = e["interval"]

    def f(x):
        return "-" if x is None else f"{x:+.{digits}f}"

    paper = "" if v["paper_effect"] is None else f"; paper {v['paper_effect']:+g}"
    return f"**{v['verdict']}**: {f(e['mean'])} [{f(lo)}, {f(hi)}], n = {e['n']}{paper}" + (
        f" ({v['magnitude']})" if v.get("magnitude") else ""
    )


def markdown_table(verdicts: list[dict], digits: int = 3) -> list[str]:
    """Report lines: one row per claim (and per part of an :class:`AllOf`), with the paper's
    effect, our per-seed effects, their mean and interval, and the verdict."""

    def num(x):
        return "-" if x is None else f"{x:+.{digits}f}"

    def row(v, label):
        e = v["effect"]
        lo, hi = e["interval"]
        seeds = ", ".join(num(x) for x in e["per_seed"])
        paper = "direction only" if v["paper_effect"] is None else f"{v['paper_effect']:+g}"
        mag = f" ({v['magnitude']})" if v.get("magnitude") else ""
        return (
            f"| {label} | {paper} | {seeds} | {num(e['mean'])} [{num(lo)}, {num(hi)}] | "
            f"**{v['verdict']}**{mag} |"
        )

    lines = [
        f"| claim: our effect | paper's effect | per seed | mean [{CONFIDENCE:.0%} interval] | verdict |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        if "parts" in v:
            lines.append(f"| {v['text']} (every part) | | | | **{v['verdict']}** |")
            lines += [row(p, f"- {p['text']}") for p in v["parts"]]
        elif "effect" in v:
            lines.append(row(v, v["text"]))
        else:
            lines.append(f"| {v['text']} | | | | {v['verdict']}: {v['reason']} |")
    return lines

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evaluation.claims import (
    CONFIDENCE,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    AllOf,
    Claim,
    interval,
    paired,
    summary_line,
)

T2 = 2.919985580355516  # t quantile 0.95, 2 degrees of freedom
HALF = T2 / math.sqrt(3)  # half-width of the 90 % interval of 3 values with sd 1: 1.6859

# (per-seed effects, direction, paper effect, verdict, magnitude)
CASES = [
    # [1, 2, 3]: mean 2, sd 1, interval [0.314, 3.686]
    ([1, 2, 3], "greater", None, HELD, None),
    ([1, 2, 3], "greater", 3.0, HELD, "as the paper's"),
    ([1, 2, 3], "greater", 4.8, HELD, "smaller than the paper's"),
    ([1, 2, 3], "greater", 0.2, HELD, "larger than the paper's"),
    ([1, 2, 3], "less", None, NOT_HELD, None),  # reliably opposite
    ([1, 2, 3], "less", -1.0, NOT_HELD, None),
    ([-1, -2, -3], "less", -3.0, HELD, "as the paper's"),
    # [-1, 0, 1]: mean 0, interval [-1.686, 1.686]
    ([-1, 0, 1], "greater", None, INCONCLUSIVE, None),
    ([-1, 0, 1], "greater", 1.5, INCONCLUSIVE, None),
    ([-1, 0, 1], "greater", 2.0, NOT_HELD, None),  # the paper's effect lies above the interval
    ([-1, 0, 1], "less", -2.0, NOT_HELD, None),
    # zero spread: the interval is the point [mean, mean]
    ([0.5, 0.5, 0.5], "greater", None, HELD, None),
    ([0.5, 0.5, 0.5], "greater", 0.5, HELD, "as the paper's"),  # touching the paper's effect
    ([0.0, 0.0, 0.0], "greater", None, INCONCLUSIVE, None),  # touching 0
    ([0.0, 0.0, 0.0], "greater", 1.0, NOT_HELD, None),
    ([-0.5, -0.5, -0.5], "greater", None, NOT_HELD, None),
    # fewer than 2 finite values: no interval
    ([2.0], "greater", None, INCONCLUSIVE, None),
    ([2.0, float("nan")], "greater", 1.0, INCONCLUSIVE, None),
    ([], "greater", None, INCONCLUSIVE, None),
    # a non-finite seed is left out: the same as [1, 2, 3]
    ([1, float("nan"), 2, 3], "greater", 4.8, HELD, "smaller than the paper's"),
]


@pytest.mark.parametrize("effects, direction, paper_effect, verdict, magnitude", CASES)
def test_verdict_table(effects, direction, paper_effect, verdict, magnitude):
    v = Claim("c", "test", direction=direction, paper_effect=paper_effect).judge(effects)
    assert v["verdict"] == verdict, v["reason"]
    assert v["magnitude"] == magnitude


def test_interval_numbers_of_three_seeds():
    e = interval([1, 2, 3])
    assert e["n"] == 3 and e["confidence"] == CONFIDENCE
    assert e["mean"] == pytest.approx(2.0) and e["sd"] == pytest.approx(1.0)
    assert e["t"] == pytest.approx(T2, rel=1e-9)
    assert e["interval"] == pytest.approx([2 - HALF, 2 + HALF], rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_interval_matches_scipy(n):
    x = np.random.default_rng(n).normal(1.0, 2.0, size=n)
    lo, hi = stats.t.interval(CONFIDENCE, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert interval(x.tolist())["interval"] == pytest.approx([lo, hi], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("sign", [1, -1])
def test_bound_touching_zero_within_tolerance_is_inconclusive(sign):
    # values [a - 1, a, a + 1] with a = HALF put the lower bound on 0 up to float rounding,
    # on whichever side of 0 rounding lands; the tolerance makes that a touch either way
    a = interval([-1, 0, 1])["interval"][1]  # the half-width for sd 1, as computed
    effects = [sign * (a - 1), sign * a, sign * (a + 1)]
    lo, hi = interval(effects)["interval"]
    assert abs(lo if sign > 0 else hi) < 1e-12
    direction = "greater" if sign > 0 else "less"
    assert Claim("c", "t", direction=direction).judge(effects)["verdict"] == INCONCLUSIVE


def test_bound_touching_the_paper_effect_is_not_excluded():
    # [-1, 0, 1] reaches exactly up to HALF: the paper's effect at the bound is not excluded
    top = interval([-1, 0, 1])["interval"][1]
    assert top == pytest.approx(HALF, rel=1e-9)
    v = Claim("c", "t", paper_effect=top).judge([-1, 0, 1])
    assert v["verdict"] == INCONCLUSIVE
    v = Claim("c", "t", paper_effect=top + 1e-6).judge([-1, 0, 1])
    assert v["verdict"] == NOT_HELD


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=0, max_size=6),
    st.one_of(st.none(), st.floats(0.01, 100)),
)
def test_mirror_symmetry(effects, size):
    """Negating the effects, the direction and the paper's effect never changes the verdict."""
    up = Claim("c", "t", direction="greater", paper_effect=size).judge(effects)
    down = Claim("c", "t", direction="less", paper_effect=None if size is None else -size).judge(
        [-x for x in effects]
    )
    assert up["verdict"] == down["verdict"]
    assert up["magnitude"] == down["magnitude"]


def test_all_of():
    parts = (Claim("a", "a"), Claim("b", "b"))
    claim = AllOf("ab", "a and b", parts)
    held, open_, opposite = [1, 2, 3], [-1, 0, 1], [-1, -2, -3]
    assert claim.judge({"a": held, "b": held})["verdict"] == HELD
    assert claim.judge({"a": held, "b": open_})["verdict"] == INCONCLUSIVE
    assert claim.judge({"a": open_, "b": opposite})["verdict"] == NOT_HELD
    v = claim.judge({"a": held, "b": opposite})
    assert v["verdict"] == NOT_HELD and [p["verdict"] for p in v["parts"]] == [HELD, NOT_HELD]
    with pytest.raises(KeyError, match="'b'"):
        claim.judge({"a": held})


def test_verdict_is_json_with_the_numbers_used():
    for effects in ([1, 2, 3], [2.0], []):
        v = Claim("c", "t", paper="p", paper_effect=4.8).judge(effects)
        back = json.loads(json.dumps(v, allow_nan=False))
        assert back["verdict"] in (HELD, NOT_HELD, INCONCLUSIVE)
        assert back["effect"]["per_seed"] == [float(x) for x in effects]
        assert set(back) >= {
            "claim",
            "text",
            "paper",
            "direction",
            "paper_effect",
            "rule",
            "reason",
        }
    v = AllOf("ab", "t", (Claim("a", "a"),)).judge({"a": [1, 2, 3]})
    json.dumps(v, allow_nan=False)
    assert "held" in summary_line(v)
    assert summary_line(Claim("c", "t", paper_effect=4.8).judge([1, 2, 3])).startswith(
        "**held**: +2.000 [+0.314, +3.686], n = 3; paper +4.8"
    )


def test_paired_and_bad_declarations():
    assert paired([3, 2], [1, 1]) == [2.0, 1.0]
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="direction"):
        Claim("c", "t", direction="up")
    with pytest.raises(ValueError, match="greater side"):
        Claim("c", "t", direction="greater", paper_effect=-1.0)
    with pytest.raises(ValueError, match="less side"):
        Claim("c", "t", direction="less", paper_effect=0.0)
    with pytest.raises(ValueError, match="at least one part"):
        AllOf("x", "t", ())
    with pytest.raises(ValueError, match="distinct"):
        AllOf("x", "t", (Claim("a", "a"), Claim("a", "b")))


def test_markdown_table_rows():
    from evaluation.claims import markdown_table, not_tested

    one = Claim("c", "our effect", paper_effect=4.8).judge([1, 2, 3])
    both = AllOf("ab", "a and b", (Claim("a", "part a"), Claim("b", "part b"))).judge(
        {"a": [1, 2, 3], "b": [-1, 0, 1]}
    )
    lines = markdown_table([one, both, not_tested("x", "untested", "no data")], digits=1)
    assert lines[0].startswith(
        "| claim: our effect | paper's effect | per seed | mean [90% interval]"
    )
    assert lines[2] == (
        "| our effect | +4.8 | +1.0, +2.0, +3.0 | +2.0 [+0.3, +3.7] | "
        "**held** (smaller than the paper's) |"
    )
    assert lines[3] == "| a and b (every part) | | | | **inconclusive** |"
    assert lines[4].startswith("| - part a | direction only |") and lines[5].endswith(
        "**inconclusive** |"
    )
    assert lines[6] == "| untested | | | | not tested: no data |"


@pytest.mark.parametrize("effects", [[1, 2, 3], [-1, 0, 1], [0.5, 0.5, 0.5], [2.0], [4, 9, 1, 7]])
def test_judge_summary_is_judge_on_the_mean_and_sd(effects):
    claim = Claim("c", "t", paper_effect=4.8)
    full = claim.judge(effects)
    e = full["effect"]
    short = claim.judge_summary(e["mean"], e["sd"] or 0.0, e["n"])
    assert short["verdict"] == full["verdict"] and short["magnitude"] == full["magnitude"]
    assert short["effect"]["per_seed"] is None
    for a, b in zip(short["effect"]["interval"], e["interval"], strict=True):
        assert a == pytest.approx(b) if b is not None else a is None

"""HD95 against medpy (the reference implementation), and the stated rule for empty masks."""

import math

import numpy as np
import pytest

from evaluation.surface_distance import diagonal_mm, hd95, hd95_summary, surface_distances


def blob(shape, centre, radius, spacing):
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ((((grid - np.array(centre)) * np.array(spacing)) ** 2).sum(-1)) <= radius**2


@pytest.mark.parametrize(
    "shape,spacing",
    [
        ((40, 50), (1.0, 1.0)),
        ((40, 50), (2.0, 0.7)),
        ((20, 24, 18), (1.0, 1.0, 1.0)),
        ((20, 24, 18), (3.0, 1.0, 0.5)),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_medpy(shape, spacing, seed):
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    a = blob(shape, [n * rng.uniform(0.3, 0.6) for n in shape], 7.0, spacing)
    b = blob(shape, [n * rng.uniform(0.3, 0.6) for n in shape], 5.0, spacing) | (
        rng.random(shape) < 0.01
    )
    value, case = hd95(a, b, spacing)
    assert case == "both"
    assert value == pytest.approx(medpy.hd95(a, b, voxelspacing=spacing), rel=1e-9)


def test_known_distance_two_points():
    # shape: (1, 7); single voxels 4 apart, spacing 2.5 mm: every surface distance is 10 mm
    a = np.zeros((1, 7), bool)
    b = np.zeros((1, 7), bool)
    a[0, 1], b[0, 5] = True, True
    assert hd95(a, b, (1.0, 2.5)) == (pytest.approx(10.0), "both")
    np.testing.assert_allclose(surface_distances(a, b, (1.0, 2.5)), [10.0])


def test_empty_cases_follow_the_stated_rule():
    shape, spacing = (10, 20, 5), (1.0, 2.0, 3.0)
    full = np.zeros(shape, bool)
    full[2:5, 2:5, 1:3] = True
    empty = np.zeros(shape, bool)
    diag = math.sqrt(9**2 + 38**2 + 12**2)
    assert diagonal_mm(shape, spacing) == pytest.approx(diag)
    assert hd95(empty, empty, spacing) == (None, "both_empty")
    assert hd95(empty, full, spacing) == (pytest.approx(diag), "empty_prediction")
    assert hd95(full, empty, spacing) == (pytest.approx(diag), "empty_label")
    summary = hd95_summary(
        [(1.0, "both"), (3.0, "both"), (diag, "empty_prediction"), (None, "both_empty")]
    )
    assert summary["hd95_mm"] == pytest.approx((4.0 + diag) / 3)
    assert (summary["cases"], summary["empty_prediction"], summary["both_empty"]) == (3, 1, 1)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        hd95(np.ones((2, 3)), np.ones((3, 2)))

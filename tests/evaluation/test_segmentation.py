"""Slice metrics of the GLF paper's figures against hand computations and sklearn."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from evaluation import segmentation as seg


def masks(*rows):
    """Stack 2D 0/1 lists into (n, h, w, 1) float arrays."""
    return np.asarray(rows, dtype=np.float32)[..., None]


# shape: (4, 2, 2, 1) -- four slices:
#   0: tumour 2 px, predicted 1 of them + 1 FP   -> P 1/2, R 1/2, Dice 2/4
#   1: tumour 1 px, nothing predicted            -> P undefined, R 0, Dice 0
#   2: no tumour, nothing predicted              -> Dice 1 (empty on empty)
#   3: no tumour, 1 FP                           -> Dice 0
Y = masks([[1, 1], [0, 0]], [[0, 0], [0, 1]], [[0, 0], [0, 0]], [[0, 0], [0, 0]])
P = masks(
    [[0.9, 0.2], [0.7, 0.0]],
    [[0.1, 0.0], [0.0, 0.4]],
    [[0.0, 0.0], [0.0, 0.0]],
    [[0.0, 0.6], [0.0, 0.0]],
)


def test_slice_counts_by_hand():
    c = seg.slice_counts(Y, P)
    np.testing.assert_array_equal(c["tp"], [1, 0, 0, 0])
    np.testing.assert_array_equal(c["fp"], [1, 0, 0, 1])
    np.testing.assert_array_equal(c["fn"], [1, 1, 0, 0])
    np.testing.assert_array_equal(c["tumour_px"], [2, 1, 0, 0])


def test_threshold_is_inclusive_at_one_half():
    c = seg.slice_counts(masks([[1]]), masks([[0.5]]))
    assert c["tp"][0] == 1


def test_summary_by_hand():
    s = seg.summarize(seg.slice_counts(Y, P))
    ts, tf = s["tumour_slices"], s["tumour_free_slices"]
    assert ts["n"] == 2
    assert ts["precision"] == pytest.approx(0.5)  # slice 1 (0/0) is left out
    assert ts["precision_undefined_slices"] == 1
    assert ts["recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert ts["dice"] == pytest.approx((0.5 + 0.0) / 2)
    assert tf["n"] == 2
    assert tf["dice"] == pytest.approx(0.5)  # one empty-on-empty (1) and one false positive (0)
    assert tf["slices_with_false_positives"] == 1
    assert s["pooled_pixels"]["dice"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))


def test_per_slice_values_match_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((6, 8, 8, 1)) > 0.7).astype(np.float32)
    p = rng.random((6, 8, 8, 1)).astype(np.float32)
    c = seg.slice_counts(y, p)
    for i in range(6):
        t, q = y[i].ravel() > 0.5, p[i].ravel() >= 0.5
        assert seg.slice_dice(c)[i] == pytest.approx(f1_score(t, q, zero_division=1.0))
        assert seg.slice_recall(c)[i] == pytest.approx(recall_score(t, q))
        assert seg.slice_precision(c)[i] == pytest.approx(precision_score(t, q))
    pooled = seg.summarize(c)["pooled_pixels"]
    assert pooled["dice"] == pytest.approx(f1_score(y.ravel() > 0.5, p.ravel() >= 0.5))


def test_empty_inputs_and_shape_mismatch():
    s = seg.summarize(seg.concat_counts([]))
    assert s["tumour_slices"]["dice"] is None and s["tumour_free_slices"]["n"] == 0
    with pytest.raises(ValueError, match="same shape"):
        seg.slice_counts(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))


def test_small_tumour_threshold_conversions():
    assert seg.small_tumour_threshold(image_size=512) == pytest.approx(100)
    assert seg.small_tumour_threshold(image_size=128) == pytest.approx(100 / 16)
    assert seg.small_tumour_threshold(pixel_mm=0.78) == pytest.approx(100)
    assert seg.small_tumour_threshold(pixel_mm=2.0) == pytest.approx(100 * (0.78 / 2) ** 2)
    with pytest.raises(ValueError, match="image_size"):
        seg.small_tumour_threshold()


def test_dice_by_size_and_edges():
    counts = {
        "tp": np.array([1, 10, 0, 0]),
        "fp": np.array([0, 0, 0, 3]),
        "fn": np.array([1, 0, 0, 0]),
        "tumour_px": np.array([2, 10, 0, 0]),
    }
    rows = seg.dice_by_size(counts, [1, 5, 20])
    assert rows[0] == {"lo": 1.0, "hi": 5.0, "n": 1, "dice": pytest.approx(2 / 3)}
    assert rows[1]["n"] == 1 and rows[1]["dice"] == pytest.approx(1.0)
    edges = seg.size_edges([2, 10, 300], small_px=6.25)
    assert 6.25 in edges and edges == sorted(edges) and edges[0] <= 2 and edges[-1] > 300


def test_choose_overlay_slices():
    sizes = np.array([0, 3, 50, 5, 200, 120, 0])
    chosen = seg.choose_overlay_slices(sizes, small_px=10)
    assert sizes[chosen["small"]] < 10
    assert chosen["intermediate"] == 5  # median of 50, 120, 200
    assert seg.choose_overlay_slices(np.zeros(3), 10) == {}
    assert seg.choose_overlay_slices(np.array([0, 40]), 10) == {"intermediate": 1}
    assert seg.choose_overlay_slices(np.array([2, 4, 0]), 10) == {"small": 1, "intermediate": 0}
    none_small = seg.choose_overlay_slices(np.array([40, 80, 60]), 10)
    assert none_small == {"small": 0, "intermediate": 1}  # upper median of 60, 80


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions save, by file stem (saved as usual too)."""
    from core import io

    saved, original = {}, io.save_figure

    def capture(fig, path, *args, **kwargs):
        saved[Path(path).stem] = fig
        return original(fig, path, *args, **kwargs)

    monkeypatch.setattr(io, "save_figure", capture)
    return saved


def test_figures_plot_the_summaries(tmp_path, figures, assert_png):
    counts = seg.slice_counts(Y, P)
    summary = seg.summarize(counts)
    other = seg.summarize(seg.slice_counts(Y, Y))  # a perfect model: every Dice 1
    summaries = {"D": summary, "G(D)": other}
    seg.plot_tumour_slice_metrics(summaries, tmp_path / "fig3.png")
    seg.plot_tumour_free_dice(summaries, tmp_path / "fig5.png")
    seg.plot_dice_vs_size({"D": counts, "G(D)": counts}, 1.5, tmp_path / "fig4a.png")
    panel = {
        "image": np.random.default_rng(0).random((16, 16)),
        "truth": np.pad(np.ones((3, 3)), 6)[:16, :16],
        "preds": {"D": np.ones((16, 16)), "G(D)": np.zeros((16, 16))},
    }
    seg.plot_overlays({"small tumour": panel, "intermediate tumour": panel}, tmp_path / "fig4b.png")
    for name in ("fig3", "fig5", "fig4a", "fig4b"):
        assert_png(tmp_path / f"{name}.png")

    # Fig. 3: one bar per model and metric, at the summary's value in %.
    (ax,) = figures["fig3"].axes
    heights = [bar.get_height() for bar in ax.patches]
    expected = [100 * s["tumour_slices"][m] for s in (summary, other) for m in ("precision", "recall", "dice")]
    assert heights == pytest.approx(expected)
    # Fig. 5: the tumour-free Dice of each model.
    (ax,) = figures["fig5"].axes
    assert [bar.get_height() for bar in ax.patches] == pytest.approx(
        [100 * summary["tumour_free_slices"]["dice"], 100 * other["tumour_free_slices"]["dice"]]
    )
    # Fig. 4a: every tumour slice is a point at (its area, its Dice in %).
    ax = figures["fig4a"].axes[0]
    tumour = np.asarray(counts["tumour_px"]) > 0
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], np.asarray(counts["tumour_px"])[tumour])
    np.testing.assert_allclose(points[:, 1], 100 * seg.slice_dice(counts)[tumour])
    # Fig. 4b: one panel per chosen slice, each showing its image.
    assert [len(a.images) for a in figures["fig4b"].axes] == [1, 1]

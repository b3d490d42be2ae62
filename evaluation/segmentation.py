"""Slice-wise segmentation metrics and the figures of the GLF paper (Seo et al., TMI 2021).

All metrics are computed on binary masks, the network output thresholded at 0.5 (GLF paper,
Sec. III), slice by slice:

* Tumour slices (at least one tumour pixel in the label), paper Fig. 3: precision
  TP / (TP + FP), recall TP / (TP + FN) and Dice 2 TP / (2 TP + FP + FN), averaged over the
  slices. Precision is undefined (0 / 0) on a tumour slice where the model predicts nothing;
  such slices are left out of the precision average and counted in
  ``precision_undefined_slices`` (their recall and Dice are 0 and are averaged).
* Tumour-free slices, paper Fig. 5: Dice with the convention that an EMPTY prediction on an
  EMPTY slice is a perfect Dice of 1 (0 / 0 read as agreement) and any false-positive pixel
  gives Dice 0. The tumour-free Dice is therefore the fraction of tumour-free slices on which
  the model predicts no tumour at all.
* Dice against tumour size in pixels, paper Fig. 4a/c, with the paper's small-tumour range
  (< 100 pixels on a 512 x 512 slice) marked; :func:`small_tumour_threshold` converts that
  range to the resolution evaluated.
* Overlays of several models' delineations on one small and one intermediate tumour, paper
  Fig. 4b/d.

Reference:
    S. Seo, M. Bassenne, L. Xing, "Closing the gap between deep neural network modeling and
    biomedical decision-making metrics in segmentation via adaptive loss functions",
    IEEE TMI 40(2), 2021, Figs. 3-5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

THRESHOLD = 0.5  # GLF paper, Sec. III: the network output is thresholded at 0.5
SMALL_TUMOUR_PX_AT_512 = 100  # GLF paper, Fig. 4: "small" tumours, < 100 px on 512 x 512 slices
PAPER_PIXEL_MM = 0.78  # ours, not stated: a typical in-plane spacing of a 512 x 512 chest CT (about 400 mm FOV)


# ---------------------------------------------------------------------------------- counts
def slice_counts(y_true, y_pred, threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """Per-slice confusion counts of binary masks.

    Args:
        y_true: labels, shape ``(n, h, w)`` or ``(n, h, w, 1)``; > 0.5 is tumour.
        y_pred: probabilities of the same shape; ``>= threshold`` is predicted tumour.
        threshold: decision threshold on ``y_pred`` (default 0.5, the GLF paper).

    Returns:
        ``{"tp", "fp", "fn", "tumour_px"}``, int64 arrays of shape ``(n,)``
        (``tumour_px`` = TP + FN, the label's tumour area).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; received {y_true.shape} and {y_pred.shape}"
        )
    if y_true.ndim < 2:
        raise ValueError(
            f"expected a batch of 2D masks (n, h, w[, 1]); received shape {y_true.shape}"
        )
    truth = (y_true > 0.5).reshape(len(y_true), -1)
    pred = (y_pred >= threshold).reshape(len(y_pred), -1)
    tp = np.sum(truth & pred, axis=1, dtype=np.int64)
    fp = np.sum(~truth & pred, axis=1, dtype=np.int64)
    fn = np.sum(truth & ~pred, axis=1, dtype=np.int64)
    return {"tp": tp, "fp": fp, "fn": fn, "tumour_px": tp + fn}


def concat_counts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join the counts of several batches."""
    keys = ("tp", "fp", "fn", "tumour_px")
    if not parts:
        return {k: np.zeros(0, np.int64) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _ratio(num, den) -> np.ndarray:
    """num / den with NaN where den == 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def slice_dice(counts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-slice Dice 2TP / (2TP + FP + FN), 1.0 for an empty prediction on an empty slice."""
    tp, fp, fn = (np.asarray(counts[k], np.float64) for k in ("tp", "fp", "fn"))
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return np.where(np.isnan(dice), 1.0, dice)


def slice_precision(counts) -> np.ndarray:
    """Per-slice TP / (TP + FP); NaN where nothing is predicted."""
    return _ratio(counts["tp"], np.asarray(counts["tp"]) + np.asarray(counts["fp"]))


def slice_recall(counts) -> np.ndarray:
    """Per-slice TP / (TP + FN); NaN on tumour-free slices."""
    return _ratio(counts["tp"], np.asarray(counts["tp"]) + np.asarray(counts["fn"]))


def _mean(values) -> float | None:
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def summarize(counts: Mapping[str, np.ndarray]) -> dict:
    """The paper's slice-averaged metrics (Figs. 3 and 5) and pooled pixel metrics.

    Returns a JSON-ready dict; a mean over zero slices is ``None``.
    """
    tumour = np.asarray(counts["tumour_px"]) > 0
    dice, precision, recall = slice_dice(counts), slice_precision(counts), slice_recall(counts)
    tp, fp, fn = (int(np.sum(counts[k])) for k in ("tp", "fp", "fn"))
    return {
        "tumour_slices": {  # paper Fig. 3
            "n": int(tumour.sum()),
            "precision": _mean(precision[tumour]),
            "recall": _mean(recall[tumour]),
            "dice": _mean(dice[tumour]),
            "precision_undefined_slices": int(np.sum(np.isnan(precision[tumour]))),
        },
        "tumour_free_slices": {  # paper Fig. 5
            "n": int((~tumour).sum()),
            "dice": _mean(dice[~tumour]),
            "slices_with_false_positives": int(np.sum(np.asarray(counts["fp"])[~tumour] > 0)),
            "convention": "empty prediction on an empty slice = Dice 1; any false positive = Dice 0",
        },
        "pooled_pixels": {
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "dice": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None,
        },
    }


# ---------------------------------------------------------------------- tumour size
def small_tumour_threshold(
    image_size: int | None = None, pixel_mm: float | None = None, paper_pixel_mm: float = PAPER_PIXEL_MM
) -> float:
    """The paper's "< 100 px at 512 x 512" small-tumour limit in pixels of the evaluated images.

    Give ``pixel_mm`` (the in-plane spacing of the evaluated images) to convert by physical
    area, the paper's slices having ``paper_pixel_mm`` pixels (default 0.78 mm, ours: the
    paper states a spacing only for the liver, 30 cm over 512 px); else give ``image_size``
    (whole slices resized from 512 to ``image_size``) to convert by the resize factor.
    """
    if pixel_mm is not None:
        if pixel_mm <= 0 or paper_pixel_mm <= 0:
            raise ValueError(f"pixel_mm and paper_pixel_mm must be > 0; received {pixel_mm}, {paper_pixel_mm}")
        return SMALL_TUMOUR_PX_AT_512 * (paper_pixel_mm / pixel_mm) ** 2
    if image_size is None or image_size <= 0:
        raise ValueError(f"give image_size (> 0) or pixel_mm; received image_size={image_size}")
    return SMALL_TUMOUR_PX_AT_512 * (image_size / 512) ** 2


def dice_by_size(counts, edges) -> list[dict]:
    """Mean Dice of tumour slices binned by tumour area in pixels: ``[{lo, hi, n, dice}]``."""
    size = np.asarray(counts["tumour_px"], np.float64)
    dice = slice_dice(counts)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (size > 0) & (size >= lo) & (size < hi)
        rows.append(
            {"lo": float(lo), "hi": float(hi), "n": int(sel.sum()), "dice": _mean(dice[sel])}
        )
    return rows


def size_edges(tumour_px, small_px: float, n_bins: int = 6) -> list[float]:
    """Log-spaced bin edges over the tumour sizes present, with ``small_px`` as one edge."""
    sizes = np.asarray(tumour_px, np.float64)
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return [1.0, max(2.0, small_px)]
    lo, hi = max(1.0, sizes.min()), sizes.max() + 1
    edges = set(np.geomspace(lo, hi, n_bins + 1).round(1).tolist())
    if lo < small_px < hi:
        edges.add(float(small_px))
    return sorted(edges)


def choose_overlay_slices(tumour_px, small_px: float) -> dict[str, int]:
    """Indices of one small and one intermediate tumour slice for the overlay figure.

    small: the median-sized slice among those below ``small_px`` (the smallest tumour slice
    if none is that small); intermediate: the median-sized slice among the others at or above
    it (the largest if none). Never the same slice twice; returns only the kinds that exist.
    """
    sizes = np.asarray(tumour_px)
    idx = np.flatnonzero(sizes > 0)
    if idx.size == 0:
        return {}
    small = idx[sizes[idx] < small_px]
    large = idx[sizes[idx] >= small_px]
    chosen = {}
    if small.size:
        chosen["small"] = int(small[np.argsort(sizes[small], kind="stable")[small.size // 2]])
    elif large.size > 1:  # nothing below the limit: the smallest tumour stands in
        chosen["small"] = int(large[np.argmin(sizes[large])])
        large = large[large != chosen["small"]]
    if large.size:
        chosen["intermediate"] = int(
            large[np.argsort(sizes[large], kind="stable")[large.size // 2]]
        )
    elif small.size > 1:  # nothing above it: the largest other tumour stands in
        others = small[small != chosen["small"]]
        chosen["intermediate"] = int(others[np.argmax(sizes[others])])
    return chosen


# --------------------------------------------------------------------------- figures
def _pct(value):
    return math.nan if value is None else 100.0 * value


def plot_tumour_slice_metrics(summaries: Mapping[str, dict], out_png, title: str = "") -> None:
    """Paper Fig. 3: precision, recall and Dice over tumour slices, one bar group per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.io import save_figure

    labels = list(summaries)
    metrics = ("precision", "recall", "dice")
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(metrics) * max(1, len(labels)) / 2, 3.4))
    for i, label in enumerate(labels):
        values = [_pct(summaries[label]["tumour_slices"][m]) for m in metrics]
        xs = np.arange(len(metrics)) + (i - (len(labels) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    n = next(iter(summaries.values()))["tumour_slices"]["n"] if summaries else 0
    ax.set_xticks(np.arange(len(metrics)), [m.capitalize() for m in metrics])
    ax.set_ylabel("% (mean over tumour slices)")
    ax.set_ylim(0, 110)
    ax.set_title(title or f"Tumour slices (n = {n})")
    ax.legend(fontsize=7, ncol=min(5, len(labels)), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    save_figure(fig, out_png)


def plot_tumour_free_dice(summaries: Mapping[str, dict], out_png, title: str = "") -> None:
    """Paper Fig. 5: Dice over tumour-free slices (empty prediction on empty slice = 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.io import save_figure

    labels = list(summaries)
    values = [_pct(summaries[k]["tumour_free_slices"]["dice"]) for k in labels]
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(labels), 3.2))
    bars = ax.bar(labels, values, color=[f"C{i}" for i in range(len(labels))])
    ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=1)
    n = next(iter(summaries.values()))["tumour_free_slices"]["n"] if summaries else 0
    ax.set_ylabel("Dice, % (tumour-free slices)")
    ax.set_ylim(0, 110)
    ax.set_title(title or f"Tumour-free slices (n = {n}); empty on empty = 1")
    save_figure(fig, out_png)


def plot_dice_vs_size(
    counts_by_model: Mapping[str, dict], small_px: float, out_png, title: str = ""
) -> None:
    """Paper Fig. 4a/c: per-slice Dice against tumour area, small-tumour range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.6))
    all_sizes = np.concatenate(
        [np.asarray(c["tumour_px"]) for c in counts_by_model.values()] or [np.zeros(0)]
    )
    edges = size_edges(all_sizes, small_px)
    for i, (label, counts) in enumerate(counts_by_model.items()):
        size = np.asarray(counts["tumour_px"])
        sel = size > 0
        ax.scatter(size[sel], 100 * slice_dice(counts)[sel], s=8, alpha=0.35, color=f"C{i}")
        rows = [r for r in dice_by_size(counts, edges) if r["n"]]
        centres = [math.sqrt(r["lo"] * r["hi"]) for r in rows]
        ax.plot(centres, [100 * r["dice"] for r in rows], "-o", ms=4, color=f"C{i}", label=label)
    lo = max(0.8, all_sizes[all_sizes > 0].min() * 0.8) if np.any(all_sizes > 0) else 0.8
    ax.axvspan(
        lo,
        small_px,
        color="0.85",
        zorder=0,
        label=f"small (< {SMALL_TUMOUR_PX_AT_512} px at 512 = {small_px:.0f} px here)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("tumour area in the slice (pixels)")
    ax.set_ylabel("Dice, %")
    ax.set_ylim(-3, 103)
    ax.set_title(title or "Dice vs tumour size (lines: binned means)")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out_png)


def _crop_box(mask: np.ndarray, margin: int, min_size: int = 24) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    if ys.size == 0:
        return slice(0, h), slice(0, w)
    half = max(min_size // 2, (max(np.ptp(ys), np.ptp(xs)) + 1) // 2 + margin)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    y0, x0 = max(0, cy - half), max(0, cx - half)
    return slice(y0, min(h, cy + half + 1)), slice(x0, min(w, cx + half + 1))


def _outline(ax, mask: np.ndarray, **style) -> None:
    """Contour of a binary mask, padded so a mask touching the border is closed too."""
    h, w = mask.shape
    padded = np.pad(mask.astype(float), 1)
    ax.contour(
        np.arange(-1, w + 1),
        np.arange(-1, h + 1),
        padded,
        levels=[0.5],
        colors=[style["color"]],
        linewidths=style["lw"],
        linestyles=style.get("ls", "-"),
    )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def plot_overlays(
    panels: Mapping[str, dict], out_png, title: str = "", threshold: float = THRESHOLD
) -> None:
    """Paper Fig. 4b/d: delineations of several models on chosen slices.

    Args:
        panels: ``{panel title: {"image": (h, w), "truth": (h, w), "preds": {model: (h, w)
            probabilities}}}``, e.g. one small and one intermediate tumour.
        out_png: output file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from core.io import save_figure

    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(3.6 * max(1, len(panels)), 3.9), squeeze=False
    )
    handles = [Line2D([], [], color="yellow", lw=2, label="ground truth")]
    for ax, (name, panel) in zip(axes[0], panels.items(), strict=False):
        truth = np.asarray(panel["truth"]) > 0.5
        rows, cols = _crop_box(truth, margin=6)
        ax.imshow(np.asarray(panel["image"])[rows, cols], cmap="gray", interpolation="nearest")
        _outline(ax, truth[rows, cols], color="yellow", lw=2)
        for i, (label, pred) in enumerate(panel["preds"].items()):
            mask = (np.asarray(pred) >= threshold)[rows, cols]
            if mask.any():
                _outline(ax, mask, color=f"C{i}", lw=1.2, ls="--")
            if ax is axes[0][0]:
                handles.append(Line2D([], [], color=f"C{i}", lw=1.2, ls="--", label=label))
        ax.set_title(f"{name} ({int(truth.sum())} px)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7)
    fig.suptitle(title or "Delineations (dashed: models; yellow: label)", fontsize=10)
    fig.subplots_adjust(bottom=0.14)
    save_figure(fig, out_png)

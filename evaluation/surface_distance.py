"""95th-percentile Hausdorff distance (HD95) in millimetres, with a stated rule for empty masks.

Definition (the one of ``medpy.metric.binary.hd95``, the implementation the MSD-era challenge
evaluations and nnU-Net v1 used; ``tests/evaluation/test_surface_distance.py`` checks this
code against it): the surface of a mask is its voxels that a one-voxel erosion with the
face-connected structure removes; the distance of each surface voxel of A to the nearest
surface voxel of B and of each surface voxel of B to the nearest of A, in millimetres
(Euclidean distance transform with the voxel spacing), are pooled, and HD95 is their 95th
percentile (numpy's linear interpolation).

Empty masks (HD95 is undefined when a surface is missing):

* label and prediction both empty: no value; the case is left out of the mean and counted as
  ``both_empty``;
* exactly one of them empty: the case gets the largest distance possible in the image, the
  length of its diagonal in millimetres, and is counted as ``empty_prediction`` or
  ``empty_label``.

The counts travel with every mean (:func:`hd95_summary`), so a loss that predicts nothing is
visible as such and not only as a large mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

PERCENTILE = 95.0


def _sampling(spacing, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    values = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)).copy()
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"`spacing` must hold positive numbers; received {spacing!r}")
    return values


def surface(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` removed by one erosion with the face-connected structure."""
    from scipy.ndimage import binary_erosion, generate_binary_structure

    structure = generate_binary_structure(mask.ndim, 1)
    return mask & ~binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(a, b, spacing=None) -> np.ndarray:
    """Distances (mm) of every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    from scipy.ndimage import distance_transform_edt

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    sampling = _sampling(spacing, a.ndim)
    distance_to_b = distance_transform_edt(~surface(b), sampling=sampling)
    return distance_to_b[surface(a)]


def diagonal_mm(shape: Sequence[int], spacing=None) -> float:
    """Length of the image's diagonal in millimetres: the HD95 given to one-sided empty cases."""
    sampling = _sampling(spacing, len(shape))
    return float(math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, sampling, strict=True))))


def hd95(prediction, label, spacing=None) -> tuple[float | None, str]:
    """HD95 (mm) of one binary prediction against its label, and which case it was.

    Returns:
        ``(value, case)``: case ``"both"`` (both non-empty, value from the surfaces),
        ``"empty_prediction"`` or ``"empty_label"`` (value = :func:`diagonal_mm`), or
        ``"both_empty"`` (value None).
    """
    prediction, label = np.asarray(prediction, bool), np.asarray(label, bool)
    if prediction.shape != label.shape:
        raise ValueError(
            f"prediction and label must have the same shape; received {prediction.shape} and "
            f"{label.shape}"
        )
    has_p, has_l = bool(prediction.any()), bool(label.any())
    if not has_p and not has_l:
        return None, "both_empty"
    if not has_p or not has_l:
        return diagonal_mm(label.shape, spacing), "empty_prediction" if has_l else "empty_label"
    distances = np.concatenate(
        [
            surface_distances(prediction, label, spacing),
            surface_distances(label, prediction, spacing),
        ]
    )
    return float(np.percentile(distances, PERCENTILE)), "both"


def hd95_summary(results: Iterable[tuple[float | None, str]]) -> dict:
    """Mean HD95 over cases with a value, and the count of each empty case."""
    results = list(results)
    values = [v for v, _ in results if v is not None]
    counts = {
        k: sum(1 for _, c in results if c == k)
        for k in ("both", "empty_prediction", "empty_label", "both_empty")
    }
    return {
        "hd95_mm": float(np.mean(values)) if values else None,
        "cases": len(values),
        **counts,
    }

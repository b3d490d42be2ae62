"""MSD Task04 hippocampus MRI as 2D slices, the way Rajput (2021) used it.

Each volume is cut into 2D slices along its depth (last) axis; every slice is zero-padded
(centred) to one fixed size; intensities are scaled per volume to ``[0, max_intensity]``
(the paper: 0.2, so that attacks can write values above any real pixel), the volume's minimum
to 0 and its maximum to 0.2 (``scaling="max"``, the paper's "maximum pixel value=0.2"; the
option ``scaling="percentile"`` maps a percentile to 0.2 and clips above); the foreground is
labels 1 (anterior) and 2 (posterior) together. The split is by volume, so no slice of a
test volume is seen in training.

Decoding NIfTI is the slow part, so every volume is decoded once into a per-volume ``.npz``
cache keyed by a hash of the source file (path, size, modification time) and the settings
(the scaling among them, so a cache written under one scaling is never read under another).

Reference:
    V. Rajput, "Robustness of different loss functions and their impact on networks learning
    capability", arXiv:2110.08322, 2021, Sec. 3 (data).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data import validate
from data.msd import Case, list_msd_cases, load_label, load_nifti

LABELS = (0, 1, 2)  # background, anterior, posterior (MSD Task04 dataset.json)
SCALINGS = ("max", "percentile")
CACHE_VERSION = 2  # 2: `scaling` added to the settings (max by default). Bump when the slicing code changes, so stale caches are not reused


@dataclass(frozen=True)
class SliceSettings:
    """How a volume becomes 2D slices; part of the cache key."""

    size: int = 64  # slices are zero-padded to size x size (largest Task04 slice: 43 x 59)
    max_intensity: float = 0.2  # Rajput 2021, Sec. 3: inputs scaled to [0, 0.2]
    # Rajput 2021, Sec. 3: "we have scaled all our images between 0 and 0.2 ... (maximum pixel
    # value=0.2, noise level=[0, 1])": the volume's maximum becomes 0.2 ("max"). "percentile"
    # (our former default) maps clip_percentile to 0.2 and clips the brighter voxels.
    scaling: str = "max"
    clip_percentile: float = 99.5  # used by scaling="percentile" only

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels; received {self.size}")
        if not self.max_intensity > 0:
            raise ValueError(f"max_intensity must be > 0; received {self.max_intensity}")
        if self.scaling not in SCALINGS:
            raise ValueError(
                f"scaling must be one of {', '.join(SCALINGS)}; received {self.scaling!r}"
            )
        if not 0 < self.clip_percentile <= 100:
            raise ValueError(
                f"clip_percentile must be in (0, 100]; received {self.clip_percentile}"
            )


def default_cache_dir() -> Path:
    """``<package cache>/hippocampus`` (see :func:`data.cache.cache_root`)."""
    from data.cache import cache_root

    return cache_root() / "hippocampus"


def scale_intensities(volume: np.ndarray, settings: SliceSettings) -> np.ndarray:
    """Map a volume to ``[0, max_intensity]``, its minimum to 0.

    ``scaling="max"`` (default, the paper): ``x' = max_intensity (x - min) / (max - min)``.
    ``scaling="percentile"``: the ``clip_percentile`` percentile replaces ``max`` and brighter
    voxels are clipped to ``max_intensity``.
    """
    volume = volume.astype(np.float32)
    lo = float(volume.min())
    if settings.scaling == "max":
        hi = float(volume.max())
    else:
        hi = float(np.percentile(volume, settings.clip_percentile))
    if hi <= lo:
        hi = float(volume.max())
    if hi <= lo:  # a constant volume carries no signal; keep it at zero
        return np.zeros_like(volume)
    scaled = (np.clip(volume, lo, hi) - lo) / (hi - lo)
    return (scaled * settings.max_intensity).astype(np.float32)


def pad_slices(volume: np.ndarray, size: int, source: str = "volume") -> np.ndarray:
    """``(H, W, D)`` -> ``(D, size, size)``: slices along the last axis, zero-padded (centred)."""
    h, w, _ = volume.shape
    validate.raise_problems(
        validate.check_max_size((h, w), (size, size), source, hint="raise --size")
    )
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((volume.shape[2], size, size), dtype=volume.dtype)
    out[:, top : top + h, left : left + w] = np.moveaxis(volume, 2, 0)
    return out


def decode_case(case: Case, settings: SliceSettings) -> tuple[np.ndarray, np.ndarray]:
    """Read one case: ``images`` (D, size, size) float32 in [0, max], ``masks`` (D, size, size) uint8.

    Raises :class:`DataError` naming the file for an unreadable volume, labels outside
    {0, 1, 2}, a label shape different from the image's, or a volume that is not 3D.
    """
    image, _, _ = load_nifti(case.image)
    validate.raise_problems(validate.check_ndim(image.shape, 3, case.image))
    labels = load_label(case.label, allowed=LABELS, image_shape=image.shape, image_source=case.image)
    images = pad_slices(scale_intensities(image, settings), settings.size, str(case.image))
    masks = pad_slices((labels > 0).astype(np.uint8), settings.size, str(case.label))
    return images, masks


def cache_key(case: Case, settings: SliceSettings) -> str:
    """Hash of the source files (path, size, mtime) and the slicing settings."""
    parts = {"version": CACHE_VERSION, "settings": settings.__dict__}
    for name in ("image", "label"):
        path = getattr(case, name)
        stat = Path(path).stat()
        parts[name] = [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_case_cached(
    case: Case, settings: SliceSettings, cache_dir=None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decode_case` through the per-volume ``.npz`` cache (``cache_dir=None``: no cache)."""
    if cache_dir is None:
        return decode_case(case, settings)
    path = Path(cache_dir) / f"{case.case_id}-{cache_key(case, settings)}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                return f["images"], f["masks"]
        except (OSError, KeyError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is decoded again
    images, masks = decode_case(case, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.npz")
    np.savez(tmp, images=images, masks=masks)
    os.replace(tmp, path)
    return images, masks


def list_cases(root, max_volumes: int | None = None) -> list[Case]:
    """The labelled cases of the MSD folder ``root``, sorted by id (the first ``max_volumes``)."""
    cases = sorted(list_msd_cases(root, "training"), key=lambda c: c.case_id)
    if max_volumes is not None:
        if max_volumes < 2:
            raise ValueError(
                f"max_volumes must be >= 2 (one train and one test volume); received {max_volumes}"
            )
        cases = cases[:max_volumes]
    return cases


def split_cases(
    case_ids: Sequence[str], test_fraction: float, seed: int, val_fraction: float = 0.0
) -> dict:
    """Split volume ids into ``train``/``val``/``test`` lists (seeded, by volume).

    ``test_fraction`` of all volumes go to test (at least one); ``val_fraction`` of the rest
    to validation (none if 0). The paper: 263 train / 131 test, about 2/3 and 1/3.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); received {test_fraction}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1); received {val_fraction}")
    ids = sorted(case_ids)
    if len(ids) < 2:
        raise ValueError(
            f"need at least 2 volumes to split into train and test; received {len(ids)}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
    test = sorted(ids[i] for i in order[:n_test])
    rest = [ids[i] for i in order[n_test:]]
    n_val = min(round(val_fraction * len(rest)), len(rest) - 1) if val_fraction else 0
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": test}


def load_slices(cases: Sequence[Case], settings: SliceSettings, cache_dir=None, *, log=None):
    """Stack the slices of ``cases``: ``images`` (N, size, size, 1) float32, ``masks`` uint8
    of the same shape, and ``volume`` (N,) the index of each slice's case in ``cases``."""
    images, masks, volume = [], [], []
    for i, case in enumerate(cases):
        im, m = load_case_cached(case, settings, cache_dir)
        images.append(im)
        masks.append(m)
        volume.append(np.full(len(im), i, dtype=np.int32))
        if log is not None and ((i + 1) % 50 == 0 or i + 1 == len(cases)):
            log(f"decoded {i + 1}/{len(cases)} volumes")
    if not images:
        raise ValueError("load_slices: no cases given")
    return (
        np.concatenate(images)[..., None],
        np.concatenate(masks)[..., None],
        np.concatenate(volume),
    )


def make_dataset(
    images: np.ndarray, masks: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0
):
    """A ``tf.data`` pipeline of ``(image, mask)`` float32 batches from in-memory slices."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), masks.astype(np.float32)))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

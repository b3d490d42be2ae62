"""The benchmark's two data sets as arrays, split by case with the run's seed.

* ``hippocampus``: MSD Task04, labels 0 background, 1 anterior, 2 posterior; 2D slices along
  the volume's last axis, zero-padded to ``size``; intensities min-max scaled per volume to
  [0, 1]; the split is by volume (``test_fraction``, then ``val_fraction`` of the rest); each
  test volume keeps its slice stack and voxel spacing (NIfTI header) for the 3D HD95.
* ``lung``: the MSD Task06 tumour patches (48 x 48, 2 mm, binary); training and validation
  patients from ``val_patches.h5`` (``val_fraction`` of its 13 patients for validation), the
  13 patients of ``test_patches.h5`` for testing; each patch is one test case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.lossbench.config import LUNG_SPACING_MM, BenchConfig

NUM_CLASSES = {"hippocampus": 3, "lung": 1}  # channels of the network output
CLASS_NAMES = {"hippocampus": ("anterior", "posterior"), "lung": ("tumour",)}


@dataclass
class TaskData:
    """Arrays of one task and seed. Labels are integer class ids ``(n, h, w, 1)``."""

    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # Test cases: index arrays into x_test (one per volume or patch) and their voxel spacing,
    # ordered as the case's stacked array (slice axis first for a hippocampus volume).
    test_cases: list[np.ndarray] = field(default_factory=list)
    test_spacing: list[tuple[float, ...]] = field(default_factory=list)
    split: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.task]


def load_task(task: str, cfg: BenchConfig, seed: int) -> TaskData:
    if task == "hippocampus":
        return load_hippocampus(cfg, seed)
    if task == "lung":
        return load_lung(cfg, seed)
    raise ValueError(f"unknown task {task!r}; expected hippocampus or lung")


# ----------------------------------------------------------------------------- hippocampus
def _decode_volume(case, size: int, cache_dir: Path | None):
    """``(slices (D, size, size) float32 in [0, 1], labels (D, size, size) uint8, spacing)``."""
    import hashlib
    import json
    import os

    from data.hippocampus import LABELS, pad_slices
    from data.msd import load_label, load_nifti

    key = None
    if cache_dir is not None:
        stat = Path(case.image).stat(), Path(case.label).stat()
        parts = [
            str(Path(case.image).resolve()),
            stat[0].st_size,
            stat[0].st_mtime_ns,
            str(Path(case.label).resolve()),
            stat[1].st_size,
            stat[1].st_mtime_ns,
            size,
            1,
        ]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
        path = cache_dir / f"{case.case_id}-{key}.npz"
        if path.exists():
            with np.load(path) as f:
                return f["images"], f["labels"], tuple(float(s) for s in f["spacing"])
    image, _, header = load_nifti(case.image)
    labels = load_label(
        case.label, allowed=LABELS, image_shape=image.shape, image_source=case.image
    )
    lo, hi = float(image.min()), float(image.max())
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    images = pad_slices(scaled.astype(np.float32), size, str(case.image))
    label_slices = pad_slices(labels.astype(np.uint8), size, str(case.label))
    zooms = [float(z) for z in header.get_zooms()[:3]]
    spacing = (zooms[2], zooms[0], zooms[1])  # the stack is (D, H, W): the slice axis first
    if key is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{case.case_id}-{key}.{os.getpid()}.partial.npz"
        np.savez(tmp, images=images, labels=label_slices, spacing=np.asarray(spacing))
        os.replace(tmp, cache_dir / f"{case.case_id}-{key}.npz")
    return images, label_slices, spacing


def load_hippocampus(cfg: BenchConfig, seed: int) -> TaskData:
    from data.cache import cache_root
    from data.hippocampus import list_cases, split_cases

    cases = list_cases(cfg.hippocampus_dir, cfg.max_volumes)
    split = split_cases([c.case_id for c in cases], cfg.test_fraction, seed, cfg.val_fraction)
    by_id = {c.case_id: c for c in cases}
    cache = Path(cfg.cache_dir) if cfg.cache_dir else cache_root() / "lossbench-hippocampus"

    def stack(ids):
        vols = [_decode_volume(by_id[i], cfg.size, cache) for i in ids]
        x = np.concatenate([v[0] for v in vols])[..., None]
        y = np.concatenate([v[1] for v in vols])[..., None]
        return x, y, vols

    x_tr, y_tr, _ = stack(split["train"])
    x_va, y_va, _ = stack(split["val"])
    x_te, y_te, vols = stack(split["test"])
    starts = np.cumsum([0] + [len(v[0]) for v in vols])
    cases_idx = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return TaskData(
        "hippocampus",
        x_tr,
        y_tr,
        x_va,
        y_va,
        x_te,
        y_te,
        test_cases=cases_idx,
        test_spacing=[v[2] for v in vols],
        split=split,
    )


# ------------------------------------------------------------------------------------ lung
def load_lung(cfg: BenchConfig, seed: int) -> TaskData:
    from data.patches import patch_file_info, read_patches

    root = Path(cfg.lung_dir)
    train_file, test_file = root / "val_patches.h5", root / "test_patches.h5"
    _, ids = patch_file_info(train_file)
    x, y = read_patches(train_file)
    x_te, y_te = read_patches(test_file)
    patients = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(patients))
    n_val = max(1, round(cfg.val_fraction * len(patients)))
    val_patients = {patients[i] for i in order[:n_val]}
    is_val = np.array([i in val_patients for i in ids])
    split = {
        "train": sorted(set(patients) - val_patients),
        "val": sorted(val_patients),
        "test": sorted(set(patch_file_info(test_file)[1])),
    }
    return TaskData(
        "lung",
        x[~is_val][..., None],
        y[~is_val][..., None].astype(np.uint8),
        x[is_val][..., None],
        y[is_val][..., None].astype(np.uint8),
        x_te[..., None],
        y_te[..., None].astype(np.uint8),
        test_cases=[np.array([i]) for i in range(len(x_te))],
        test_spacing=[LUNG_SPACING_MM] * len(x_te),  # each patch is a 2D case
        split=split,
    )


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(n, h, w, 1)`` class ids -> float32 targets: one-hot ``(n, h, w, C)``, or the binary
    mask itself when ``num_classes`` is 1 (a sigmoid output)."""
    ids = labels[..., 0].astype(np.int64)
    if num_classes == 1:
        return (ids == 1).astype(np.float32)[..., None]
    return np.eye(num_classes, dtype=np.float32)[ids]

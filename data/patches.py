"""Pre-extracted 2D patches in HDF5: ``images`` and ``labels`` of shape (N, 1, H, W).

The format of ``../shared/data/msd_lung_patches`` (MSD Task06 tumour patches, 48x48 at
2 mm, already scaled to 0..1). These files carry no patient ids, but the patches are stored
patient by patient in equal blocks (130 patches = 13 patients x 10; the tumour fraction is
constant within each block of 10 and jumps between blocks), so a patch's case is its block:
``<file stem>/p<block>``. A file may instead carry its own ids in a dataset named
``case_ids`` (or ``patients``) of length N, which then wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data import validate
from data.validate import DataError

PATCH_KEYS = ("images", "labels")
CASE_ID_KEYS = ("case_ids", "patients")


def patch_file_info(path, patches_per_case: int = 10) -> tuple[tuple[int, int, int], list[str]]:
    """``((N, H, W), case id per patch)`` of one patch file, read without loading the arrays.

    Raises :class:`DataError` naming the file if it is not HDF5, lacks ``images`` or
    ``labels``, or their shapes differ or are not (N, 1, H, W).
    """
    import h5py

    path = Path(path)
    validate.raise_problems(validate.check_exists(path, "HDF5 file"))
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in PATCH_KEYS if k not in f]
            if missing:
                raise DataError(f"{path}: expected datasets 'images' and 'labels'; missing {missing} (found {list(f.keys())})")
            shape, label_shape = f["images"].shape, f["labels"].shape
            ids = None
            for key in CASE_ID_KEYS:
                if key in f:
                    ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f[key][()]]
    except OSError as err:
        raise DataError(f"{path}: cannot read HDF5 file (corrupt or truncated?): {err}") from None
    if len(shape) != 4 or shape[1] != 1:
        raise DataError(f"{path}: 'images' must have shape (N, 1, H, W); found {shape}")
    validate.raise_problems(
        validate.check_shapes_match(shape, label_shape, f"{path}['images']", f"{path}['labels']")
    )
    n = shape[0]
    if ids is None:
        ids = [f"{path.stem}/p{i // patches_per_case:03d}" for i in range(n)]
    elif len(ids) != n:
        raise DataError(f"{path}: case id list holds {len(ids)} entries for {n} patches")
    return (n, shape[2], shape[3]), ids


def read_patches(path, window=None) -> tuple[np.ndarray, np.ndarray]:
    """All patches of one file: ``(images (N, H, W) float32 in [0, 1], masks (N, H, W) bool)``.

    ``window=(lo, hi)`` scales raw values (e.g. Hounsfield units) to [0, 1]; without it the
    images must already lie in [0, 1]. Labels must be 0 or 1 (float storage is rounded).
    """
    import h5py

    from data.window import apply_window

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            images = np.asarray(f["images"][:, 0], dtype=np.float32)
            labels = np.asarray(f["labels"][:, 0], dtype=np.float32)
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: cannot read HDF5 patches (corrupt or truncated?): {err}") from None
    validate.raise_problems(validate.check_array(images, f"{path}['images']"))
    if window is not None:
        images = apply_window(images, window)
    elif images.min() < 0 or images.max() > 1:
        raise DataError(
            f"{path}: images must be scaled to [0, 1] when no window is given; found "
            f"[{images.min():g}, {images.max():g}] (pass a window, e.g. --window -1000 400)"
        )
    # checked as stored, before the cast to bool (a 0.5 is an error, never rounded away)
    validate.raise_problems(validate.check_labels(labels, f"{path}['labels']", (0, 1)))
    labels = np.rint(labels)
    return images, labels.astype(bool)

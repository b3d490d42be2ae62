"""Reusable data checks for ``train.py --check-data`` and the start of every run.

Every ``check_*`` function returns a list of problems, one message per problem, each naming
the file and saying what was expected and what was found; an empty list means the data is
fine. A task's check collects them all and then calls :func:`raise_problems`, so a user
sees every problem at once, not only the first::

    from data import validate

    problems = []
    for case in cases:
        problems += validate.check_nifti_pair(case.image, case.label, labels=(0, 1, 2))
    problems += validate.check_not_empty(cases, "training cases", source=data_dir)
    validate.raise_problems(problems, f"--data-dir {data_dir}")

The checks read files in full (NaN voxels and label values need every voxel), so run them
once, not inside a ``tf.data`` map.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from data.msd import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def raise_problems(problems: Sequence[str], source: str = "the data") -> None:
    """Raise :class:`DataError` listing every problem (no-op for an empty list)."""
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{len(problems)} problem(s) in {source}:\n{lines}")


# ---------------------------------------------------------------------------- arrays
def check_array(
    array, source, *, labels: Iterable[int] | None = None, what: str = "values"
) -> list[str]:
    """NaN/inf values, and (with ``labels``) values outside the allowed label set."""
    array = np.asarray(array)
    problems = []
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            problems.append(f"{source}: {int(bad.sum())} NaN or infinite {what} (of {array.size})")
            array = np.where(bad, 0, array)
    if labels is not None:
        allowed = sorted(int(v) for v in labels)
        unexpected = [v for v in np.unique(array) if v not in allowed]
        if unexpected:
            shown = [_fmt(v) for v in (unexpected[:8])]
            problems.append(
                f"{source}: expected labels in {{{', '.join(map(str, allowed))}}}; found {shown}"
                + (" ..." if len(unexpected) > 8 else "")
            )
    return problems


def _fmt(v):
    v = float(v)
    return int(v) if v == int(v) else v


def check_shapes_match(image_shape, label_shape, image_source, label_source) -> list[str]:
    if tuple(image_shape) != tuple(label_shape):
        return [
            f"{label_source}: label shape {tuple(label_shape)} does not match image shape {tuple(image_shape)} of {image_source}"
        ]
    return []


def check_min_size(shape, min_size, source, *, what: str = "slice") -> list[str]:
    """A ``what`` of spatial ``shape`` smaller than the model's input ``min_size`` (h, w[, d])."""
    shape, min_size = tuple(int(s) for s in shape), tuple(int(s) for s in min_size)
    if len(shape) < len(min_size) or any(
        s < m for s, m in zip(shape[: len(min_size)], min_size, strict=True)
    ):
        return [
            f"{source}: {what} size {shape} is smaller than the model input {min_size}; "
            "use a smaller --patch-size/--image-size or resize the data"
        ]
    return []


def check_not_empty(items, what: str, source) -> list[str]:
    """Empty data, e.g. after filtering by a split or a label."""
    try:
        n = len(items)
    except TypeError:
        n = sum(1 for _ in items)
    return (
        []
        if n
        else [
            f"{source}: no {what} left (empty after filtering); check the data folder and the filters"
        ]
    )


# ---------------------------------------------------------------------------- files
def check_exists(path, what: str = "file") -> list[str]:
    path = Path(path)
    return [] if path.is_file() else [f"{path}: {what} not found"]


def check_nifti(
    path, *, labels: Iterable[int] | None = None, what: str = "voxel values"
) -> list[str]:
    """A readable NIfTI volume without NaN/inf voxels (and, with ``labels``, only those values)."""
    problems, _ = _read_nifti(path, labels=labels, what=what)
    return problems


def _read_nifti(path, labels=None, what="voxel values"):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        return [f"{path}: NIfTI file not found"], None
    try:
        array = np.asarray(nib.load(str(path)).dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        return [f"{path}: cannot read NIfTI volume (corrupt or truncated?): {err}"], None
    return check_array(array, path, labels=labels, what=what), array


def check_nifti_pair(image, label, *, labels: Iterable[int] = (0, 1)) -> list[str]:
    """An image/label NIfTI pair: both readable, finite, same shape, labels in ``labels``."""
    problems, image_array = _read_nifti(image)
    label_problems, label_array = _read_nifti(label, labels=labels, what="label values")
    problems += label_problems
    if image_array is not None and label_array is not None:
        problems += check_shapes_match(image_array.shape, label_array.shape, image, label)
    return problems


def check_hdf5(
    path,
    image_key: str = "images",
    label_key: str | None = "labels",
    *,
    labels: Iterable[int] | None = None,
    label_range: tuple[float, float] | None = None,
) -> list[str]:
    """An HDF5 file with an image dataset and (optionally) a label dataset of the same shape.

    ``labels`` restricts label values to a set; ``label_range`` (e.g. ``(0, 1)`` for soft
    masks) to an interval.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        return [f"{path}: HDF5 file not found"]
    problems = []
    try:
        with h5py.File(path, "r") as f:
            keys = [k for k in (image_key, label_key) if k]
            missing = [k for k in keys if k not in f]
            if missing:
                return [
                    f"{path}: expected datasets {keys}; missing {missing} (found {sorted(f.keys())})"
                ]
            images = f[image_key][()]
            problems += check_array(images, f"{path}[{image_key}]")
            if label_key:
                label_array = f[label_key][()]
                problems += check_shapes_match(
                    images.shape, label_array.shape, f"{path}[{image_key}]", f"{path}[{label_key}]"
                )
                problems += check_array(
                    label_array, f"{path}[{label_key}]", labels=labels, what="label values"
                )
                if label_range is not None:
                    finite = (
                        label_array[np.isfinite(label_array)]
                        if np.issubdtype(label_array.dtype, np.floating)
                        else label_array
                    )
                    if finite.size and (
                        finite.min() < label_range[0] or finite.max() > label_range[1]
                    ):
                        problems.append(
                            f"{path}[{label_key}]: expected label values in [{label_range[0]}, {label_range[1]}]; "
                            f"found [{_fmt(finite.min())}, {_fmt(finite.max())}]"
                        )
    except (OSError, KeyError, ValueError) as err:
        return [f"{path}: cannot read HDF5 file (corrupt or truncated?): {err}"]
    return problems


def check_image(path, *, min_size: tuple[int, int] | None = None) -> list[str]:
    """A JPEG/PNG that decodes completely (a truncated file is reported, not half-read)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return [f"{path}: image file not found"]
    try:
        with Image.open(path) as image:
            image.load()
            size = (image.height, image.width)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        return [f"{path}: cannot decode image (corrupt or truncated?): {err}"]
    if min_size is not None:
        return check_min_size(size, min_size, path, what="image")
    return []


def check_image_mask_pair(image, mask, *, labels: Iterable[int] = (0, 255)) -> list[str]:
    """A 2-D image and its mask: both decode, same height and width, mask values in ``labels``."""
    from PIL import Image

    problems = check_image(image) + check_image(mask)
    if problems:
        return problems
    with Image.open(image) as a, Image.open(mask) as b:
        problems += check_shapes_match((a.height, a.width), (b.height, b.width), image, mask)
        problems += check_array(np.asarray(b.convert("L")), mask, labels=labels, what="mask values")
    return problems


# ---------------------------------------------------------------------------- CSV and paths
def inside(root, relative, source) -> Path:
    """``root / relative`` resolved; raises :class:`DataError` if it leaves ``root``."""
    root = Path(root).resolve()
    path = (root / str(relative)).resolve()
    if not path.is_relative_to(root):
        raise DataError(
            f"{source} names {str(relative)!r}, which lies outside the data folder {root}"
        )
    return path


def check_csv(
    path,
    columns: Sequence[str],
    *,
    image_column: str | None = None,
    image_dir=None,
    suffix: str = "",
) -> list[str]:
    """A CSV with the expected ``columns``; with ``image_column``/``image_dir``, every image
    it names exists inside ``image_dir`` (``suffix`` is appended to the names, e.g. ".jpg").
    Paths that escape ``image_dir`` (``../``, absolute paths) are problems, never read."""
    rows, problems = read_csv_rows(path, columns)
    if problems or image_column is None:
        return problems
    image_dir = Path(image_dir if image_dir is not None else Path(path).parent)
    missing = []
    for line, row in enumerate(rows, start=2):
        name = (row.get(image_column) or "").strip()
        if not name:
            problems.append(f"{path}, line {line}: empty '{image_column}'")
            continue
        try:
            file = inside(image_dir, name + suffix, f"{path}, line {line}")
        except DataError as err:
            problems.append(str(err))
            continue
        if not file.is_file():
            missing.append(f"{path}, line {line}: names image {name!r}, but {file} does not exist")
    if len(missing) > 20:
        missing = missing[:20] + [f"{path}: ... and {len(missing) - 20} more missing images"]
    return problems + missing


def read_csv_rows(path, columns: Sequence[str] = ()) -> tuple[list[dict], list[str]]:
    """``(rows, problems)`` of a CSV; a missing file or missing columns are problems."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}: CSV file not found"]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        return [], [f"{path}: cannot read CSV: {err}"]
    missing = [c for c in columns if c not in header]
    if missing:
        return [], [f"{path}: expected columns {list(columns)}; missing {missing} (found {header})"]
    return rows, []

"""Medical Segmentation Decathlon layout: ``dataset.json``, ``imagesTr/``, ``labelsTr/``.

Shared by the lung (Task06) and hippocampus (Task04) tasks: listing cases and reading
NIfTI volumes with errors that name the file and the problem.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A problem with the data source; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Case:
    """One labelled (or unlabelled) volume."""

    case_id: str
    image: Path
    label: Path | None = None


def list_msd_cases(root, split: str = "training", problems: list[str] | None = None) -> list[Case]:
    """The cases that ``dataset.json`` lists under ``split`` ("training" or "test").

    Paths in ``dataset.json`` are relative to ``root`` (``./imagesTr/lung_001.nii.gz``).
    Names starting with "." are skipped (the MSD archives hold macOS ``._*`` files).
    Raises :class:`DataError` if ``dataset.json`` is missing or malformed, or names a file
    that is absent. With a ``problems`` list, an absent file is appended to it as a message and
    its case skipped instead, so a check can report every missing file at once.
    """
    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path} not found: an MSD data folder must hold dataset.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta_path} is not valid JSON: {err}") from None
    if split not in meta:
        raise DataError(f"{meta_path} has no '{split}' list (keys: {', '.join(meta)})")
    cases = []
    for i, entry in enumerate(meta[split]):
        if split == "training":
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise DataError(f"{meta_path}: training entry {i} must have 'image' and 'label'; got {entry!r}")
            image, label = _inside(root, entry["image"], meta_path), _inside(root, entry["label"], meta_path)
        else:
            image, label = _inside(root, entry if isinstance(entry, str) else entry["image"], meta_path), None
        if image.name.startswith("."):
            continue
        absent = [p for p in (image, label) if p is not None and not p.is_file()]
        if absent:
            message = f"{absent[0]} is listed in {meta_path} but does not exist"
            if problems is None:
                raise DataError(message)
            problems.extend(f"{p} is listed in {meta_path} but does not exist" for p in absent)
            continue
        cases.append(Case(case_id=image.name.split(".")[0], image=image, label=label))
    if not cases and not problems:
        raise DataError(f"{meta_path} lists no '{split}' cases")
    return cases


def _inside(root: Path, relative: str, meta_path: Path) -> Path:
    """Resolve a path from a metadata file; it must stay inside the data folder."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{meta_path} names {relative!r}, which lies outside the data folder {root}")
    return path


def load_nifti(path, dtype=np.float32):
    """Read a NIfTI volume fully; returns ``(array, affine, header)``.

    Raises :class:`DataError` naming the file if it is missing, not NIfTI, truncated or
    corrupt, or holds NaN/inf values.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        array = np.asarray(img.dataobj, dtype=dtype)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: cannot read NIfTI volume (corrupt or truncated?): {err}") from None
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(f"{path}: holds NaN or infinite voxel values")
    return array, img.affine, img.header


def load_label(path, allowed: tuple[int, ...], image_shape=None) -> np.ndarray:
    """Read a label volume, round float storage to integers, and check its values and shape."""
    array, _, _ = load_nifti(path, dtype=np.float32)
    labels = np.rint(array).astype(np.int16)
    if image_shape is not None and labels.shape != tuple(image_shape):
        raise DataError(f"{path}: label shape {labels.shape} does not match image shape {tuple(image_shape)}")
    found = np.unique(labels)
    unexpected = [int(v) for v in found if v not in allowed]
    if unexpected:
        raise DataError(
            f"Expected labels in {{{', '.join(map(str, allowed))}}}; found {unexpected} in {path}"
        )
    return labels


def nifti_shape(path) -> tuple[int, ...]:
    """Shape of a NIfTI volume after :func:`load_canonical`, read from the header only.

    Raises :class:`DataError` naming the file if it is missing or its header is unreadable.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        shape = tuple(int(n) for n in img.shape)
        ornt = nib.orientations.io_orientation(img.affine)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: cannot read NIfTI header (corrupt or truncated?): {err}") from None
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3D volume; found shape {shape}")
    canonical = [0, 0, 0]
    for i, (axis, _) in enumerate(ornt[:3]):
        canonical[int(axis)] = shape[i]
    return tuple(canonical)


def load_canonical(path, dtype=np.float32) -> np.ndarray:
    """Read a 3D NIfTI volume reoriented to the closest canonical (RAS+) orientation.

    Orientation differs between volumes of one data set (LiTS), so slices are taken along
    the last (inferior-superior) axis only after this reorientation. Raises
    :class:`DataError` naming the file as :func:`load_nifti` does.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        array = np.asarray(img.dataobj, dtype=dtype)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: cannot read NIfTI volume (corrupt or truncated?): {err}") from None
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume; found shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(f"{path}: holds NaN or infinite voxel values")
    return array

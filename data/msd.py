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

from data import validate
from data.validate import DataError


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
    if not isinstance(meta, dict):
        raise DataError(
            f"{meta_path}: expected a JSON object with a '{split}' list; found a {type(meta).__name__}"
        )
    if split not in meta:
        raise DataError(f"{meta_path} has no '{split}' list (keys: {', '.join(map(str, meta))})")
    if not isinstance(meta[split], list):
        raise DataError(f"{meta_path}: '{split}' must be a list; found a {type(meta[split]).__name__}")
    cases = []
    for i, entry in enumerate(meta[split]):
        if split == "training":
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise DataError(f"{meta_path}: training entry {i} must have 'image' and 'label'; got {entry!r}")
            image, label = validate.inside(root, entry["image"], meta_path), validate.inside(root, entry["label"], meta_path)
        else:
            image, label = validate.inside(root, entry if isinstance(entry, str) else entry["image"], meta_path), None
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
    duplicates = validate.check_unique([c.case_id for c in cases], meta_path, f"'{split}' case")
    if duplicates and problems is not None:
        problems.extend(duplicates)
    else:
        validate.raise_problems(duplicates)
    if not cases and not problems:
        raise DataError(f"{meta_path} lists no '{split}' cases")
    return cases


def open_nifti(path):
    """``nib.load`` of ``path``; :class:`DataError` naming the file if it is missing or unreadable."""
    import nibabel as nib

    path = Path(path)
    validate.raise_problems(validate.check_exists(path, "NIfTI file"))
    try:
        img = nib.load(str(path))
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"{path}: cannot read NIfTI header (corrupt or truncated?): {err}") from None
    if 0 in tuple(img.shape):
        raise DataError(f"{path}: the volume has an empty axis (shape {tuple(img.shape)}); no voxel to read")
    return img


def _voxels(img, path, dtype) -> np.ndarray:
    """Every voxel of an opened volume, checked to be finite."""
    try:
        array = np.asarray(img.dataobj, dtype=dtype)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(f"{path}: cannot read NIfTI volume (corrupt or truncated?): {err}") from None
    validate.raise_problems(validate.check_array(array, path, what="voxel values"))
    return array


def load_nifti(path, dtype=np.float32):
    """Read a NIfTI volume fully in its stored orientation; returns ``(array, affine, header)``.

    Raises :class:`DataError` naming the file if it is missing, not NIfTI, truncated or
    corrupt, or holds NaN/inf values.
    """
    img = open_nifti(path)
    return _voxels(img, path, dtype), img.affine, img.header


def load_label(path, allowed: tuple[int, ...], image_shape=None, image_source=None) -> np.ndarray:
    """Read a label volume, check its values as stored (a 0.5 is an error, never rounded) and
    its shape, then convert it to integers."""
    array, _, _ = load_nifti(path, dtype=np.float32)
    problems = []
    if image_shape is not None:
        problems += validate.check_shapes_match(image_shape, array.shape, image_source or "its image", path)
    problems += validate.check_labels(array, path, allowed)
    validate.raise_problems(problems)
    return np.rint(array).astype(np.int16)


def nifti_shape(path) -> tuple[int, ...]:
    """Shape of a NIfTI volume after :func:`load_canonical`, read from the header only.

    Raises :class:`DataError` naming the file if it is missing, its header is unreadable or it
    is not 3-D.
    """
    import nibabel as nib

    img = open_nifti(path)
    shape = tuple(int(n) for n in img.shape)
    validate.raise_problems(validate.check_ndim(shape, 3, path))
    canonical = [0, 0, 0]
    for i, (axis, _) in enumerate(nib.orientations.io_orientation(img.affine)[:3]):
        canonical[int(axis)] = shape[i]
    return tuple(canonical)


def load_canonical(path, dtype=np.float32) -> np.ndarray:
    """Read a 3D NIfTI volume reoriented to the closest canonical (RAS+) orientation.

    Orientation differs between volumes of one data set (LiTS), so slices are taken along
    the last (inferior-superior) axis only after this reorientation. Raises
    :class:`DataError` naming the file as :func:`load_nifti` does, and for a volume that is
    not 3-D.
    """
    import nibabel as nib

    img = open_nifti(path)
    validate.raise_problems(validate.check_ndim(img.shape, 3, path))
    return _voxels(nib.as_closest_canonical(img), path, dtype)

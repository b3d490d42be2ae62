"""Real lung nodules (LIDC-IDRI volumes of interest) as 2D crops for the nodules study.

A folder in the format of ``../shared/data/lidc_nodules``::

    image/LIDC-IDRI-NNNN_R_K.nii.gz        CT volume of interest around nodule K, in HU
    nodule_mask/LIDC-IDRI-NNNN_R_K.nii.gz  its nodule mask (0/1), the same grid
    nodules.csv                            optional: one row per nodule (patient_id, nodule_id = K,
                                           Diagnosis Benign/Malign, Texture_value, Calcification_value, ...)

Each nodule becomes one 2D image: the axial slice where the mask is largest (the nodule's
widest cross-section, where its texture, calcification and margin are seen best, and the one
slice a 2D LeNet-5 as in the synthetic study can take), resampled to ``spacing_mm`` pixels
around the mask's centroid on that slice (bilinear; beyond the volume's edge the edge values
repeat), windowed to ``hu_window`` and scaled to 0..255 like the synthetic nodules.

The crops are computed once per folder and settings and kept in an ``.npz`` cache
(:func:`data.cache.cache_root` or a given folder), keyed by every file's name, size and
modification time and the settings, so seeds and reruns never reread the volumes.

Bad inputs (:class:`data.validate.DataError`, naming the file or row): an image without its
mask, an unreadable or non-3D volume, a mask of another shape or an empty mask, a table row
whose Diagnosis, Texture or Calcification code is not one of the known values. Named skips
(returned in ``skipped``, never silent): table rows without an image file (two rows of
LIDC-IDRI-1002 in the shared copy) and, when a table is given, images without a table row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from data import validate
from data.validate import DataError

DIAGNOSES = {"Benign": 0, "Malign": 1}
"""Diagnosis (max voting of the radiologists' malignancy ratings) -> label; malignant positive."""
TEXTURES = range(1, 6)  # 1 Non-Solid/GGO, 2 Non-Solid/Mixed, 3 Part Solid/Mixed, 4 Solid/Mixed, 5 Solid
CALCIFICATIONS = range(1, 7)  # 1 Popcorn, 2 Laminated, 3 Solid, 4 Non-central, 5 Central, 6 Absent
CALCIFICATION_ABSENT = 6
TABLE = "nodules.csv"
COLUMNS = ("patient_id", "nodule_id", "Diagnosis", "Texture_value", "Calcification_value")
NAME = re.compile(r"^(?P<patient>.+)_R_(?P<nodule>\d+)\.nii(\.gz)?$")
CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """How a nodule volume becomes a 2D image.

    Args:
        size: crop height and width in pixels (64, the synthetic study's size).
        spacing_mm: pixel spacing of the crop (0.4 mm: 64 px cover 25.6 mm, about the smallest
            volume of interest of the shared copy, 22-24 mm for 5 %, and every nodule up to
            the 97th percentile of diameter, 25 mm; the source pixels are 0.51-0.98 mm).
        hu_window: HU mapped linearly to 0..255 and clipped (-1000..400: air to above soft
            tissue, so ground-glass (about -600 HU), solid (about -200 HU averaged over
            the slice's mask) and calcified (above 200 HU) nodules keep distinct intensities).
    """

    size: int = 64
    spacing_mm: float = 0.4
    hu_window: tuple[float, float] = (-1000.0, 400.0)

    def __post_init__(self):
        if self.size < 8 or self.spacing_mm <= 0 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError(
                f"crop size >= 8, spacing > 0 and a window LOW < HIGH expected; received size {self.size}, "
                f"spacing {self.spacing_mm}, window {self.hu_window}"
            )


@dataclasses.dataclass
class NoduleSet:
    """The crops of a folder: ``images`` (n, size, size) float32 in 0..255, ``labels`` (n,)
    (1 malignant, 0 benign, -1 without a table), one info dict per nodule (file, patient_id,
    nodule_id, slice, mean_hu, and the table's texture / calcification codes), and the named skips."""

    images: np.ndarray
    labels: np.ndarray
    info: list[dict]
    skipped: list[str]


def parse_name(path) -> tuple[str, str]:
    """(patient_id, nodule_id) of ``LIDC-IDRI-NNNN_R_K.nii.gz``; DataError otherwise."""
    m = NAME.match(Path(path).name)
    if not m:
        raise DataError(f"{path}: expected a file named PATIENT_R_K.nii.gz (e.g. LIDC-IDRI-0001_R_1.nii.gz)")
    return m["patient"], m["nodule"]


def read_table(path) -> dict[tuple[str, str], dict]:
    """Rows of ``nodules.csv`` keyed by (patient_id, nodule_id), checked: every Diagnosis,
    Texture_value and Calcification_value must be a known value (DataError naming the row)."""
    rows, problems = validate.read_csv_rows(path, COLUMNS)
    validate.raise_problems(problems)
    table = {}
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        where = f"{path}, row {number} ({row['patient_id']} nodule {row['nodule_id']})"
        problems = validate.check_value(row["Diagnosis"], DIAGNOSES, where, "Diagnosis")
        for column, allowed in (("Texture_value", TEXTURES), ("Calcification_value", CALCIFICATIONS)):
            problems += validate.check_value(_int_or_none(row[column]), allowed, where, column)
        validate.raise_problems(problems)
        key = (row["patient_id"].strip(), str(int(row["nodule_id"])))
        if key in table:
            raise DataError(f"{where}: a second row for this nodule")
        table[key] = {
            "label": DIAGNOSES[row["Diagnosis"]],
            "texture": int(row["Texture_value"]),
            "calcification": int(row["Calcification_value"]),
            **{k: row[k] for k in ("Spiculation_value", "diameter_mm") if k in row},
        }
    return table


def _int_or_none(text):
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return text


def list_volumes(data_dir) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of ``data_dir``; DataError for a missing folder or an image without mask."""
    data_dir = Path(data_dir)
    image_dir, mask_dir = data_dir / "image", data_dir / "nodule_mask"
    if not image_dir.is_dir():
        raise DataError(f"{data_dir}: expected a folder image/ of NIfTI volumes (and nodule_mask/ beside it)")
    images = sorted(p for p in image_dir.iterdir() if p.name.endswith((".nii", ".nii.gz")) and not p.name.startswith("."))
    if not images:
        raise DataError(f"{image_dir}: no .nii or .nii.gz volumes")
    pairs = []
    for image in images:
        mask = mask_dir / image.name
        if not mask.is_file():
            raise DataError(f"{image}: no mask {mask} (every volume needs its nodule mask of the same name)")
        parse_name(image)
        pairs.append((image, mask))
    return pairs


def crop_nodule(image_path, mask_path, spec: CropSpec) -> tuple[np.ndarray, dict]:
    """(crop (size, size) float32 in 0..255, info) of one volume and its mask."""
    from scipy import ndimage

    from data.msd import load_label, load_nifti

    if not Path(mask_path).is_file():
        raise DataError(f"{image_path}: no mask {mask_path} (every volume needs its nodule mask of the same name)")
    volume, _, header = load_nifti(image_path)
    validate.raise_problems(validate.check_ndim(volume.shape, 3, image_path))
    mask = load_label(mask_path, (0, 1), volume.shape, image_path) > 0
    area = mask.sum(axis=(0, 1))
    if not area.any():
        raise DataError(f"{mask_path}: the nodule mask is empty (no voxel is 1)")
    z = int(np.argmax(area))  # the first of the largest axial cross-sections
    zooms = [float(v) for v in header.get_zooms()[:2]]
    ci, cj = (float(c) for c in np.argwhere(mask[..., z]).mean(axis=0))
    offsets = (np.arange(spec.size) - (spec.size - 1) / 2) * spec.spacing_mm
    ii, jj = np.meshgrid(ci + offsets / zooms[0], cj + offsets / zooms[1], indexing="ij")
    hu = ndimage.map_coordinates(volume[..., z], [ii, jj], order=1, mode="nearest")
    low, high = spec.hu_window
    crop = np.clip((hu - low) / (high - low), 0.0, 1.0) * 255.0
    info = {"slice": z, "mean_hu": float(volume[..., z][mask[..., z]].mean()), "area_mm2": float(area[z]) * zooms[0] * zooms[1]}
    return crop.astype(np.float32), info


def _cache_key(pairs, spec: CropSpec) -> str:
    h = hashlib.sha1(json.dumps([CACHE_VERSION, dataclasses.asdict(spec)]).encode())
    for image, mask in pairs:
        for p in (image, mask):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def load_crops(pairs, spec: CropSpec, cache_dir=None, log=None) -> tuple[np.ndarray, list[dict]]:
    """Crops of every (image, mask) pair, from the cache when it holds these files and settings."""
    from core.io import atomic_path
    from data.cache import cache_root

    cache = Path(cache_dir) if cache_dir else cache_root() / "lidc_crops"
    path = cache / f"crops-{_cache_key(pairs, spec)}.npz"
    if path.is_file():
        with np.load(path) as z:
            images, info = z["images"], json.loads(str(z["info"]))
        if len(info) == len(pairs):
            return images, info
    images, info = np.zeros((len(pairs), spec.size, spec.size), np.float32), []
    for k, (image, mask) in enumerate(pairs):
        images[k], item = crop_nodule(image, mask, spec)
        info.append({"file": image.name, **item})
        if log and (k + 1) % 200 == 0:
            log(f"cropped {k + 1} of {len(pairs)} nodule volumes")
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=images, info=np.array(json.dumps(info)))
    if log:
        log(f"cached {len(pairs)} crops in {path}")
    return images, info


def load_nodules(data_dir, spec: CropSpec = CropSpec(), *, cache_dir=None, require_table=True, log=None) -> NoduleSet:
    """Every nodule of ``data_dir`` as a crop with its table row (see the module docstring).

    ``require_table=False`` (prediction): without ``nodules.csv`` the labels are -1 and every
    volume is kept; with it, volumes without a row are skipped by name as in training.
    """
    data_dir = Path(data_dir)
    pairs = list_volumes(data_dir)
    table_path = data_dir / TABLE
    table = read_table(table_path) if require_table or table_path.is_file() else None
    skipped = []
    if table is not None:
        keys = {parse_name(image): (image, mask) for image, mask in pairs}
        for key in table:
            if key not in keys:
                skipped.append(f"{table_path}: row {key[0]} nodule {key[1]} has no image file image/{key[0]}_R_{key[1]}.nii.gz; skipped")
        kept = [(image, mask) for image, mask in pairs if parse_name(image) in table]
        for image, _ in pairs:
            if parse_name(image) not in table:
                skipped.append(f"{image}: no row in {table_path}; skipped")
        pairs = kept
        if not pairs:
            raise DataError(f"{data_dir}: no volume has a row in {table_path}")
    images, crops = load_crops(pairs, spec, cache_dir, log)
    info, labels = [], []
    for (image, _), item in zip(pairs, crops, strict=True):
        patient, nodule = parse_name(image)
        row = table[(patient, nodule)] if table is not None else {"label": -1}
        info.append({**item, "patient_id": patient, "nodule_id": nodule, **row})
        labels.append(row["label"])
    return NoduleSet(images, np.asarray(labels, np.int32), info, skipped)

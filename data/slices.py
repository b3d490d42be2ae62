"""A folder of 2D slices: ``images/`` and ``masks/`` with matching file names (PNG or JPEG).

A mask matches an image with the same stem (``images/lung_001_045.png`` ->
``masks/lung_001_045.png``), optionally with a ``_mask`` or ``_segmentation`` suffix, in any
of the accepted extensions. Images are read as grayscale and scaled by their dtype's maximum
(8-bit /255, 16-bit /65535). PNG masks must hold {0, 1} or {0, 255}; JPEG masks are
thresholded at 127 because compression blurs their edges.

Slices of one patient must stay in one split, so the case id is taken from the file stem
with :data:`CASE_PATTERN` (``lung_001_045`` -> ``lung_001``, ``p7_slice12`` -> ``p7``).
Stems without a trailing slice number are their own case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data import validate
from data.validate import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MASK_SUFFIXES = ("", "_mask", "_segmentation")
CASE_PATTERN = re.compile(r"^(?P<case>.+?)[_-](?:slice[_-]?)?(?P<index>\d+)$")


@dataclass(frozen=True)
class SlicePair:
    case_id: str
    slice_index: int
    image: Path
    mask: Path


def is_slice_folder(root) -> bool:
    root = Path(root)
    return (root / "images").is_dir() and (root / "masks").is_dir()


def list_slice_pairs(root) -> list[SlicePair]:
    """Every image with its mask, sorted by case and slice index.

    Raises :class:`DataError` naming the file when an image has no mask or the folder holds
    no images.
    """
    root = Path(root)
    images = sorted(p for p in (root / "images").iterdir()
                    if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not images:
        raise DataError(f"{root / 'images'}: no PNG or JPEG images found")
    masks = {}
    for p in (root / "masks").iterdir():
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            masks.setdefault(p.stem, p)
    pairs = []
    for image in images:
        mask = next((masks[image.stem + s] for s in MASK_SUFFIXES if image.stem + s in masks), None)
        if mask is None:
            raise DataError(f"{image}: label file missing (expected masks/{image.stem}.png or .jpg in {root})")
        match = CASE_PATTERN.match(image.stem)
        case_id, index = (match["case"], int(match["index"])) if match else (image.stem, 0)
        pairs.append(SlicePair(case_id, index, image, mask))
    return sorted(pairs, key=lambda p: (p.case_id, p.slice_index, p.image.name))


def _imread(path: Path) -> np.ndarray:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(f"{path}: cannot decode image (corrupt, truncated or not PNG/JPEG)")
    if array.ndim == 3:
        array = cv2.cvtColor(array[..., :3], cv2.COLOR_BGR2GRAY)
    return array


def image_shape(path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header by OpenCV's decoder."""
    return _imread(Path(path)).shape[:2]


def read_pair(pair: SlicePair) -> tuple[np.ndarray, np.ndarray]:
    """``(image (H, W) float32 in [0, 1], mask (H, W) bool)``, checked against each other."""
    image = _imread(pair.image)
    scale = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    image = image.astype(np.float32) / scale
    mask = _imread(pair.mask)
    validate.raise_problems(validate.check_shapes_match(image.shape, mask.shape, pair.image, pair.mask))
    if pair.mask.suffix.lower() in (".jpg", ".jpeg"):
        return image, mask > 127
    # {0, 1} or {0, 255}: a mask holding 255 is checked against {0, 255}, so a stray 1 is reported
    allowed = (0, 255) if mask.max() > 1 else (0, 1)
    validate.raise_problems(validate.check_array(mask, pair.mask, labels=allowed, what="mask values"))
    return image, mask > 0

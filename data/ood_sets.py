"""Out-of-distribution image sets for the dermoscopy task (Narayanaswamy et al. 2021, Table 1).

Every function returns uint8 RGB images (N, size, size, 3) ready for the classifier.

    bbox_images       B-Box: a black box over the lesion's bounding box (from the mask)
    bbox70_images     B-Box-70: a black box, centred on the lesion box, hiding about 70 % of it
    derm_skin_images  Derm-Skin: random crops of dermoscopy images away from the lesion
    natural_images    random crops of the natural photographs scikit-image ships in its wheel
                      (our stand-in for the paper's ImageNet set)
    histology_images  random crops of scikit-image's immunohistochemistry slide (our stand-in
                      for the paper's NCT colorectal histology set)
    folder_images     every image in a user folder, preprocessed like the dermoscopy images

These build input images (from dermoscopy records, masks, bundled photographs, a folder) and know
nothing of a model, so they are data: the scores and metrics computed on them (ODIN, AUROC,
FPR@95 % TPR) are in ``evaluation/odin.py`` and ``evaluation/ood.py``, which import nothing from
``data``. (The module lived in ``evaluation/`` before issue 14.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.dermoscopy import IMAGE_SUFFIXES, preprocess_image, read_rgb
from data.msd import DataError

NATURAL = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
HISTOLOGY = ("immunohistochemistry",)


def _bbox(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def bbox_images(images, masks):
    """B-Box: the lesion's bounding box blacked out; images with an empty mask are skipped."""
    out = []
    for img, m in zip(images, masks, strict=True):
        if not m.any():
            continue
        y0, y1, x0, x1 = _bbox(m)
        img = img.copy()
        img[y0:y1, x0:x1] = 0
        out.append(img)
    return _stack(out, images)


def bbox70_images(images, masks, coverage: float = 0.7):
    """B-Box-70: a black box centred on the lesion's bounding box, scaled down until it hides
    about ``coverage`` of the lesion's pixels (the smallest such box)."""
    out = []
    for img, m in zip(images, masks, strict=True):
        if not m.any():
            continue
        y0, y1, x0, x1 = _bbox(m)
        cy, cx, hh, hw = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        total = m.sum()
        box = (y0, y1, x0, x1)
        for s in np.linspace(0.05, 1.0, 40):
            b = (
                int(round(cy - s * hh)),
                int(round(cy + s * hh)),
                int(round(cx - s * hw)),
                int(round(cx + s * hw)),
            )
            if m[b[0] : b[1], b[2] : b[3]].sum() >= coverage * total:
                box = b
                break
        img = img.copy()
        img[box[0] : box[1], box[2] : box[3]] = 0
        out.append(img)
    return _stack(out, images)


def derm_skin_images(
    images,
    masks,
    crop_fraction: float = 0.25,
    seed: int = 0,
    max_lesion_fraction: float = 0.05,
    tries: int = 50,
):
    """Derm-Skin: per image, a random square crop (``crop_fraction`` of the side) holding at
    most ``max_lesion_fraction`` lesion pixels, resized back; images with no such crop are skipped."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for img, m in zip(images, masks, strict=True):
        size = img.shape[0]
        c = max(4, int(round(crop_fraction * size)))
        for _ in range(tries):
            y, x = rng.integers(0, size - c + 1, 2)
            if m[y : y + c, x : x + c].mean() <= max_lesion_fraction:
                out.append(
                    cv2.resize(
                        img[y : y + c, x : x + c], (size, size), interpolation=cv2.INTER_LINEAR
                    )
                )
                break
    return _stack(out, images)


def _skimage_images(names):
    import skimage.data

    images = []
    for name in names:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # a fetcher that needs a download or pooch: skip that image
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        images.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    if not images:
        raise DataError(f"none of scikit-image's bundled images {', '.join(names)} could be loaded")
    return images


def random_crops(
    sources,
    n: int,
    size: int,
    seed: int = 0,
    min_fraction: float = 0.2,
    max_fraction: float = 0.6,
    sog_power: float | None = 6.0,
):
    """``n`` random square crops (side ``min..max_fraction`` of the shorter side) of ``sources``,
    Shades-of-Gray corrected and resized like the dermoscopy images."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        c = int(rng.uniform(min_fraction, max_fraction) * min(h, w))
        y, x = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        out.append(
            preprocess_image(
                src[y : y + c, x : x + c], size, crop_fraction=1.0, sog_power=sog_power
            )
        )
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


def natural_images(n: int, size: int, seed: int = 0, sog_power: float | None = 6.0):
    return random_crops(_skimage_images(NATURAL), n, size, seed, sog_power=sog_power)


def histology_images(n: int, size: int, seed: int = 0, sog_power: float | None = 6.0):
    return random_crops(
        _skimage_images(HISTOLOGY),
        n,
        size,
        seed,
        min_fraction=0.1,
        max_fraction=0.3,
        sog_power=sog_power,
    )


def folder_images(
    folder,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    limit: int | None = None,
):
    """Every image file (.jpg/.jpeg/.png) in ``folder``, preprocessed; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--ood-folder {folder} is not a folder")
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise DataError(f"--ood-folder {folder} holds no .jpg/.jpeg/.png images")
    paths = paths[:limit] if limit else paths
    return np.stack([preprocess_image(read_rgb(p), size, crop_fraction, sog_power) for p in paths])


def _stack(out, like):
    shape = np.shape(like)[1:]
    return np.stack(out) if out else np.zeros((0, *shape), np.uint8)

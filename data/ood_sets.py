"""Out-of-distribution image sets for the dermoscopy task (Narayanaswamy et al. 2021, Sec. 4.2).

Every builder starts from the ORIGINAL image (its own resolution) and ends with the same
preprocessing as every classifier input (:func:`data.dermoscopy.preprocess_image`: centre crop,
Shades-of-Gray, resize), so an OOD image differs from an in-distribution one only by what the
set is about. Each returns uint8 RGB images (N, size, size, 3).

    bbox_images        B-Box: "skin lesion images corrupted by a black bounding box on the lesion
                       region" -- the lesion's bounding box (from its mask) blacked out
    bbox_images(kind="lesion-70")
                       B-Box-70 as the paper words it: "black bounding boxes that mask ~70 % of
                       the lesion region" -- a box centred on the lesion box, the smallest of its
                       shape that hides at least 70 % of the lesion's pixels
    bbox_images(kind="image-70")
                       B-Box-70, other reading: a black box over 70 % of the IMAGE's area,
                       centred on the lesion (see :data:`BBOX70_READINGS`)
    derm_skin_images   Derm-Skin: "dermoscopy images of skin obtained by randomly cropping
                       patches" -- random square patches of the original image that hold no
                       lesion pixel (the mask says where) and little dark vignette
    natural_images     random crops of every natural photograph shipped with the installed
                       packages (:data:`NATURAL_PHOTOGRAPHS`): our stand-in for 3,000 ImageNet
                       images
    histology_images   random crops of scikit-image's immunohistochemistry slide of colonic
                       glands: our stand-in for NCT (colorectal H&E tiles)
    folder_images      every image in a user folder

These build input images (from dermoscopy records, masks, bundled photographs, a folder) and know
nothing of a model, so they are data: the scores and metrics computed on them (ODIN, AUROC,
FPR@95 % TPR) are in ``evaluation/odin.py`` and ``evaluation/ood.py``, which import nothing from
``data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.dermoscopy import IMAGE_SUFFIXES, preprocess_image, read_rgb
from data.validate import DataError

BBOX_KINDS = ("lesion", "lesion-70", "image-70")
# Why B-Box-70 has two readings. The paper (Sec. 4.2, after Pacheco et al. 2020): "B-Box-70: 2454
# skin lesion images with black bounding boxes that mask ~70% of the lesion region". Read
# literally, the box is SMALLER than B-Box's (which hides the whole lesion box), so more of the
# lesion stays visible and the set should be closer to in-distribution than B-Box. Table 1
# gives the opposite: B-Box-70 AUROC 100.0 / 100.0 (both models, every metric saturated), B-Box
# 90.74 / 98.74. A box over ~70 % of the whole image (mostly black inputs) explains a saturated
# score for any model; we build both and report both ("b-box-70": the paper's words, the
# default; "b-box-70-image": the other reading) so the measured numbers decide.
BBOX70_READINGS = {
    "lesion-70": "black box hiding ~70 % of the lesion's pixels (the paper's words)",
    "image-70": "black box over 70 % of the image area, centred on the lesion (the reading Table 1's saturated 100 % AUROC suggests)",
}

# Every natural photograph shipped inside the installed packages (scikit-image 0.26,
# scikit-learn 1.9, matplotlib 3.11), as (name, package, loader). Grayscale ones are repeated
# to three channels (ImageNet holds some grayscale photographs too).
NATURAL_PHOTOGRAPHS = (
    ("astronaut", "scikit-image", "skimage.data.astronaut"),
    ("chelsea (cat)", "scikit-image", "skimage.data.chelsea"),
    ("coffee", "scikit-image", "skimage.data.coffee"),
    ("rocket", "scikit-image", "skimage.data.rocket"),
    ("hubble deep field", "scikit-image", "skimage.data.hubble_deep_field"),
    ("motorcycle, left view", "scikit-image", "skimage.data.stereo_motorcycle[0]"),
    ("motorcycle, right view", "scikit-image", "skimage.data.stereo_motorcycle[1]"),
    ("camera (grayscale)", "scikit-image", "skimage.data.camera"),
    ("coins (grayscale)", "scikit-image", "skimage.data.coins"),
    ("moon (grayscale)", "scikit-image", "skimage.data.moon"),
    ("clock, motion-blurred (grayscale)", "scikit-image", "skimage.data.clock"),
    ("brick wall (grayscale)", "scikit-image", "skimage.data.brick"),
    ("grass (grayscale)", "scikit-image", "skimage.data.grass"),
    ("gravel (grayscale)", "scikit-image", "skimage.data.gravel"),
    ("china (temple)", "scikit-learn", "sklearn.datasets.load_sample_image('china.jpg')"),
    ("flower", "scikit-learn", "sklearn.datasets.load_sample_image('flower.jpg')"),
    ("grace hopper", "matplotlib", "matplotlib.cbook.get_sample_data('grace_hopper.jpg')"),
)
# Images in the same packages that are NOT natural photographs, or not usable, and why.
NOT_USED = {
    "skimage lfw_subset": "200 face photographs, but 25 x 25 grayscale: upsampled 2.5-9x they "
    "are blur, the flaw that made the old Derm-Skin set easy",
    "skimage retina, microaneurysms": "medical (fundus) images",
    "skimage cell": "phase-contrast microscopy",
    "skimage immunohistochemistry": "histology (the histology stand-in)",
    "skimage colorwheel (color.png), logo, horse, text, page, chessboard, phantom": "synthetic graphics or scanned text",
    "matplotlib Minduka_Present_Blue_Pack.png, logo2.png": "clip art",
    "skimage lily, kidney, cells3d, human_mitosis, ...": "need a download (pooch); offline here",
}
HISTOLOGY_SOURCE = (
    "scikit-image's immunohistochemistry image (skimage.data.immunohistochemistry): one 512 x 512 "
    "field of colonic glands, FHL2 protein revealed with DAB (brown), hematoxylin counterstain "
    "(blue); the paper's NCT set is 1,350 colorectal cancer H&E tiles (Kather et al. 2019)"
)


# ---------------------------------------------------------------------------- original images
def read_with_mask(record) -> tuple[np.ndarray, np.ndarray | None]:
    """The record's RGB image at its own resolution and its lesion mask resized to it (nearest,
    thresholded at 127), or None without a mask file."""
    import cv2

    image = read_rgb(record.path)
    if record.mask is None:
        return image, None
    m = cv2.imread(str(record.mask), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DataError(f"{record.mask}: not a readable mask image")
    h, w = image.shape[:2]
    return image, cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) > 127


def lesion_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), end-exclusive, of the mask's nonzero pixels."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def coverage_box(mask: np.ndarray, coverage: float = 0.7, steps: int = 60):
    """The smallest box centred on the lesion box, of its shape, hiding >= ``coverage`` of the
    lesion's pixels (the lesion box itself if no smaller one does)."""
    y0, y1, x0, x1 = lesion_box(mask)
    cy, cx, hh, hw = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    total = mask.sum()
    for s in np.linspace(1.0 / steps, 1.0, steps):
        b = (
            int(round(cy - s * hh)),
            int(round(cy + s * hh)),
            int(round(cx - s * hw)),
            int(round(cx + s * hw)),
        )
        if mask[b[0] : b[1], b[2] : b[3]].sum() >= coverage * total:
            return b
    return y0, y1, x0, x1


def image_area_box(mask: np.ndarray, fraction: float = 0.7):
    """A box of the image's aspect covering ``fraction`` of its area, centred on the lesion box's
    centre and shifted to lie inside the image."""
    h, w = mask.shape
    bh, bw = int(round(h * np.sqrt(fraction))), int(round(w * np.sqrt(fraction)))
    y0, y1, x0, x1 = lesion_box(mask)
    top = int(np.clip(round((y0 + y1) / 2 - bh / 2), 0, h - bh))
    left = int(np.clip(round((x0 + x1) / 2 - bw / 2), 0, w - bw))
    return top, top + bh, left, left + bw


def _box_for(kind: str, mask: np.ndarray):
    if kind == "lesion":
        return lesion_box(mask)
    if kind == "lesion-70":
        return coverage_box(mask, 0.7)
    if kind == "image-70":
        return image_area_box(mask, 0.7)
    raise ValueError(f"B-Box kind must be one of {', '.join(BBOX_KINDS)}; received {kind!r}")


def bbox_images(
    records,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    kind: str = "lesion",
    limit: int | None = None,
    *,
    crop_shape: str = "width",
    with_ids: bool = False,
):
    """B-Box (``kind="lesion"``) or B-Box-70 (``"lesion-70"``, ``"image-70"``): the box is
    blacked out on the original image, which is then preprocessed. Records without a mask, or
    with an empty one, are skipped. ``with_ids``: also return the image ids used."""
    _box_for(kind, np.ones((2, 2), bool))  # bad kind: fail before any decoding
    out, ids = [], []
    for rec in records:
        if limit is not None and len(out) >= limit:
            break
        image, mask = read_with_mask(rec)
        if mask is None or not mask.any():
            continue
        y0, y1, x0, x1 = _box_for(kind, mask)
        image = image.copy()
        image[y0:y1, x0:x1] = 0
        out.append(preprocess_image(image, size, crop_fraction, sog_power, crop_shape))
        ids.append(rec.image_id)
    return (_stack(out, size), ids) if with_ids else _stack(out, size)


def skin_crop_box(
    mask: np.ndarray,
    image: np.ndarray,
    side: int,
    rng: np.random.Generator,
    *,
    max_lesion_fraction: float = 0.0,
    max_dark_fraction: float = 0.05,
    dark_level: int = 30,
    tries: int = 100,
):
    """(y0, y1, x0, x1) of a random ``side`` x ``side`` patch holding at most
    ``max_lesion_fraction`` lesion pixels and ``max_dark_fraction`` pixels darker than
    ``dark_level`` in every channel (the dermoscope's black vignette is not skin); None if
    ``tries`` random positions all fail."""
    h, w = mask.shape
    if side > min(h, w):
        return None
    dark = np.all(image[..., :3] < dark_level, axis=-1)
    for _ in range(tries):
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        if (
            mask[y : y + side, x : x + side].mean() <= max_lesion_fraction
            and dark[y : y + side, x : x + side].mean() <= max_dark_fraction
        ):
            return y, y + side, x, x + side
    return None


def derm_skin_images(
    records,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    *,
    side_fraction: float = 0.35,
    seed: int = 0,
    limit: int | None = None,
    crop_shape: str = "width",
    with_ids: bool = False,
    **crop_options,
):
    """Derm-Skin: per record, one random square patch of the original image (side
    ``side_fraction`` of its shorter side) with no lesion pixel, then preprocessed. Records
    without a mask, or without such a patch, are skipped. ``with_ids``: also return the image
    ids used."""
    rng = np.random.default_rng(seed)
    out, ids = [], []
    for rec in records:
        if limit is not None and len(out) >= limit:
            break
        image, mask = read_with_mask(rec)
        if mask is None:
            continue
        side = max(8, int(round(side_fraction * min(mask.shape))))
        box = skin_crop_box(mask, image, side, rng, **crop_options)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        out.append(
            preprocess_image(image[y0:y1, x0:x1], size, crop_fraction, sog_power, crop_shape)
        )
        ids.append(rec.image_id)
    return (_stack(out, size), ids) if with_ids else _stack(out, size)


# ---------------------------------------------------------------------------- stand-in sets
def _gray_to_rgb(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:  # matplotlib's float PNG reader
        img = np.clip(np.round(img * 255 if img.max() <= 1.0 else img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _photograph_loaders():
    """One loader per entry of :data:`NATURAL_PHOTOGRAPHS`, in order."""
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data
    from sklearn.datasets import load_sample_image

    return [
        skimage.data.astronaut,
        skimage.data.chelsea,
        skimage.data.coffee,
        skimage.data.rocket,
        skimage.data.hubble_deep_field,
        lambda: skimage.data.stereo_motorcycle()[0],
        lambda: skimage.data.stereo_motorcycle()[1],
        skimage.data.camera,
        skimage.data.coins,
        skimage.data.moon,
        skimage.data.clock,
        skimage.data.brick,
        skimage.data.grass,
        skimage.data.gravel,
        lambda: load_sample_image("china.jpg"),
        lambda: load_sample_image("flower.jpg"),
        lambda: matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg")),
    ]


def natural_photographs() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) of every photograph of :data:`NATURAL_PHOTOGRAPHS` that loads (a package
    installed without its data files loses its photographs); DataError if none does."""
    out, failed = [], []
    for (name, package, _), load in zip(NATURAL_PHOTOGRAPHS, _photograph_loaders(), strict=True):
        try:
            out.append((name, _gray_to_rgb(load())))
        except Exception as err:  # a missing data file, a fetcher wanting a download
            failed.append(f"{name} ({package}: {type(err).__name__})")
    if not out:
        raise DataError(
            "none of the natural photographs shipped with scikit-image, scikit-learn and "
            f"matplotlib could be loaded: {', '.join(failed)}"
        )
    return out


def random_crops(
    sources,
    n: int,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    *,
    seed: int = 0,
    min_side: float = 0.5,
    max_side: float = 1.0,
    crop_shape: str = "width",
):
    """``n`` random square crops (side ``min_side..max_side`` of the shorter side), cycling
    through ``sources``, each preprocessed like a dermoscopy image."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        c = max(8, int(rng.uniform(min_side, max_side) * min(h, w)))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        out.append(
            preprocess_image(src[y : y + c, x : x + c], size, crop_fraction, sog_power, crop_shape)
        )
    return _stack(out, size)


def natural_images(
    n: int,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    seed: int = 0,
    crop_shape: str = "width",
):
    """``n`` crops spread evenly over the 17 shipped photographs (the paper: 3,000 ImageNet
    images of up to 1,000 classes; here 17 scenes, so crops of one photograph repeat content)."""
    sources = [a for _, a in natural_photographs()]
    return random_crops(
        sources, n, size, crop_fraction, sog_power, seed=seed, crop_shape=crop_shape
    )


def histology_images(
    n: int,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    seed: int = 0,
    crop_shape: str = "width",
):
    """``n`` random crops (side 0.2-0.5 of 512 px) of the one shipped histology field
    (:data:`HISTOLOGY_SOURCE`)."""
    import skimage.data

    return random_crops(
        [skimage.data.immunohistochemistry()],
        n,
        size,
        crop_fraction,
        sog_power,
        seed=seed,
        min_side=0.2,
        max_side=0.5,
        crop_shape=crop_shape,
    )


def folder_images(
    folder,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    limit: int | None = None,
    crop_shape: str = "width",
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
    return np.stack(
        [preprocess_image(read_rgb(p), size, crop_fraction, sog_power, crop_shape) for p in paths]
    )


def _stack(out, size: int) -> np.ndarray:
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)

"""A built-in synthetic dermoscopy-like data set in the ISIC 2019 layout.

Each image is skin-coloured background (smooth shading, noise, a few dark hairs) with one
elliptical lesion whose colour and texture depend on the class, plus its lesion mask. It keeps
every ``isic`` command working without a data folder; it says nothing about real accuracy.

Layout written (see :mod:`data.dermoscopy`):
    images/SYN_XXXXXXX.jpg, masks/SYN_XXXXXXX_segmentation.png,
    ISIC_2019_Training_GroundTruth.csv, ISIC_2019_Training_Metadata.csv (lesion_id; about one
    lesion in four has two images).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from core.io import atomic_folder
from data.dermoscopy import ISIC_CLASSES

SYNTHETIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC")

# (lesion RGB, texture kind) per class: distinct enough for a small CNN to learn
_STYLE = {
    "MEL": ((70, 40, 35), "blotches"),
    "NV": ((140, 90, 60), "smooth"),
    "BCC": ((190, 140, 150), "vessels"),
    "AK": ((180, 100, 90), "scaly"),
    "BKL": ((120, 100, 70), "stripes"),
    "DF": ((160, 110, 90), "ring"),
    "VASC": ((170, 40, 60), "dots"),
}


def render(label: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 RGB image, uint8 mask in {0, 255}) pair of class ``label``."""
    import cv2

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    skin = np.array([215, 170, 145], np.float32) + rng.normal(0, 12, 3)
    shade = 1.0 + 0.15 * (xx - 0.5) * rng.uniform(-1, 1) + 0.15 * (yy - 0.5) * rng.uniform(-1, 1)
    image = skin[None, None, :] * shade[..., None] + rng.normal(0, 6, (size, size, 3))
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    ax, ay = rng.uniform(0.12, 0.28, 2) * size
    angle = rng.uniform(0, 180)
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), angle, 0, 360, 255, -1)
    inside = mask > 0
    colour, kind = _STYLE[label]
    lesion = np.array(colour, np.float32) + rng.normal(0, 10, 3)
    tex = np.zeros((size, size), np.float32)
    if kind == "blotches":
        tex = (
            cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 20)
            * 120
        )
    elif kind == "vessels":
        for _ in range(4):
            pts = (rng.uniform(0, size, (4, 2))).astype(np.int32)
            cv2.polylines(tex, [pts], False, -60.0, max(1, size // 64))
    elif kind == "scaly":
        tex = rng.normal(0, 25, (size, size)).astype(np.float32)
    elif kind == "stripes":
        tex = 30 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) * 8)
    elif kind == "ring":
        r = np.hypot((xx * size - cx) / ax, (yy * size - cy) / ay)
        tex = -50 * np.exp(-((r - 0.6) ** 2) / 0.02)
    elif kind == "dots":
        for _ in range(12):
            p = rng.uniform(-0.7, 0.7, 2) * (ax, ay) + (cx, cy)
            cv2.circle(tex, (int(p[0]), int(p[1])), max(1, size // 40), -50.0, -1)
    blend = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, size / 100))[..., None]
    image = image * (1 - blend) + (lesion[None, None, :] + tex[..., None]) * blend
    for _ in range(rng.integers(0, 4)):  # hairs
        p = rng.uniform(0, size, (2, 2)).astype(np.int32)
        cv2.line(image, tuple(map(int, p[0])), tuple(map(int, p[1])), (40.0, 30.0, 25.0), 1)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_synthetic_isic(
    root, per_class: int = 20, size: int = 96, seed: int = 0, classes=SYNTHETIC_CLASSES
) -> Path:
    """Write the synthetic set into ``root`` (created; refused if it holds files) and return it.

    The folder is filled under a temporary name and renamed, so a killed run leaves no half set.
    """
    import cv2

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} already holds files; give an empty or new folder")
    with atomic_folder(root) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rng = np.random.default_rng(seed)
        rows, meta = [], []
        k = 0
        for label in classes:
            for i in range(per_class):
                image_id = f"SYN_{k:07d}"
                # every fourth lesion is photographed twice (grouped split must keep them together)
                lesion = f"SYNL_{k - 1:07d}" if i % 4 == 1 else f"SYNL_{k:07d}"
                image, mask = render(label, size, rng)
                cv2.imwrite(
                    str(tmp / "images" / f"{image_id}.jpg"),
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95],
                )
                cv2.imwrite(str(tmp / "masks" / f"{image_id}_segmentation.png"), mask)
                rows.append({"image": image_id, **{c: float(c == label) for c in ISIC_CLASSES}})
                meta.append({"image": image_id, "lesion_id": lesion})
                k += 1
        for name, data in (
            ("ISIC_2019_Training_GroundTruth.csv", rows),
            ("ISIC_2019_Training_Metadata.csv", meta),
        ):
            with open(tmp / name, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(data[0]))
                writer.writeheader()
                writer.writerows(data)
    return root


def synthetic_isic_dir(per_class: int = 20, size: int = 96, seed: int = 0, cache_dir=None) -> Path:
    """The synthetic set for these settings, written once into a cache folder and reused."""
    from data.cache import cache_root

    base = Path(cache_dir) if cache_dir else cache_root()
    root = base / f"synthetic_isic_{per_class}x{size}_seed{seed}"
    if not (root / "ISIC_2019_Training_GroundTruth.csv").is_file():
        if root.exists():
            shutil.rmtree(root)
        write_synthetic_isic(root, per_class, size, seed)
    return root

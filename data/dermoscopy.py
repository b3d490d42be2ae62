"""Dermoscopy images in the ISIC 2019 or HAM10000 layout: listing, preprocessing, splits, tf.data.

Layouts (``root`` is the data folder):

* ISIC 2019: ``ISIC_2019_Training_GroundTruth.csv`` (``image`` + one-hot columns MEL, NV, BCC,
  AK, BKL, DF, VASC, SCC, UNK), optional ``ISIC_2019_Training_Metadata.csv`` (``image``,
  ``lesion_id``, ...).
* HAM10000: ``HAM10000_metadata.csv`` (``lesion_id, image_id, dx, ...``; dx in nv, mel, bkl,
  bcc, akiec, vasc, df; akiec is mapped to AK as in ISIC 2019).

Images are ``<image folder>/<image id>.jpg`` (folder ``images/``, ``ISIC_2019_Training_Input/``,
``HAM10000_images/`` or ``root`` itself); optional lesion masks are
``masks/<image id>_segmentation.png``. When both CSVs exist the ISIC file gives the labels and
the HAM10000 file the lesion ids.

Preprocessing (Narayanaswamy et al. 2021, Sec. 4): centre crop to 0.85 of the width, the height
kept (:func:`center_crop_box`; a square crop is the option), Shades-of-Gray colour constancy
(Minkowski norm p = 6, which the paper does not state), resize.
Images are decoded once into a uint8 array (``tf.numpy_function`` in a ``map`` would hold the GIL).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data import validate
from data.validate import DataError

log = logging.getLogger(__name__)

ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
HAM_TO_ISIC = {
    "mel": "MEL",
    "nv": "NV",
    "bcc": "BCC",
    "akiec": "AK",
    "bkl": "BKL",
    "df": "DF",
    "vasc": "VASC",
}
ISIC_CSV = "ISIC_2019_Training_GroundTruth.csv"
ISIC_METADATA_CSV = "ISIC_2019_Training_Metadata.csv"
HAM_CSV = "HAM10000_metadata.csv"
IMAGE_FOLDERS = ("images", "ISIC_2019_Training_Input", "HAM10000_images", ".")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Record:
    """One labelled dermoscopy image."""

    image_id: str
    path: Path
    label: str  # an ISIC 2019 class name
    lesion_id: str  # the image id itself when the lesion is unknown
    mask: Path | None = None


def _read_csv(path: Path, columns=()) -> list[dict]:
    """The rows of a CSV that must exist, decode and hold ``columns``, and list at least one image."""
    rows, problems = validate.read_csv_rows(path, columns)
    validate.raise_problems(problems)
    if not rows:
        raise DataError(f"{path} lists no images")
    return rows


def _isic_labels(path: Path) -> dict[str, str]:
    rows = _read_csv(path, ("image", *[c for c in ISIC_CLASSES if c != "UNK"][:5]))
    validate.raise_problems(validate.check_unique([r["image"].strip() for r in rows], path, "image"))
    present = [c for c in ISIC_CLASSES if c in rows[0]]
    labels = {}
    for i, row in enumerate(rows):
        try:
            values = [float(row[c] or 0) for c in present]
        except ValueError:
            raise DataError(
                f"{path}, row {i + 2} ({row.get('image')}): one-hot values must be numbers"
            ) from None
        hot = [c for c, v in zip(present, values, strict=True) if v >= 0.5]
        if len(hot) != 1:
            raise DataError(
                f"{path}, row {i + 2} ({row['image']}): expected exactly one class set to 1; found {hot or 'none'}"
            )
        labels[row["image"].strip()] = hot[0]
    return labels


def _ham_rows(path: Path) -> list[dict]:
    rows = _read_csv(path, ("lesion_id", "image_id", "dx"))
    validate.raise_problems(validate.check_unique([r["image_id"].strip() for r in rows], path, "image_id"))
    return rows


def detect_layout(root) -> str:
    root = Path(root)
    if (root / ISIC_CSV).is_file():
        return "isic"
    if (root / HAM_CSV).is_file():
        return "ham"
    raise DataError(f"{root}: no {ISIC_CSV} (ISIC 2019 layout) and no {HAM_CSV} (HAM10000 layout)")


def image_folder(root) -> Path:
    root = Path(root)
    for name in IMAGE_FOLDERS:
        folder = root / name
        if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            return folder
    raise DataError(f"{root}: no folder of images found (looked for {', '.join(IMAGE_FOLDERS)})")


def list_dermoscopy(root, layout: str = "auto") -> tuple[list[Record], list[str]]:
    """Records of every labelled image with a file, and the ids listed but missing.

    Paths are built from the CSV's image ids; files of the folder that no CSV lists (or that are
    not images) are ignored. Raises :class:`DataError` for a missing/malformed CSV or when none of
    the listed images exists.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data-dir {root} is not a folder")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in ("isic", "ham"):
        raise DataError(f"--layout must be auto, isic or ham; received {layout!r} (for {root})")
    lesions: dict[str, str] = {}
    if (root / HAM_CSV).is_file():
        for row in _ham_rows(root / HAM_CSV):
            lesions[row["image_id"].strip()] = row["lesion_id"].strip()
    if layout == "isic":
        labels = _isic_labels(root / ISIC_CSV)
        meta = root / ISIC_METADATA_CSV
        if meta.is_file():
            rows, problems = validate.read_csv_rows(meta)
            validate.raise_problems(problems)
            if rows and "lesion_id" in rows[0]:
                for row in rows:
                    if row.get("lesion_id", "").strip():
                        lesions[row["image"].strip()] = row["lesion_id"].strip()
    else:
        if not (root / HAM_CSV).is_file():
            raise DataError(f"{root / HAM_CSV} not found")
        labels = {}
        for i, row in enumerate(_ham_rows(root / HAM_CSV)):
            dx = row["dx"].strip().lower()
            if dx not in HAM_TO_ISIC:
                raise DataError(
                    f"{root / HAM_CSV}, row {i + 2}: dx must be one of {', '.join(HAM_TO_ISIC)}; found {dx!r}"
                )
            labels[row["image_id"].strip()] = HAM_TO_ISIC[dx]
    folder = image_folder(root)
    files = {
        p.stem: p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }
    mask_dir = root / "masks"
    records, missing = [], []
    for image_id, label in labels.items():
        path = files.get(image_id)
        if path is None:
            missing.append(image_id)
            continue
        mask = mask_dir / f"{image_id}_segmentation.png"
        records.append(
            Record(
                image_id,
                path,
                label,
                lesions.get(image_id, image_id),
                mask if mask.is_file() else None,
            )
        )
    if missing:
        log.warning(
            "%d of %d listed images are missing from %s (first: %s)",
            len(missing),
            len(labels),
            folder,
            ", ".join(missing[:5]),
        )
    if not records:
        raise DataError(
            f"{root}: none of the {len(labels)} images listed in the CSV exists in {folder}"
        )
    return records, missing


# ----------------------------------------------------------------------------- preprocessing


CROP_SHAPES = ("width", "square")


def center_crop_box(
    height: int, width: int, fraction: float = 0.85, shape: str = "width"
) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of the centre crop.

    The paper: "center cropped to 0.85 times its original width" (Narayanaswamy et al. 2021,
    Sec. 4.1). ``shape="width"`` does exactly that: the width becomes ``round(fraction * width)``
    and the height is kept whole (the text crops only the width; a 200 x 150 image gives 170 x 150,
    which the resize to a square input then stretches vertically by 170 / 150). ``shape="square"``
    takes the centre square of side ``min(fraction * width, height)`` instead, keeping the aspect
    ratio (on 4:3 images the height limits it: 150 of 200 px, i.e. 0.75 of the width).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"crop fraction must be in (0, 1]; received {fraction}")
    if shape not in CROP_SHAPES:
        raise ValueError(f"crop shape must be one of {', '.join(CROP_SHAPES)}; received {shape!r}")
    cw = max(1, int(round(fraction * width)))
    if shape == "width":
        return 0, (width - cw) // 2, height, cw
    side = min(cw, height)
    return (height - side) // 2, (width - side) // 2, side, side


def shades_of_gray(image: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson and Trezzi 2004).

    Formula:
        e_c = (mean_x I_c(x)^p)^(1/p),   I'_c = I_c * mean_k(e_k) / e_c
    p = 6 by default, after Barata et al. 2015 (Narayanaswamy et al. 2021 name the method, not
    p). Returns uint8.
    """
    img = image.astype(np.float64)
    illum = np.power(np.mean(np.power(img, power), axis=(0, 1)), 1.0 / power)  # (3,)
    illum = np.maximum(illum, 1e-6)
    out = img * (illum.mean() / illum)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def preprocess_image(
    image: np.ndarray,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    crop_shape: str = "width",
) -> np.ndarray:
    """Centre crop (:func:`center_crop_box`), Shades-of-Gray, resize to ``size`` x ``size``
    (uint8 RGB)."""
    import cv2

    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., :3]
    top, left, h, w = center_crop_box(*image.shape[:2], crop_fraction, crop_shape)
    image = image[top : top + h, left : left + w]
    if sog_power:
        image = shades_of_gray(image, sog_power)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def preprocess_mask(
    mask: np.ndarray, image_shape, size: int, crop_fraction: float = 0.85, crop_shape: str = "width"
) -> np.ndarray:
    """Mask to the image's size (nearest), threshold at 127, same crop, resize (nearest); bool."""
    import cv2

    if mask.ndim == 3:
        mask = mask[..., 0]
    h, w = image_shape[:2]
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 127
    top, left, ch, cw = center_crop_box(h, w, crop_fraction, crop_shape)
    mask = mask[top : top + ch, left : left + cw].astype(np.uint8)
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)


def read_rgb(path) -> np.ndarray:
    """The image as RGB uint8, after the check ``--check-data`` runs (a truncated JPEG, which
    OpenCV would half-decode without an error, is a :class:`DataError` naming the file)."""
    import cv2

    validate.raise_problems(validate.check_image(path))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_images(
    records,
    size: int,
    crop_fraction: float = 0.85,
    sog_power: float | None = 6.0,
    progress: bool = True,
    crop_shape: str = "width",
):
    """Decode and preprocess every record once.

    Returns ``(images, masks)``: uint8 (N, size, size, 3) and bool (N, size, size); an image
    without a mask file gets an all-False mask. Logs one line per 1000 images.
    """
    import cv2

    n = len(records)
    images = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    for i, rec in enumerate(records):
        raw = read_rgb(rec.path)
        images[i] = preprocess_image(raw, size, crop_fraction, sog_power, crop_shape)
        if rec.mask is not None:
            validate.raise_problems(validate.check_image(rec.mask))
            m = cv2.imread(str(rec.mask), cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise DataError(f"{rec.mask}: not a readable mask image")
            masks[i] = preprocess_mask(m, raw.shape, size, crop_fraction, crop_shape)
        if progress and ((i + 1) % 1000 == 0 or i + 1 == n):
            print(f"  decoded {i + 1}/{n} images", flush=True)
    return images, masks


def check_images(records) -> list[str]:
    """Every problem with the listed files (images or masks that do not decode completely,
    truncated ones included), one line each (``train.py --task isic --check-data``)."""
    problems = []
    for rec in records:
        problems += validate.check_image(rec.path)
        if rec.mask is not None:
            problems += validate.check_image(rec.mask)
    return problems


# ----------------------------------------------------------------------------- splits, weights


def subsample(records, max_per_class: int | None, seed: int):
    """At most ``max_per_class`` records of each class (seeded), order kept."""
    if not max_per_class:
        return list(records)
    rng = np.random.default_rng(seed)
    keep = set()
    by_class: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.label, []).append(i)
    for idx in by_class.values():
        keep.update(rng.permutation(idx)[:max_per_class].tolist())
    return [r for i, r in enumerate(records) if i in keep]


def lesion_split(labels, groups, val_fraction: float = 0.1, seed: int = 0):
    """Stratified train/validation split grouped by lesion: (train_idx, val_idx).

    Images of one lesion land on the same side (scikit-learn ``StratifiedGroupKFold`` with
    ``round(1 / val_fraction)`` folds; the first fold is validation).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1); received {val_fraction}")
    labels = np.asarray(labels)
    n_splits = max(2, int(round(1 / val_fraction)))
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    if counts.min() < n_splits:  # tiny data: fewer folds, so every class can reach validation
        log.warning(
            "a class has %d images, fewer than the %d folds of a %.0f %% split; using %d folds",
            counts.min(),
            n_splits,
            100 * val_fraction,
            max(2, counts.min()),
        )
        n_splits = max(2, int(counts.min()))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_idx), np.sort(val_idx)


def lesion_split_test(
    labels, groups, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
):
    """Stratified train / validation / test split grouped by lesion: (train, val, test) indices.

    The test split is cut first (:func:`lesion_split` with ``test_fraction``), then validation
    from the rest with ``val_fraction / (1 - test_fraction)``, so the three fractions of the whole
    are about ``1 - val - test``, ``val`` and ``test``. Images of one lesion share one split.
    Validation serves model selection and ODIN's threshold and tuning; every reported number is
    measured on test, on which no choice is made.
    """
    if not 0 < test_fraction < 1 or not 0 < val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            "val_fraction and test_fraction must be in (0, 1) with a sum below 1; received "
            f"{val_fraction} and {test_fraction}"
        )
    labels, groups = np.asarray(labels), np.asarray(groups)
    rest, test = lesion_split(labels, groups, test_fraction, seed)
    tr, va = lesion_split(labels[rest], groups[rest], val_fraction / (1 - test_fraction), seed)
    return rest[tr], rest[va], test


def inverse_frequency_weights(labels, num_classes: int) -> list[float]:
    """w_c = N / (C * n_c); a class absent from ``labels`` gets weight 1."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(float)
    n = counts.sum()
    return [float(n / (num_classes * c)) if c > 0 else 1.0 for c in counts]


def class_loss_shares(counts, balanced: bool, weighted: bool) -> list[float]:
    """Each class's share of the expected training loss when every sample's loss is equal.

    Formula:
        p_c = 1 / C (balanced sampling) or n_c / N (plain shuffling)
        w_c = N / (C n_c) (class-weighted CE) or 1
        share_c = p_c w_c / sum_k p_k w_k
    With both on, share_c is proportional to 1 / n_c: the two corrections compound, each
    multiplying class c by N / (C n_c) relative to the data's own prior n_c / N. With one of them
    every class gets 1 / C; with neither, n_c / N.
    """
    counts = np.asarray(counts, float)
    if np.any(counts <= 0):
        raise ValueError(f"every class needs at least one training image; counts {counts.tolist()}")
    n, c = counts.sum(), len(counts)
    p = np.full(c, 1.0 / c) if balanced else counts / n
    w = n / (c * counts) if weighted else np.ones(c)
    return (p * w / np.sum(p * w)).tolist()


# ----------------------------------------------------------------------------- tf.data


@dataclass
class Augment:
    """In-graph augmentation ranges (applied per image with stateless seeded TF ops)."""

    flips: bool = True
    rotation_deg: float = 180.0
    translation: float = 0.1  # fraction of the side
    brightness: float = 0.2  # fraction of 255
    contrast: float = 0.2
    saturation: float = 0.2


def augment_batch(images, seed, aug: Augment):
    """Flips, rotation, translation and colour jitter of a float32 batch in [0, 255].

    ``seed`` is a (2,) int tensor; each image draws its own parameters from it.
    """
    import tensorflow as tf

    b = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 8)

    def uniform(i, lo, hi):
        return tf.random.stateless_uniform([b], seeds[i], lo, hi)

    x = images
    if aug.flips:
        x = tf.where(uniform(0, 0.0, 1.0)[:, None, None, None] < 0.5, tf.reverse(x, [2]), x)
        x = tf.where(uniform(1, 0.0, 1.0)[:, None, None, None] < 0.5, tf.reverse(x, [1]), x)
    if aug.rotation_deg or aug.translation:
        theta = uniform(2, -aug.rotation_deg, aug.rotation_deg) * (math.pi / 180.0)
        tx = uniform(3, -aug.translation, aug.translation) * size
        ty = uniform(4, -aug.translation, aug.translation) * size
        c = (size - 1.0) / 2.0
        cos, sin = tf.cos(theta), tf.sin(theta)
        # output pixel (x, y) samples input (cos(x-c) + sin(y-c) + c - tx, -sin(x-c) + cos(y-c) + c - ty)
        transforms = tf.stack(
            [
                cos,
                sin,
                c - cos * c - sin * c - tx,
                -sin,
                cos,
                c + sin * c - cos * c - ty,
                tf.zeros([b]),
                tf.zeros([b]),
            ],
            axis=1,
        )
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=transforms,
            output_shape=tf.shape(x)[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
    if aug.saturation:
        gray = tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        x = (
            gray
            + (x - gray) * uniform(5, 1 - aug.saturation, 1 + aug.saturation)[:, None, None, None]
        )
    if aug.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + (x - mean) * uniform(6, 1 - aug.contrast, 1 + aug.contrast)[:, None, None, None]
    if aug.brightness:
        x = x + 255.0 * uniform(7, -aug.brightness, aug.brightness)[:, None, None, None]
    return tf.clip_by_value(x, 0.0, 255.0)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    balanced: bool = True,
    augment: Augment | None = None,
):
    """A tf.data pipeline of (float32 image in [0, 255], one-hot label) batches.

    Training with ``balanced=True`` draws each class with equal probability (class-weighted
    random sampling) from an endless stream; give ``steps_per_epoch`` to ``fit``. Evaluation
    datasets go through the images once, in order.
    """
    import tensorflow as tf

    labels = np.asarray(labels, np.int32)

    def to_xy(x, y):
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes)

    if not training:
        return (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .batch(batch_size)
            .map(to_xy)
            .prefetch(2)
        )
    if balanced:
        parts = []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            parts.append(
                tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
                .repeat()
                .shuffle(min(len(idx), 2048), seed=seed + int(c))
            )
        ds = tf.data.Dataset.sample_from_datasets(
            parts, weights=[1.0 / len(parts)] * len(parts), seed=seed
        )
    else:
        ds = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .repeat()
            .shuffle(min(len(labels), 4096), seed=seed)
        )
    ds = ds.batch(batch_size, drop_remainder=True).map(to_xy)
    if augment is not None:
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, i: (
                augment_batch(xy[0], tf.stack([tf.cast(seed, tf.int64), i]), augment),
                xy[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(2)

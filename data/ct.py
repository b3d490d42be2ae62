"""CT tumour slices for Keras: the public entry points of the CT data pipeline.

    cfg = CTDataConfig(task="lung", data_dir=None, image_size=128)   # None: built-in phantom
    data = prepare_ct_data(cfg, run_dir="runs/lung-glf")              # writes split.json there
    model.fit(data.train(8), validation_data=data.val(8), epochs=...)
    data.test(8)            # every slice of the test patients, in data.metadata("test") order
    check_ct_data(cfg)      # list of every problem found, for train.py --check-data

Sources (detected from ``data_dir``):

* ``msd``: a Medical Segmentation Decathlon folder with ``dataset.json`` (Task06_Lung: label 1
  is tumour; Task03_Liver with the liver task: label 2 is tumour).
* ``lits``: ``volume-N.nii`` / ``segmentation-N.nii`` (label 2 is tumour).
* ``hdf5``: a patch file (``images``/``labels`` (N, 1, H, W)) or a folder of them, or explicit
  ``train_files``/``val_files``/``test_files``. In a folder, files are assigned by name: a
  name with "test" holds test cases, one with "train" training cases, one with "val"
  validation cases when a train file exists, otherwise training cases (so the folder
  ``msd_lung_patches`` trains on the 13 patients of ``val_patches.h5`` with ``val_fraction``
  of them held out for validation, and tests on the 13 of ``test_patches.h5``).
* ``slices``: a folder with ``images/`` and ``masks/`` (PNG/JPEG), see :mod:`data.slices`.
* ``phantom``: no ``data_dir``: the synthetic phantom of :mod:`data.phantom`, written in the
  MSD (lung) or LiTS (liver) layout and read by the same loaders.

Every source goes through one preprocessing cache (:mod:`data.cache`); the split is by case
(patient/volume), seeded; training and validation use every tumour slice plus
``tumour_free_ratio`` tumour-free slices per tumour slice (seeded), testing uses every slice.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from core.options import option
from data import validate
from data.cache import (
    IMAGE_SCALE,
    SliceCache,
    Unit,
    build_cache,
    cache_key,
    is_complete,
    read_headers,
)
from data.msd import list_msd_cases, load_canonical, nifti_shape
from data.validate import DataError
from data.window import DEFAULT_WINDOWS, apply_window

SOURCES = ("phantom", "msd", "lits", "hdf5", "slices")
SPLITS = ("train", "val", "test")
# Label values and the tumour label per task (MSD Task06: 0/1; LiTS and MSD Task03: 0/1/2).
TASK_LABELS = {"lung": ((0, 1), 1), "liver": ((0, 1, 2), 2)}

REAL_DATA_HINT = {
    "lung": "download MSD Task06_Lung (http://medicaldecathlon.com) and pass --data-dir "
            "/path/to/Task06_Lung, or --data-dir ../shared/data/msd_lung_patches for the HDF5 patches",
    "liver": "download LiTS (volume-N.nii / segmentation-N.nii) and pass --data-dir /path/to/LiTS",
}


@dataclasses.dataclass
class CTDataConfig:
    """Where the CT slices come from and how they are prepared.

    Every field is a command-line flag through ``training.config.add_arguments``; optional
    fields are spelled ``Optional[X]`` because that parser does not read ``X | None``.
    """

    task: str = option("lung", "tumour task: lung (MSD Task06) or liver (LiTS)", choices=("lung", "liver"))
    data_dir: Optional[str] = option(  # noqa: UP045
        None, "data folder or HDF5 file (MSD, LiTS, HDF5 patches, images/+masks/); none: built-in synthetic phantom")
    image_size: int = option(512, "model input size in pixels (paper: 512; smaller for CPU runs)")
    window: Optional[tuple[float, float]] = option(  # noqa: UP045
        None, "Hounsfield window low,high scaled to [0, 1], written --window=-1000,400 (none: lung -1000,400, liver -200,250; no window for HDF5/slice images already in [0, 1])")
    tumour_free_ratio: float = option(0.5, "tumour-free slices per tumour slice kept for training/validation (seeded; 0: tumour slices only)")
    val_fraction: float = option(0.15, "fraction of training cases (patients) held out for validation")
    test_fraction: float = option(0.2, "fraction of cases (patients) held out for testing")
    seed: int = option(0, "seed of the split, the slice selection, the shuffle and the augmentation")
    cache_dir: Optional[str] = option(  # noqa: UP045
        None, "preprocessing cache folder (none: $KERAS_LOSSES_CACHE or $XDG_CACHE_HOME/keras_losses, else ~/.cache/keras_losses)")
    augment: bool = option(True, "flips, rotations up to 10 degrees and B-spline elastic deformation on training batches")
    fit: str = option("resize", "bring slices to image_size by scaling (resize) or by centre crop/zero padding (crop)", choices=("resize", "crop"))
    allow_upsample: bool = option(False, "allow slices smaller than image_size (upscaled or padded); off: an error")
    train_files: list[str] = option([], "HDF5 patch files for training (comma separated; overrides data_dir's file roles)")
    val_files: list[str] = option([], "HDF5 patch files for validation")
    test_files: list[str] = option([], "HDF5 patch files for testing")
    patches_per_case: int = option(10, "HDF5 without case ids: consecutive patches per patient (msd_lung_patches: 130 = 13 x 10)")
    phantom_volumes: int = option(12, "built-in phantom: number of volumes")
    phantom_size: int = option(512, "built-in phantom: slice size in pixels (MSD/LiTS: 512; smaller for quick tests)")
    phantom_slices: int = option(40, "built-in phantom: axial slices per volume")
    verbose: bool = option(True, "print the progress of the cache pass and what data is in use")

    def __post_init__(self):
        if self.task not in TASK_LABELS:
            raise ValueError(f"task must be 'lung' or 'liver'; received {self.task!r}")
        if self.window is not None:
            if len(self.window) != 2 or not float(self.window[1]) > float(self.window[0]):
                raise ValueError(f"window must be (low, high) with high > low; received {self.window!r}")
            self.window = (float(self.window[0]), float(self.window[1]))
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8; received {self.image_size}")
        if self.tumour_free_ratio < 0:
            raise ValueError(f"tumour_free_ratio must be >= 0; received {self.tumour_free_ratio}")
        validate.raise_problems(
            validate.check_fractions(val_fraction=self.val_fraction, test_fraction=self.test_fraction)
        )
        if self.fit not in ("resize", "crop"):
            raise ValueError(f"fit must be 'resize' or 'crop'; received {self.fit!r}")
        for name in ("train_files", "val_files", "test_files"):
            setattr(self, name, [str(p) for p in getattr(self, name) or []])


# --------------------------------------------------------------------------- source detection


def detect_source(cfg: CTDataConfig) -> tuple[str, Path | None]:
    """``(source, root)`` for the configured data: one of :data:`SOURCES`."""
    if cfg.train_files or cfg.test_files or cfg.val_files:
        return "hdf5", Path(cfg.data_dir) if cfg.data_dir else None
    if cfg.data_dir is None:
        return "phantom", None
    root = Path(cfg.data_dir).expanduser()
    if root.is_file():
        if root.suffix.lower() in (".h5", ".hdf5"):
            return "hdf5", root
        raise DataError(f"--data-dir {root}: a file must be HDF5 patches (.h5); received {root.name}")
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: no such file or folder")
    if (root / "dataset.json").is_file():
        return "msd", root
    from data.lits import is_lits_folder
    from data.slices import is_slice_folder

    if is_slice_folder(root):
        return "slices", root
    if any(p.suffix.lower() in (".h5", ".hdf5") for p in root.iterdir()):
        return "hdf5", root
    if is_lits_folder(root):
        return "lits", root
    raise DataError(
        f"--data-dir {root}: not a known CT layout; expected dataset.json (MSD), volume-N.nii + "
        "segmentation-N.nii (LiTS), .h5 patch files, or images/ and masks/ folders of slices"
    )


def _hdf5_roles(cfg: CTDataConfig, root: Path | None) -> dict[str, list[Path]]:
    """Which HDF5 files hold training, validation and test cases."""
    if cfg.train_files or cfg.val_files or cfg.test_files:
        roles = {"train": cfg.train_files, "val": cfg.val_files, "test": cfg.test_files}
        return {k: [Path(p).expanduser() for p in v] for k, v in roles.items()}
    if root.is_file():
        return {"train": [root], "val": [], "test": []}
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".h5", ".hdf5") and not p.name.startswith("."))
    roles = {"train": [], "val": [], "test": []}
    has_train = any("train" in p.stem.lower() for p in files)
    for p in files:
        stem = p.stem.lower()
        if "test" in stem:
            roles["test"].append(p)
        elif "val" in stem and has_train:
            roles["val"].append(p)
        else:
            roles["train"].append(p)
    return roles


# --------------------------------------------------------------------------- units per source


def _volume_units(cases, task: str, window) -> list[Unit]:
    """One cache unit per NIfTI case; its header check runs before any volume is decoded."""
    allowed, tumour = TASK_LABELS[task]
    return [Unit(name=case.case_id, n_slices=None, files=[case.image, case.label],
                 load=_volume_loader(case, allowed, tumour, window), header=_volume_header(case))
            for case in cases]


def _volume_header(case):
    def header() -> int:
        shape = nifti_shape(case.image)
        validate.raise_problems(validate.check_shapes_match(shape, nifti_shape(case.label), case.image, case.label))
        return shape[2]

    return header


def _volume_loader(case, allowed, tumour, window):
    def load():
        hu = load_canonical(case.image, np.float32)
        labels = load_canonical(case.label, np.float32)  # LiTS stores some segmentations as float
        # checked as stored, before the cast (a 0.5 is an error, never rounded away);
        # shapes were compared by the header check, which every cache pass runs first
        validate.raise_problems(validate.check_labels(labels, case.label, allowed))
        labels = np.rint(labels).astype(np.int16)
        # Axial slices along the last (canonical S) axis, turned so anterior is up as on screen.
        images = np.rot90(np.moveaxis(apply_window(hu, window), 2, 0), axes=(1, 2))
        masks = np.rot90(np.moveaxis(labels == tumour, 2, 0), axes=(1, 2))
        n = images.shape[0]
        return images, masks, [case.case_id] * n, list(range(n))

    return load


def _patch_units(roles, cfg: CTDataConfig, problems) -> tuple[list[Unit], dict[str, str]]:
    from data.patches import patch_file_info, read_patches

    units, role_of_case = [], {}
    for role, files in roles.items():
        for path in files:
            try:
                (n, _, _), ids = patch_file_info(path, cfg.patches_per_case)
            except DataError as err:
                if problems is None:
                    raise
                problems.append(str(err))
                continue
            for case_id in ids:
                role_of_case[case_id] = role

            def load(path=path, ids=ids):
                images, masks = read_patches(path, cfg.window)
                return images, masks, ids, [i for i in range(len(ids))]

            units.append(Unit(name=path.name, n_slices=n, files=[path], load=load))
    return units, role_of_case


def _slice_units(root: Path) -> list[Unit]:
    from data.slices import list_slice_pairs, read_pair

    by_case: dict[str, list] = {}
    for pair in list_slice_pairs(root):
        by_case.setdefault(pair.case_id, []).append(pair)
    if len(by_case) == 1 and len(next(iter(by_case.values()))) > 1:
        # The name pattern put every file into one case: treat each slice as its own case.
        by_case = {p.image.stem: [p] for p in next(iter(by_case.values()))}
    units = []
    for case_id, pairs in by_case.items():
        def load(pairs=pairs, case_id=case_id):
            read = [read_pair(p) for p in pairs]
            return [r[0] for r in read], [r[1] for r in read], [case_id] * len(pairs), [p.slice_index for p in pairs]

        units.append(Unit(name=case_id, n_slices=len(pairs), files=[f for p in pairs for f in (p.image, p.mask)], load=load))
    return units


def _with_size_check(unit: Unit, cfg: CTDataConfig) -> Unit:
    """Refuse slices smaller than the model input unless ``allow_upsample``."""
    inner = unit.load

    def load():
        images, masks, ids, idx = inner()
        if not cfg.allow_upsample:
            for image in images:
                validate.raise_problems(validate.check_min_size(
                    image.shape, (cfg.image_size, cfg.image_size), unit.files[0] if unit.files else unit.name,
                    hint=f"pass --image-size {min(image.shape)} or less (or --allow-upsample)"))
        return images, masks, ids, idx

    return dataclasses.replace(unit, load=load)


# --------------------------------------------------------------------------- split and selection


def make_split(case_ids, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Seeded split of case ids: at least one case in each split with a positive fraction."""
    case_ids = sorted(set(case_ids))
    rng = np.random.default_rng([seed, 1])
    order = [case_ids[i] for i in rng.permutation(len(case_ids))]
    n = len(order)

    def count(fraction, available):
        return 0 if fraction <= 0 or available < 2 else min(max(1, round(fraction * n)), available - 1)

    n_test = count(test_fraction, n)
    n_val = count(val_fraction, n - n_test)
    return {"train": sorted(order[n_test + n_val:]), "val": sorted(order[n_test:n_test + n_val]),
            "test": sorted(order[:n_test])}


def _split_by_role(role_of_case: dict[str, str], cfg: CTDataConfig) -> dict[str, list[str]]:
    """HDF5 files with roles: test files are the test set; validation comes from val files or,
    if there are none, from ``val_fraction`` of the training cases."""
    by_role = {r: sorted(c for c, role in role_of_case.items() if role == r) for r in SPLITS}
    if not by_role["test"]:
        pool = by_role["train"] + by_role["val"]
        return make_split(pool, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if by_role["val"]:
        return by_role
    inner = make_split(by_role["train"], cfg.val_fraction, 0.0, cfg.seed)
    return {"train": inner["train"], "val": inner["val"], "test": by_role["test"]}


def _split_source(split) -> str:
    """How a message names a split: its file, or "the given split" for a dict."""
    return str(split) if isinstance(split, (str, Path)) else "the given split"


def _load_split(split) -> dict[str, list[str]]:
    split_arg = split
    if isinstance(split, (str, Path)):
        path = Path(split)
        try:
            split = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read the split: {err}") from None
    if not isinstance(split, dict):
        raise DataError(f"{_split_source(split_arg)}: expected a JSON object of case id lists; found a {type(split).__name__}")
    missing = [k for k in SPLITS if k not in split]
    if missing:
        raise DataError(f"{_split_source(split_arg)}: expected 'train', 'val' and 'test' case id lists; "
                        f"missing {missing}")
    validate.raise_problems(validate.check_disjoint({k: split[k] for k in SPLITS}, _split_source(split_arg)))
    return {k: [str(c) for c in split[k]] for k in SPLITS}


# --------------------------------------------------------------------------- the data object


class CTData:
    """Cached CT slices with a patient split; builds the ``tf.data`` pipelines.

    Attributes: ``config``, ``source`` (one of :data:`SOURCES`), ``synthetic`` (bool),
    ``root`` (data folder), ``split`` (case ids per split), ``cache`` (:class:`SliceCache`).
    """

    def __init__(self, config: CTDataConfig, source: str, root, cache: SliceCache, split: dict[str, list[str]]):
        self.config = config
        self.source = source
        self.synthetic = source == "phantom"
        self.root = root
        self.cache = cache
        self.split = split
        self._selection: dict[tuple[str, bool], np.ndarray] = {}

    @property
    def image_size(self) -> int:
        return self.cache.size

    def indices(self, split: str, all_slices: bool = False) -> np.ndarray:
        """Cache rows of ``split``: every slice, or every tumour slice plus tumour-free slices at
        ``tumour_free_ratio`` (a seeded draw, fixed for the run). Sorted by case and slice."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; received {split!r}")
        key = (split, bool(all_slices))
        if key not in self._selection:
            rows = np.flatnonzero(np.isin(self.cache.case_id, self.split[split]))
            if not all_slices:
                tumour = rows[self.cache.tumour_px[rows] > 0]
                free = rows[self.cache.tumour_px[rows] == 0]
                n_free = min(len(free), int(round(self.config.tumour_free_ratio * len(tumour))))
                rng = np.random.default_rng([self.config.seed, 2, SPLITS.index(split)])
                rows = np.sort(np.concatenate([tumour, rng.choice(free, n_free, replace=False)]))
            self._selection[key] = rows
        return self._selection[key]

    def num_slices(self, split: str, all_slices: bool | None = None) -> int:
        return len(self.indices(split, split == "test" if all_slices is None else all_slices))

    def metadata(self, split: str = "test", all_slices: bool = True) -> list[dict]:
        """One dict per slice in dataset order: ``case_id``, ``slice_index``, ``tumour_px`` (at
        the model size) and ``tumour_px_source`` (at the source resolution, e.g. 512x512)."""
        rows = self.indices(split, all_slices)
        return [{"case_id": str(self.cache.case_id[r]), "slice_index": int(self.cache.slice_index[r]),
                 "tumour_px": int(self.cache.tumour_px[r]), "tumour_px_source": int(self.cache.tumour_px_source[r])}
                for r in rows]

    @property
    def test_metadata(self) -> list[dict]:
        return self.metadata("test", all_slices=True)

    def dataset(self, split: str, batch_size: int, *, shuffle: bool = False, augment: bool = False,
                all_slices: bool = False, drop_remainder: bool = False):
        """``tf.data.Dataset`` of ``(image, mask)`` batches, each (B, S, S, 1) float32; not repeated."""
        import tensorflow as tf

        rows = self.indices(split, all_slices)
        if len(rows) == 0:
            raise DataError(f"split '{split}' holds no slices (cases: {len(self.split[split])}); "
                            "adjust --val-fraction/--test-fraction or the data")
        size, cache, seed = self.image_size, self.cache, self.config.seed

        def read(batch_rows):
            return cache.read("images", batch_rows), cache.read("masks", batch_rows)

        def to_float(images, masks):
            images = tf.reshape(tf.cast(images, tf.float32) * (1.0 / IMAGE_SCALE), [-1, size, size, 1])
            masks = tf.reshape(tf.cast(masks, tf.float32), [-1, size, size, 1])
            return images, masks

        ds = tf.data.Dataset.from_tensor_slices(rows.astype(np.int64))
        if shuffle:
            ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(lambda r: tf.numpy_function(read, [r], [tf.uint16, tf.uint8], stateful=False),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if augment:
            from data.augment import augment_batch

            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda pair, s: augment_batch(pair[0], pair[1], s),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(2)  # a fixed depth keeps memory bounded (autotune may buffer many 512x512 batches)

    def train(self, batch_size: int, drop_remainder: bool = False):
        """Shuffled (reshuffled every epoch), augmented if ``config.augment``, selected slices."""
        return self.dataset("train", batch_size, shuffle=True, augment=self.config.augment,
                            drop_remainder=drop_remainder)

    def val(self, batch_size: int, all_slices: bool = False):
        """Validation patients, selected slices (as training), in order, not augmented."""
        return self.dataset("val", batch_size, all_slices=all_slices)

    def test(self, batch_size: int, all_slices: bool = True):
        """Test patients, every slice by default, in :meth:`metadata` order, not augmented."""
        return self.dataset("test", batch_size, all_slices=all_slices)

    def describe(self) -> str:
        """One line: source, cases and slices per split, size and window."""
        parts = []
        for s in SPLITS:
            rows = self.indices(s, all_slices=(s == "test"))
            n_tumour = int((self.cache.tumour_px[rows] > 0).sum())
            parts.append(f"{s} {len(self.split[s])} cases/{len(rows)} slices ({n_tumour} with tumour)")
        window = self.cache.manifest.get("window")
        where = "built-in synthetic phantom" if self.synthetic else f"{self.source} {self.root}"
        return (f"{self.config.task} CT from {where}: " + ", ".join(parts)
                + f"; {self.image_size}x{self.image_size}, window {tuple(window) if window else 'none (already 0..1)'}")

    def split_record(self) -> dict:
        """What ``split.json`` holds: the case ids and how they were drawn."""
        return {"source": self.source, "data_dir": str(self.root) if self.root else None,
                "seed": self.config.seed, "val_fraction": self.config.val_fraction,
                "test_fraction": self.config.test_fraction, **self.split}


# --------------------------------------------------------------------------- entry points


def _resolve(cfg: CTDataConfig, problems: list[str] | None):
    """Source, root, units, per-case roles (HDF5) and the cache settings, checking headers."""
    from data.phantom import PhantomSpec, phantom_dir

    source, root = detect_source(cfg)
    window = cfg.window
    role_of_case = None
    if source in ("phantom", "msd", "lits"):
        window = window or DEFAULT_WINDOWS[cfg.task]
        if source == "phantom":
            root = phantom_dir(cfg.task, PhantomSpec(n_volumes=cfg.phantom_volumes, size=cfg.phantom_size,
                                                       n_slices=cfg.phantom_slices),
                               root=Path(cfg.cache_dir) / "phantoms" if cfg.cache_dir else None, verbose=cfg.verbose)
        if source == "msd" or (source == "phantom" and cfg.task == "lung"):
            cases = list_msd_cases(root, "training", problems=problems)
        else:
            from data.lits import list_lits_cases

            cases = list_lits_cases(root)
        units = _volume_units(cases, cfg.task, window)
    elif source == "hdf5":
        units, role_of_case = _patch_units(_hdf5_roles(cfg, root), cfg, problems)
    else:
        if window is not None:
            raise DataError(f"--window does not apply to a folder of PNG/JPEG slices ({root}): they are read scaled to [0, 1]")
        units = _slice_units(root)
    if not units and not problems:
        raise DataError(f"{root}: no cases found")
    units = [_with_size_check(u, cfg) for u in units]
    settings = {"task": cfg.task, "source": source, "window": window, "size": cfg.image_size, "fit": cfg.fit,
                "tumour_label": TASK_LABELS[cfg.task][1], "patches_per_case": cfg.patches_per_case,
                "allow_upsample": cfg.allow_upsample}
    return source, root, units, role_of_case, settings


def _cache_folder(cfg: CTDataConfig) -> Path:
    from data.cache import cache_root

    return (Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_root()) / "ct"


def prepare_ct_data(cfg: CTDataConfig, run_dir=None, split=None) -> CTData:
    """Detect the source, build or reuse the cache, split by case, and return :class:`CTData`.

    ``split``: a dict of case ids per split or the path of a ``split.json`` to reuse (as
    evaluation and resumed runs do); without it, ``run_dir/split.json`` is reused if present,
    else a new seeded split is drawn. With ``run_dir``, the split is written there as
    ``split.json``. Raises :class:`DataError` naming the file for every kind of bad input,
    before any training starts.
    """
    source, root, units, role_of_case, settings = _resolve(cfg, problems=None)
    if cfg.verbose and source == "phantom":
        print(f"Using SYNTHETIC data: the built-in {cfg.task} phantom at {root} (no --data-dir given). "
              f"For real data, {REAL_DATA_HINT[cfg.task]}.", flush=True)
    files = [f for u in units for f in u.files]
    key = cache_key(files, settings)
    path = _cache_folder(cfg) / key
    if is_complete(path):
        cache = SliceCache(path)
        if cfg.verbose:
            print(f"cache: reusing {len(cache)} slices from {path}", flush=True)
    else:
        manifest = {**settings, "root": str(root), "n_files": len(files)}
        cache = build_cache(path, units, cfg.image_size, cfg.fit, manifest, verbose=cfg.verbose)

    run_split = Path(run_dir) / "split.json" if run_dir is not None else None
    if split is None and run_split is not None and run_split.is_file():
        split = run_split
    split_source = "the split"
    if split is not None:
        split_source = _split_source(split)
        split = _load_split(split)
        known = set(cache.case_id.tolist())
        unknown = sorted({c for s in SPLITS for c in split[s]} - known)
        if unknown:
            raise DataError(f"{split_source} names {len(unknown)} case(s) absent from {root}: {unknown[:5]}")
    elif role_of_case is not None:
        split = _split_by_role(role_of_case, cfg)
    else:
        split = make_split(cache.case_id.tolist(), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    overlap = set(split["train"]) & (set(split["val"]) | set(split["test"])) | (set(split["val"]) & set(split["test"]))
    if overlap:
        raise DataError(f"{split_source} puts case(s) {sorted(overlap)[:5]} in two splits")

    data = CTData(cfg, source, root, cache, split)
    if not split["train"]:
        raise DataError(f"{split_source} leaves no training cases ({len(set(cache.case_id.tolist()))} cases in {root})")
    in_train = np.isin(cache.case_id, split["train"])
    validate.raise_problems(validate.check_foreground(
        int((cache.tumour_px[in_train] > 0).sum()), int(in_train.sum()), root, "training slices'"))
    for s in SPLITS:
        if not split[s]:  # too few cases for a validation or test split: .val()/.test() say so
            continue
        if data.num_slices(s, all_slices=(s == "test")) == 0:
            raise DataError(
                f"zero slices left in the '{s}' split after selection ({len(split[s])} cases from {root}, "
                f"tumour_free_ratio {cfg.tumour_free_ratio}): the cases hold no tumour slices at "
                f"{cfg.image_size}x{cfg.image_size}")
    if run_split is not None:
        from core.io import write_json

        write_json(run_split, data.split_record())
    if cfg.verbose:
        print(data.describe(), flush=True)
    return data


def check_ct_data(cfg: CTDataConfig) -> list[str]:
    """Every problem found in the configured data source, each naming its file; [] if none.

    Reads every file once (the same pass builds the cache, so a clean check is not wasted),
    then checks the split and the slice selection.
    """
    problems: list[str] = []
    try:
        source, root, units, role_of_case, settings = _resolve(cfg, problems)
    except DataError as err:
        return problems + [str(err)]
    units = read_headers(units, problems)
    files = [f for u in units for f in u.files]
    key = cache_key(files, settings)
    path = _cache_folder(cfg) / key
    if problems:  # some files failed their header check: decode the rest, keep no cache
        for unit in units:
            try:
                unit.load()
            except DataError as err:
                problems.append(str(err))
        return problems
    if not is_complete(path):
        manifest = {**settings, "root": str(root), "n_files": len(files)}
        build_cache(path, units, cfg.image_size, cfg.fit, manifest, verbose=cfg.verbose, problems=problems)
        if problems:
            return problems
    try:
        prepare_ct_data(dataclasses.replace(cfg, verbose=False))
    except DataError as err:
        problems.append(str(err))
    return problems

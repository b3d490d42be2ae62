"""Preprocessing cache: windowed, resized slices in ``.npy`` arrays, read back slice by slice.

One pass over the source decodes each volume (or patch file, or slice folder case) once,
windows it, resizes every axial slice to the model size and appends it to

    <cache>/<key>/images.npy   (N, S, S) uint16: round(value * 65535) for values in [0, 1]
    <cache>/<key>/masks.npy    (N, S, S) uint8 {0, 1}
    <cache>/<key>/index.npz    case id, slice index, tumour pixels (model size and source size)
    <cache>/<key>/manifest.json

``key`` hashes the source (every file's path, size and modification time) and the settings
(task, window, size, fit, tumour label, cache version), so a changed file or setting builds a
new cache and an unchanged one is reused without opening a single source file. The folder is
written under a temporary name and renamed when complete, so a killed build is never reused.

Reads use positional file reads (``os.pread``) of one slice's bytes, not a memory map, so the
resident memory of a training process does not grow with the size of the cache; the arrays
are ordinary ``.npy`` files that ``np.load(path, mmap_mode="r")`` also opens.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.io import atomic_folder
from data.validate import DataError


def cache_root() -> Path:
    """The user cache folder of this package (phantoms and preprocessing caches live here)."""
    if os.environ.get("KERAS_LOSSES_CACHE"):
        return Path(os.environ["KERAS_LOSSES_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keras_losses"

CACHE_VERSION = 2
# Images as 16-bit fixed point: 2 bytes a pixel (spacing 1/65535, 0.02 HU in the lung window),
# and turned into float32 by a plain integer cast, several times faster than float16 decoding.
IMAGE_DTYPE = np.uint16
IMAGE_SCALE = 65535.0
MASK_DTYPE = np.uint8


@dataclass
class Unit:
    """One item of the source the cache pass decodes at once: a volume, a patch file, a case.

    ``load()`` returns ``(images (n, h, w) float32 in [0, 1], masks (n, h, w) bool,
    case ids (n,), slice indices (n,))``. ``n_slices`` comes from headers; where reading them
    costs a file open, ``header()`` returns it and is only called when a cache is built, so a
    reused cache opens no source file at all.
    """

    name: str
    n_slices: int | None
    load: Callable[[], tuple[np.ndarray, np.ndarray, Sequence[str], Sequence[int]]]
    files: list[Path] = field(default_factory=list)
    header: Callable[[], int] | None = None


def read_headers(units: Sequence[Unit], problems: list[str] | None = None) -> list[Unit]:
    """Fill in ``n_slices`` from each unit's ``header()``; the units whose header is sound.

    A bad header raises its :class:`DataError`, or with ``problems`` is appended to it.
    """
    good = []
    for unit in units:
        if unit.n_slices is None:
            try:
                unit.n_slices = unit.header()
            except DataError as err:
                if problems is None:
                    raise
                problems.append(str(err))
                continue
        good.append(unit)
    return good


def cache_key(files: Sequence[Path], settings: dict) -> str:
    """Hash of every source file's identity (path, size, mtime) and the preprocessing settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True, default=str).encode())
    for path in files:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def fit_slice(image: np.ndarray, mask: np.ndarray, size: int, fit: str = "resize"):
    """Bring one slice to ``size`` x ``size``.

    ``fit="resize"`` scales the whole slice (area averaging when shrinking, bilinear when
    growing; the mask is scaled the same way and thresholded at 0.5, so it covers the pixels
    the image's tumour covers). ``fit="crop"`` keeps the scale: centre crop, or zero padding
    when the slice is smaller.
    """
    import cv2

    h, w = image.shape
    if fit == "resize":
        if (h, w) == (size, size):
            return image, mask
        interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interp)
        mask = cv2.resize(mask.astype(np.float32), (size, size), interpolation=interp) >= 0.5
        return image, mask
    if fit == "crop":
        out_i = np.zeros((size, size), np.float32)
        out_m = np.zeros((size, size), bool)
        ch, cw = min(h, size), min(w, size)
        sy, sx = (h - ch) // 2, (w - cw) // 2  # source offsets
        dy, dx = (size - ch) // 2, (size - cw) // 2  # destination offsets
        out_i[dy:dy + ch, dx:dx + cw] = image[sy:sy + ch, sx:sx + cw]
        out_m[dy:dy + ch, dx:dx + cw] = mask[sy:sy + ch, sx:sx + cw]
        return out_i, out_m
    raise ValueError(f"fit must be 'resize' or 'crop'; received {fit!r}")


def build_cache(path, units: Sequence[Unit], size: int, fit: str, manifest: dict, verbose: bool = True,
                problems: list[str] | None = None) -> SliceCache | None:
    """Decode every unit once and write the cache folder ``path`` (atomically).

    A unit that fails raises its :class:`DataError`; with a ``problems`` list, its message is
    appended instead, the pass goes on to report every bad unit, and no cache is kept (returns
    None) if any failed.
    """
    n_problems = len(problems) if problems is not None else 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    units = read_headers(units)
    total = sum(u.n_slices for u in units)
    start = time.perf_counter()
    with atomic_folder(path) as tmp:  # a cache another process finished first wins
        img_file = open(tmp / "images.npy", "wb")
        msk_file = open(tmp / "masks.npy", "wb")
        with img_file, msk_file:
            # Stream slices into the arrays: only one unit is ever in memory.
            for f, dtype in ((img_file, IMAGE_DTYPE), (msk_file, MASK_DTYPE)):
                np.lib.format.write_array_header_2_0(
                    f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                        "shape": (total, size, size)})
            case_ids, slice_index, px, px_source, unit_of = [], [], [], [], []
            for k, unit in enumerate(units):
                t0 = time.perf_counter()
                try:
                    images, masks, ids, idx = unit.load()
                    if len(images) != unit.n_slices:
                        raise DataError(f"{unit.name}: header says {unit.n_slices} slices but {len(images)} were read")
                except DataError as err:
                    if problems is None:
                        raise
                    problems.append(str(err))
                    continue
                if problems is not None and len(problems) > n_problems:
                    continue  # the cache is discarded anyway: only check the remaining units
                for image, mask in zip(images, masks, strict=True):
                    fitted, fitted_mask = fit_slice(image, mask, size, fit)
                    img_file.write(np.rint(np.clip(fitted, 0.0, 1.0) * IMAGE_SCALE).astype(IMAGE_DTYPE).tobytes())
                    msk_file.write(np.ascontiguousarray(fitted_mask, dtype=MASK_DTYPE).tobytes())
                    px.append(int(fitted_mask.sum()))
                    px_source.append(int(mask.sum()))
                case_ids.extend(str(c) for c in ids)
                slice_index.extend(int(i) for i in idx)
                unit_of.extend([k] * len(images))
                if verbose:
                    n_tumour = int(sum(1 for m in masks if m.any()))
                    print(f"cache [{k + 1}/{len(units)}] {unit.name}: {len(images)} slices, "
                          f"{n_tumour} with tumour ({time.perf_counter() - t0:.1f} s)", flush=True)
                del images, masks
        if problems is not None and len(problems) > n_problems:
            return None
        np.savez(tmp / "index.npz", case_id=np.array(case_ids, dtype=str), slice_index=np.array(slice_index, np.int32),
                 tumour_px=np.array(px, np.int64), tumour_px_source=np.array(px_source, np.int64),
                 unit=np.array(unit_of, np.int32))
        manifest = {**manifest, "cache_version": CACHE_VERSION, "n_slices": total, "size": size,
                    "units": [u.name for u in units], "build_seconds": round(time.perf_counter() - start, 2)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    if verbose:
        print(f"cache: {total} slices of {size}x{size} written to {path} in {time.perf_counter() - start:.1f} s", flush=True)
    return SliceCache(path)


def is_complete(path) -> bool:
    path = Path(path)
    return all((path / name).is_file() for name in ("images.npy", "masks.npy", "index.npz", "manifest.json"))


class SliceCache:
    """Read access to a built cache folder: per-slice metadata and positional slice reads."""

    def __init__(self, path):
        self.path = Path(path)
        if not is_complete(self.path):
            raise DataError(f"{self.path}: incomplete preprocessing cache (delete it to rebuild)")
        try:
            self.manifest = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
            with np.load(self.path / "index.npz", allow_pickle=False) as index:
                self.case_id = index["case_id"]
                self.slice_index = index["slice_index"]
                self.tumour_px = index["tumour_px"]
                self.tumour_px_source = index["tumour_px_source"]
            self.size = int(self.manifest["size"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise DataError(f"{self.path}: corrupt preprocessing cache (delete the folder to rebuild "
                            f"it): {type(err).__name__}: {err}") from None
        self._layout = {}
        for name, dtype in (("images", IMAGE_DTYPE), ("masks", MASK_DTYPE)):
            try:
                array = np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:  # a truncated file does not map
                raise DataError(f"{self.path / (name + '.npy')}: corrupt preprocessing cache "
                                f"(delete the folder to rebuild it): {err}") from None
            if array.shape != (len(self.case_id), self.size, self.size) or array.dtype != dtype:
                raise DataError(f"{self.path / (name + '.npy')}: shape {array.shape} {array.dtype} does not "
                                f"match the index ({len(self.case_id)}, {self.size}, {self.size}) {np.dtype(dtype)}")
            self._layout[name] = (int(array.offset), np.dtype(dtype))
            del array
        self._fds: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.case_id)

    def _fd(self, name: str) -> int:
        # One descriptor per process (tf.data may call from several threads; pread is thread safe).
        if name not in self._fds:
            self._fds[name] = os.open(self.path / f"{name}.npy", os.O_RDONLY)
        return self._fds[name]

    def read(self, name: str, indices) -> np.ndarray:
        """Slices ``indices`` of ``name`` ("images" or "masks") as an (n, S, S) array of the
        stored dtype (images: uint16, value * 65535; see :meth:`read_images`)."""
        offset, dtype = self._layout[name]
        nbytes = self.size * self.size * dtype.itemsize
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(indices), self.size, self.size), dtype=dtype)
        flat = out.reshape(-1).view(np.uint8)
        fd = self._fd(name)
        # One positional read per run of consecutive rows (test batches are runs).
        start = 0
        while start < len(indices):
            stop = start + 1
            while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
                stop += 1
            want = (stop - start) * nbytes
            got = os.preadv(fd, [flat[start * nbytes:stop * nbytes]], offset + int(indices[start]) * nbytes)
            if got != want:
                raise DataError(f"{self.path / (name + '.npy')}: truncated (rows {int(indices[start])}.. are short)")
            start = stop
        return out

    def read_images(self, indices) -> np.ndarray:
        """Slices ``indices`` as float32 in [0, 1]."""
        return self.read("images", indices).astype(np.float32) / IMAGE_SCALE

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

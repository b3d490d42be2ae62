"""Synthetic CT phantoms written in the real on-disk layouts, so the default run reads real files.

* :func:`make_lung_phantom` writes an MSD Task06_Lung folder (``dataset.json``,
  ``imagesTr/lung_XXX.nii.gz`` int16 Hounsfield units, ``labelsTr/lung_XXX.nii.gz`` with
  1 = tumour): body in soft tissue, two lungs near -800 HU, vessels running through the lungs
  (small bright circles in axial slices, the hard negatives of the real task) and small
  ellipsoidal tumours.
* :func:`make_liver_phantom` writes a LiTS folder (``volume-N.nii`` / ``segmentation-N.nii``,
  0 background, 1 liver, 2 tumour); every other volume is stored left-right flipped with a
  matching affine, as orientation differs between real LiTS volumes, so the canonical
  reorientation of the loader is exercised.

Tumour sizes follow the range of the GLF paper (Seo et al. 2021, Fig. 4a/c): the largest
axial cross-section of a tumour is drawn log-uniformly between ``min_area`` and ``max_area``
pixels at 512x512 (default 30..524 px, i.e. up to 0.2 % of the slice); the slices near a
tumour's poles are smaller still, so most tumour slices hold under 100 px (0.04 % of the
slice). Each volume also holds slices without any tumour.

:func:`phantom_dir` generates a phantom once under the user cache folder
(:func:`cache_root`: ``$KERAS_LOSSES_CACHE``, else ``$XDG_CACHE_HOME/keras_losses``, else
``~/.cache/keras_losses``) and returns its path on later calls.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.io import atomic_folder
from data.cache import cache_root

PHANTOM_VERSION = 2  # bump when the generator changes, so old cached phantoms are not reused


@dataclass(frozen=True)
class PhantomSpec:
    """Size and content of a phantom. The defaults are the built-in phantoms."""

    n_volumes: int = 12  # cases; 2 go to test and 2 to validation with the default fractions (8 train)
    size: int = 512  # axial slice size in pixels, as in MSD Task06 and LiTS
    n_slices: int = 40  # axial slices per volume
    tumours_per_volume: tuple[int, int] = (2, 4)  # inclusive range
    min_area: float = 30.0  # px at 512x512: largest cross-section of the smallest tumour
    max_area: float = 450.0  # px at 512x512: 0.17 % of the slice; with two tumours in one slice about 0.2 %
    seed: int = 0

    def __post_init__(self):
        # Tumour centres keep 4 slices from either end of the volume; the body needs room.
        if self.n_slices < 9:
            raise ValueError(f"PhantomSpec.n_slices must be >= 9; received {self.n_slices}")
        if self.size < 64:
            raise ValueError(f"PhantomSpec.size must be >= 64 pixels; received {self.size}")
        if self.n_volumes < 1:
            raise ValueError(f"PhantomSpec.n_volumes must be >= 1; received {self.n_volumes}")


def phantom_dir(task: str, spec: PhantomSpec | None = None, root=None, verbose: bool = True) -> Path:
    """Path of the built-in phantom for ``task`` ("lung" or "liver"), generated on first use."""
    spec = spec or PhantomSpec()
    root = Path(root) if root is not None else cache_root() / "phantoms"
    tag = f"v{PHANTOM_VERSION}-n{spec.n_volumes}-s{spec.size}-z{spec.n_slices}-seed{spec.seed}"
    if task == "lung":
        path, maker = root / f"Task06_Lung_phantom-{tag}", make_lung_phantom
    elif task == "liver":
        path, maker = root / f"LiTS_phantom-{tag}", make_liver_phantom
    else:
        raise ValueError(f"task must be 'lung' or 'liver'; received {task!r}")
    if (path / "phantom.json").is_file():
        return path
    with atomic_folder(path) as tmp:  # a copy another process finished first wins
        start = time.perf_counter()
        if verbose:
            print(f"Generating the synthetic {task} phantom ({spec.n_volumes} volumes of "
                  f"{spec.size}x{spec.size}x{spec.n_slices}) under {path} ...", flush=True)
        maker(tmp, spec, verbose=verbose)
        if verbose:
            print(f"Phantom ready in {time.perf_counter() - start:.1f} s.", flush=True)
    return path


# --------------------------------------------------------------------------- shapes


def _ellipse(shape, cy, cx, ry, rx, angle=0.0):
    """Boolean mask of a rotated ellipse, evaluated only inside its bounding box."""
    h, w = shape
    r = max(ry, rx) + 1
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, h)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, w)
    mask = np.zeros(shape, dtype=bool)
    if y0 >= y1 or x0 >= x1:
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask[y0:y1, x0:x1] = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return mask


def _smooth_field(rng, shape, scale, amplitude):
    """Low-frequency texture: coarse noise upsampled with bilinear interpolation."""
    import cv2

    coarse = rng.normal(0.0, amplitude, size=(max(shape[0] // scale, 2), max(shape[1] // scale, 2)))
    return cv2.resize(coarse.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _tumour_axes(rng, spec: PhantomSpec, scale: float, max_area_frac_px: float | None = None):
    """In-plane semi-axes (px) and z semi-axis (slices) of one ellipsoidal tumour."""
    hi = max_area_frac_px or spec.max_area
    area = np.exp(rng.uniform(np.log(spec.min_area), np.log(hi))) * scale**2  # largest section
    elong = rng.uniform(1.0, 1.6)
    rx = np.sqrt(area / (np.pi * elong))
    ry = rx * elong
    rz = rng.uniform(1.6, 4.5)  # slices from the centre to the pole
    return ry, rx, rz


def _body(rng, size, n_slices):
    """Per-volume body geometry shared by both phantoms (in pixels of a ``size`` slice)."""
    s = size / 512.0
    return {
        "cy": size / 2 + rng.uniform(-8, 8) * s,
        "cx": size / 2 + rng.uniform(-8, 8) * s,
        "ry": rng.uniform(150, 175) * s,
        "rx": rng.uniform(205, 235) * s,
        "s": s,
    }


def _body_slice(rng, shape, g, taper):
    """Air outside, fat rim, soft tissue body, spine: HU image of one axial slice."""
    img = np.full(shape, -1000.0, dtype=np.float32)
    body = _ellipse(shape, g["cy"], g["cx"], g["ry"] * taper, g["rx"] * taper)
    img[body] = -90.0  # subcutaneous fat
    inner = _ellipse(shape, g["cy"], g["cx"], g["ry"] * taper - 12 * g["s"], g["rx"] * taper - 12 * g["s"])
    img[inner] = 40.0  # muscle / soft tissue
    spine = _ellipse(shape, g["cy"] + g["ry"] * 0.72, g["cx"], 22 * g["s"], 20 * g["s"])
    img[spine] = 650.0  # vertebra
    return img, body


# --------------------------------------------------------------------------- lung


def lung_volume(rng, spec: PhantomSpec):
    """One synthetic chest CT: ``(hu int16 (size, size, n_slices), label uint8 same shape)``."""
    size, nz = spec.size, spec.n_slices
    shape = (size, size)
    g = _body(rng, size, nz)
    s = g["s"]
    lungs = []
    for side in (-1, 1):
        lungs.append({
            "cy": g["cy"] - rng.uniform(5, 20) * s,
            "cx": g["cx"] + side * rng.uniform(85, 100) * s,
            "ry": rng.uniform(95, 115) * s,
            "rx": rng.uniform(62, 75) * s,
            "angle": side * rng.uniform(0.05, 0.2),
        })
    # Vessels: straight tubes through a lung; in an axial slice, a small bright disc that moves.
    vessels = []
    for _ in range(int(rng.integers(14, 22))):
        lung = lungs[int(rng.integers(2))]
        r = rng.uniform(0, 0.8)
        t = rng.uniform(0, 2 * np.pi)
        vessels.append({
            "lung": lung,
            "y": lung["cy"] + r * lung["ry"] * np.sin(t),
            "x": lung["cx"] + r * lung["rx"] * np.cos(t),
            "dy": rng.normal(0, 1.5) * s, "dx": rng.normal(0, 1.5) * s,
            "r": rng.uniform(1.2, 2.6) * s,
        })
    # Tumours: ellipsoids inside a lung, away from the first and last slices.
    tumours = []
    for _ in range(int(rng.integers(spec.tumours_per_volume[0], spec.tumours_per_volume[1] + 1))):
        lung = lungs[int(rng.integers(2))]
        ry, rx, rz = _tumour_axes(rng, spec, s)
        r = rng.uniform(0, 0.6)
        t = rng.uniform(0, 2 * np.pi)
        tumours.append({
            "lung": lung,
            "cy": lung["cy"] + r * lung["ry"] * np.sin(t),
            "cx": lung["cx"] + r * lung["rx"] * np.cos(t),
            "cz": rng.uniform(4, nz - 5),
            "ry": ry, "rx": rx, "rz": rz, "angle": rng.uniform(0, np.pi),
            "hu": rng.uniform(0, 60),
        })

    hu = np.empty((size, size, nz), dtype=np.int16)
    label = np.zeros((size, size, nz), dtype=np.uint8)
    for z in range(nz):
        zf = (z - nz / 2) / nz  # -0.5..0.5 along the body axis
        taper = 1.0 - 0.12 * zf**2
        img, _ = _body_slice(rng, shape, g, taper)
        lab = np.zeros(shape, dtype=np.uint8)
        lung_mask = np.zeros(shape, dtype=bool)
        lung_scale = 1.0 - 0.8 * zf**2 - 0.25 * max(zf, 0)  # narrower towards the apex
        for lung in lungs:
            lung_mask |= _ellipse(shape, lung["cy"], lung["cx"], lung["ry"] * lung_scale,
                                  lung["rx"] * lung_scale, lung["angle"])
        parenchyma = -830.0 + _smooth_field(rng, shape, 32, 25.0)
        img[lung_mask] = parenchyma[lung_mask]
        for v in vessels:
            disc = _ellipse(shape, v["y"] + v["dy"] * (z - nz / 2), v["x"] + v["dx"] * (z - nz / 2), v["r"], v["r"])
            img[disc & lung_mask] = 45.0
        for t in tumours:
            dz = (z - t["cz"]) / t["rz"]
            if abs(dz) >= 1:
                continue
            k = np.sqrt(1 - dz**2)
            disc = _ellipse(shape, t["cy"], t["cx"], t["ry"] * k, t["rx"] * k, t["angle"])
            img[disc] = t["hu"]
            lab[disc] = 1
        img += rng.normal(0.0, 18.0, size=shape).astype(np.float32)
        _store(hu, label, z, img, lab)
    return hu, label


def make_lung_phantom(out_dir, spec: PhantomSpec | None = None, verbose: bool = False) -> Path:
    """Write a lung phantom in the MSD Task06_Lung layout into ``out_dir``."""
    import nibabel as nib

    spec = spec or PhantomSpec()
    out = Path(out_dir)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = np.diag([0.78, 0.78, 2.5, 1.0]) * (512 / spec.size) ** np.array([1, 1, 0, 0])
    training = []
    stats = []
    for i in range(spec.n_volumes):
        rng = np.random.default_rng([spec.seed, 6, i])
        hu, label = lung_volume(rng, spec)
        name = f"lung_{i + 1:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu, affine), str(out / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, affine), str(out / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        stats.append(_volume_stats(name, label == 1))
        if verbose:
            print(f"  phantom {i + 1}/{spec.n_volumes} {name}: {stats[-1]['tumour_slices']} tumour slices", flush=True)
    meta = {
        "name": "Lung (synthetic phantom)",
        "description": "Synthetic chest CT phantom in the MSD Task06_Lung layout, made by keras_losses data/phantom.py",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "cancer"},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (out / "phantom.json").write_text(json.dumps({"spec": asdict(spec), "volumes": stats}, indent=2), encoding="utf-8")
    return out


# --------------------------------------------------------------------------- liver


def liver_volume(rng, spec: PhantomSpec):
    """One synthetic abdominal CT: ``(hu int16, label uint8 with 1 liver, 2 tumour)``."""
    size, nz = spec.size, spec.n_slices
    shape = (size, size)
    g = _body(rng, size, nz)
    s = g["s"]
    liver = {
        "cy": g["cy"] - rng.uniform(0, 25) * s,
        "cx": g["cx"] - rng.uniform(70, 95) * s,
        "ry": rng.uniform(95, 120) * s,
        "rx": rng.uniform(95, 125) * s,
        "angle": rng.uniform(-0.3, 0.3),
    }
    organs = [  # kidney, stomach, spleen: soft tissue of other HU beside the liver
        (g["cy"] + 60 * s, g["cx"] + 90 * s, 35 * s, 25 * s, 150.0),
        (g["cy"] - 40 * s, g["cx"] + 80 * s, 50 * s, 60 * s, 20.0),
        (g["cy"] + 20 * s, g["cx"] + 150 * s, 40 * s, 25 * s, 50.0),
    ]
    tumours = []
    for _ in range(int(rng.integers(spec.tumours_per_volume[0], spec.tumours_per_volume[1] + 1))):
        ry, rx, rz = _tumour_axes(rng, spec, s)
        r = rng.uniform(0, 0.55)
        t = rng.uniform(0, 2 * np.pi)
        tumours.append({
            "cy": liver["cy"] + r * liver["ry"] * np.sin(t),
            "cx": liver["cx"] + r * liver["rx"] * np.cos(t),
            "cz": rng.uniform(4, nz - 5),
            "ry": ry, "rx": rx, "rz": rz, "angle": rng.uniform(0, np.pi),
            "hu": rng.uniform(10, 40),  # hypodense lesion in a ~100 HU enhanced liver
        })
    hu = np.empty((size, size, nz), dtype=np.int16)
    label = np.zeros((size, size, nz), dtype=np.uint8)
    for z in range(nz):
        zf = (z - nz / 2) / nz
        img, _ = _body_slice(rng, shape, g, 1.0 - 0.1 * zf**2)
        for cy, cx, ry, rx, value in organs:
            img[_ellipse(shape, cy, cx, ry, rx)] = value
        scale = 1.0 - 1.2 * zf**2
        liver_mask = _ellipse(shape, liver["cy"], liver["cx"], liver["ry"] * scale, liver["rx"] * scale, liver["angle"])
        img[liver_mask] = 100.0 + _smooth_field(rng, shape, 32, 6.0)[liver_mask]
        lab = liver_mask.astype(np.uint8)
        for t in tumours:
            dz = (z - t["cz"]) / t["rz"]
            if abs(dz) >= 1:
                continue
            k = np.sqrt(1 - dz**2)
            disc = _ellipse(shape, t["cy"], t["cx"], t["ry"] * k, t["rx"] * k, t["angle"]) & liver_mask
            img[disc] = t["hu"]
            lab[disc] = 2
        img += rng.normal(0.0, 12.0, size=shape).astype(np.float32)
        _store(hu, label, z, img, lab)
    return hu, label


def make_liver_phantom(out_dir, spec: PhantomSpec | None = None, verbose: bool = False) -> Path:
    """Write a liver phantom in the LiTS layout (``volume-N.nii``, ``segmentation-N.nii``)."""
    import nibabel as nib

    spec = spec or PhantomSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = np.diag([0.7, 0.7, 2.5, 1.0]) * (512 / spec.size) ** np.array([1, 1, 0, 0])
    stats = []
    for i in range(spec.n_volumes):
        rng = np.random.default_rng([spec.seed, 3, i])
        hu, label = liver_volume(rng, spec)
        affine = base.copy()
        if i % 2 == 1:
            # Store left-right flipped with a negative x axis: the same anatomy in world space,
            # as real LiTS volumes come in different orientations.
            hu, label = hu[::-1].copy(), label[::-1].copy()
            affine[0, 0] = -affine[0, 0]
            affine[0, 3] = base[0, 0] * (spec.size - 1)
        nib.save(nib.Nifti1Image(hu, affine), str(out / f"volume-{i}.nii"))
        nib.save(nib.Nifti1Image(label, affine), str(out / f"segmentation-{i}.nii"))
        stats.append(_volume_stats(f"volume-{i}", label == 2))
        if verbose:
            print(f"  phantom {i + 1}/{spec.n_volumes} volume-{i}: {stats[-1]['tumour_slices']} tumour slices", flush=True)
    (out / "phantom.json").write_text(json.dumps({"spec": asdict(spec), "volumes": stats}, indent=2), encoding="utf-8")
    return out


def _store(hu, label, z, img, lab):
    """Put a slice drawn in display orientation (rows: anterior to posterior) into RAS array
    space, the inverse of the loader's ``np.rot90`` (see data/ct.py)."""
    hu[:, :, z] = np.rot90(np.clip(np.rint(img), -1024, 3071).astype(np.int16), -1)
    label[:, :, z] = np.rot90(lab, -1)


def _volume_stats(name, tumour) -> dict:
    areas = tumour.sum(axis=(0, 1))
    return {
        "case": name,
        "slices": int(tumour.shape[2]),
        "tumour_slices": int((areas > 0).sum()),
        "tumour_areas_px": [int(a) for a in areas if a > 0],
    }


def save_preview(path, size: int = 512, seed: int = 0) -> Path:
    """PNG of the phantoms: for lung and liver, the slice with the largest and one with the
    smallest tumour, windowed as the pipeline does, tumour outlined in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.io import save_figure
    from data.window import DEFAULT_WINDOWS, apply_window

    spec = PhantomSpec(size=size, seed=seed)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
    panels = []
    for task, make, tumour, key in (("lung", lung_volume, 1, 6), ("liver", liver_volume, 2, 3)):
        hu, label = make(np.random.default_rng([seed, key, 0]), spec)
        areas = (label == tumour).sum(axis=(0, 1))
        nonzero = np.flatnonzero(areas)
        for z in (int(nonzero[np.argmax(areas[nonzero])]), int(nonzero[np.argmin(areas[nonzero])])):
            panels.append((task, z, areas[z], np.rot90(apply_window(hu[:, :, z], DEFAULT_WINDOWS[task])),
                           np.rot90(label[:, :, z] == tumour)))
    for ax, (task, z, area, image, mask) in zip(axes, panels, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{task} phantom, slice {z}: tumour {area} px\n({100 * area / size**2:.3f} % of {size}x{size})", fontsize=8)
        ax.axis("off")
    return save_figure(fig, path, dpi=90)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Preview the built-in CT phantoms as a PNG.")
    parser.add_argument("--figure", default="docs/ct_phantom.png", help="PNG path (default: docs/ct_phantom.png)")
    print(save_preview(parser.parse_args().figure))

"""Segment whole NIfTI volumes with a trained 2D model, slice by slice.

The preprocessing is the training pipeline's, read from the run configuration:
* lung / liver (:mod:`data.ct`): reorient to the closest canonical (RAS+) orientation, take
  axial slices along the last axis, apply the task's Hounsfield window, resize each slice
  to the model input; predictions are resized back and reoriented to the input's own
  orientation, so the mask has the input's shape, affine and orientation.
* hippocampus (:mod:`data.hippocampus`): scale the volume to [0, max_intensity], slices along
  the last axis zero-padded (centred) to the model size; predictions are cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data import validate

CT_TASKS = ("lung", "liver")


@dataclass
class VolumePrediction:
    """One volume's result: ``mask`` (uint8) and ``probabilities`` in the input's voxel order."""

    mask: np.ndarray
    probabilities: np.ndarray
    summary: dict = field(default_factory=dict)


def summarize(mask: np.ndarray, zooms) -> dict:
    """Foreground voxels, volume in ml from the voxel spacing (mm), 3D connected components."""
    from scipy import ndimage

    voxels = int(mask.sum())
    voxel_ml = float(np.prod([float(z) for z in zooms[:3]])) / 1000.0
    _, components = ndimage.label(mask > 0, structure=np.ones((3, 3, 3), bool))
    return {"voxels": voxels, "volume_ml": round(voxels * voxel_ml, 4), "components": int(components)}


class SegmentationPredictor:
    """Predict masks for volumes with the preprocessing of the run that trained ``model``.

    Args:
        model: a Keras model mapping (B, S, S, 1) slices to (B, S, S, 1) probabilities.
        config: the run's ``config.json`` (``task`` plus the task's settings).
        threshold: probability threshold (default: the run's, else 0.5).
        batch_size: slices per forward pass.
    """

    def __init__(self, model, config: dict, threshold: float | None = None, batch_size: int = 16):
        self.model = model
        self.config = dict(config)
        self.task = self.config["task"]
        self.size = int(model.input_shape[1])
        self.threshold = float(threshold if threshold is not None else self.config.get("threshold", 0.5))
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1); received {self.threshold}")
        self.batch_size = int(batch_size)

    # ------------------------------------------------------------------ public
    def predict_volume(self, volume, affine=None, zooms=None) -> VolumePrediction:
        """Segment one volume: a NIfTI path, or an array (H, W, D) with optional affine.

        An array is taken as already in the orientation the model expects (for CT, RAS+
        canonical when ``affine`` is None). Returns a :class:`VolumePrediction`.
        """
        if isinstance(volume, (str, Path)):
            array, affine, zooms = self._read(Path(volume))
            source = str(volume)
        else:
            array = np.asarray(volume, dtype=np.float32)
            source = "array"
            if array.ndim != 3:
                raise ValueError(f"{source}: expected a 3D volume (H, W, D); received shape {array.shape}")
        if affine is None:
            affine = np.eye(4)
        if zooms is None:
            zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
        probs = self._predict_array(array, np.asarray(affine), source)
        mask = (probs >= self.threshold).astype(np.uint8)
        return VolumePrediction(mask=mask, probabilities=probs, summary=summarize(mask, zooms))

    def predict_file(self, path, out_dir, probabilities: bool = False) -> dict:
        """Segment ``path`` and write ``<name>_mask.nii.gz`` (and ``_prob``) into ``out_dir``."""
        import nibabel as nib

        from core.io import atomic_path

        path = Path(path)
        img = self._load(path)
        result = self.predict_volume(path)
        name = path.name.split(".")[0]
        out_dir = Path(out_dir)
        outputs = {"mask": out_dir / f"{name}_mask.nii.gz"}
        header = img.header.copy()
        header.set_data_dtype(np.uint8)
        header.set_slope_inter(1, 0)
        with atomic_path(outputs["mask"], suffix=".nii.gz") as tmp:
            nib.save(nib.Nifti1Image(result.mask, img.affine, header), str(tmp))
        if probabilities:
            outputs["probabilities"] = out_dir / f"{name}_prob.nii.gz"
            header = img.header.copy()
            header.set_data_dtype(np.float32)
            header.set_slope_inter(1, 0)
            with atomic_path(outputs["probabilities"], suffix=".nii.gz") as tmp:
                nib.save(nib.Nifti1Image(result.probabilities.astype(np.float32), img.affine, header), str(tmp))
        return {"input": str(path), **{k: str(v) for k, v in outputs.items()}, **result.summary}

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _load(path: Path):
        """The opened 3-D volume (header only); DataError naming the file otherwise."""
        from data.msd import open_nifti

        img = open_nifti(path)
        validate.raise_problems(validate.check_ndim(img.shape, 3, path))
        return img

    def _read(self, path: Path):
        """Every voxel, in the stored orientation, checked by the loaders' checks."""
        from data.msd import load_nifti

        img = self._load(path)
        array, _, _ = load_nifti(path)
        return array, img.affine, img.header.get_zooms()

    def _predict_array(self, array: np.ndarray, affine: np.ndarray, source: str) -> np.ndarray:
        if self.task in CT_TASKS:
            return self._predict_ct(array, affine, source)
        if self.task == "hippocampus":
            return self._predict_hippocampus(array, source)
        raise ValueError(f"task {self.task!r} does not segment volumes")

    def _forward(self, slices: np.ndarray) -> np.ndarray:
        """(D, S, S) float32 -> (D, S, S) probabilities, in batches."""
        out = np.empty(slices.shape, np.float32)
        for start in range(0, len(slices), self.batch_size):
            batch = slices[start : start + self.batch_size, ..., None]
            out[start : start + len(batch)] = np.asarray(self.model(batch, training=False))[..., 0]
        return out

    def _predict_ct(self, array, affine, source):
        import cv2
        from nibabel import orientations as ornt

        from data.window import DEFAULT_WINDOWS, apply_window

        to_canonical = ornt.ornt_transform(ornt.io_orientation(affine), ornt.axcodes2ornt("RAS"))
        canonical = ornt.apply_orientation(array, to_canonical)
        h, w, _ = canonical.shape
        if not self.config.get("allow_upsample", False):
            validate.raise_problems(validate.check_min_size((h, w), (self.size, self.size), source))
        window = self.config.get("window") or DEFAULT_WINDOWS[self.task]
        scaled = apply_window(canonical, window)
        interp = cv2.INTER_AREA if self.size < min(h, w) else cv2.INTER_LINEAR
        slices = np.stack(
            [cv2.resize(scaled[:, :, k], (self.size, self.size), interpolation=interp) for k in range(scaled.shape[2])]
        )
        probs = self._forward(slices)
        back = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs], axis=-1)
        back = np.clip(back, 0.0, 1.0)
        # Undo the reorientation: the inverse transform maps RAS back to the input's axes.
        from_canonical = ornt.ornt_transform(ornt.axcodes2ornt("RAS"), ornt.io_orientation(affine))
        return np.ascontiguousarray(ornt.apply_orientation(back, from_canonical), dtype=np.float32)

    def _predict_hippocampus(self, array, source):
        from data.hippocampus import SliceSettings, pad_slices, scale_intensities

        settings = SliceSettings(
            size=self.size,
            max_intensity=float(self.config.get("max_intensity", 0.2)),
            # runs written before `scaling` existed were trained with the percentile scaling
            scaling=str(self.config.get("scaling", "percentile")),
            clip_percentile=float(self.config.get("clip_percentile", 99.5)),
        )
        h, w, _ = array.shape
        slices = pad_slices(scale_intensities(array, settings), self.size, source)  # (D, S, S)
        probs = self._forward(slices)
        top, left = (self.size - h) // 2, (self.size - w) // 2
        return np.ascontiguousarray(np.moveaxis(probs[:, top : top + h, left : left + w], 0, -1), dtype=np.float32)

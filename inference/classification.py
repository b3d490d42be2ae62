"""Classify image files with a trained model: class probabilities, prediction, uncertainty.

* nodules (:mod:`tasks.nodules`): grayscale images resized to the run's ``image_size``, raw
  intensities 0..255 (the LeNet-5 rescales them itself); classes benign, malignant.
* isic (:mod:`tasks.isic`): RGB images through the training preprocessing (centre crop,
  Shades-of-Gray, resize); the run's classes. A model with a loss-estimator head also gives
  its estimated loss (the uncertainty). When ``evaluate.py --task isic`` has run on the run
  directory, its tuned ODIN temperature and perturbation give each image an ODIN score,
  and the score at 95 % TPR on the validation images is the in/out-of-distribution threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from data.validate import DataError

NODULE_CLASSES = ("benign", "malignant")  # data.nodules: BENIGN = 0, MALIGNANT = 1


class ClassificationPredictor:
    """Predict classes for image files with the preprocessing of the run that trained ``model``."""

    def __init__(self, model, config: dict, run_dir=None, batch_size: int = 32):
        self.model = model
        self.config = dict(config)
        self.task = self.config["task"]
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.batch_size = int(batch_size)
        self.size = int(model.input_shape[1])
        if self.task == "nodules":
            self.classes = list(NODULE_CLASSES)
        elif self.task == "isic":
            self.classes = list(self.config.get("classes") or [])
            if not self.classes:
                raise ValueError("isic run config lists no classes")
        else:
            raise ValueError(f"task {self.task!r} does not classify images")
        outputs = int(model.output_shape[-1])
        if outputs not in (len(self.classes), len(self.classes) + 1):
            raise ValueError(
                f"model has {outputs} outputs; expected {len(self.classes)} classes "
                f"(+1 for a loss-estimator head)"
            )
        self.has_loss_estimate = outputs == len(self.classes) + 1
        self.odin = self._odin_settings()

    def _odin_settings(self) -> dict | None:
        """ODIN T, eps and threshold from ``evaluation/metrics.json`` of the run, if present."""
        if self.task != "isic" or self.run_dir is None:
            return None
        path = self.run_dir / "evaluation" / "metrics.json"
        if not path.is_file():
            return None
        from core.io import read_json

        odin = read_json(path).get("odin") or {}
        if "threshold" not in odin:
            return None
        return {k: float(odin[k]) for k in ("temperature", "epsilon", "threshold")}

    # ------------------------------------------------------------------ nodule volumes
    @property
    def reads_nodule_volumes(self) -> bool:
        """A nodules run trained on real nodule volumes (its config has a ``data_dir``): its
        inputs are folders of ``image/`` + ``nodule_mask/`` NIfTI pairs, cropped as in training."""
        return self.task == "nodules" and bool(self.config.get("data_dir"))

    def predict_nodule_folders(self, folders, progress: bool = False) -> tuple[list[dict], list[str]]:
        """One CSV row per nodule volume of each folder (``image/X.nii.gz`` with
        ``nodule_mask/X.nii.gz``; a ``nodules.csv`` beside them adds the table's diagnosis);
        ``failures`` names each folder or volume that could not be read."""
        from data.lidc import TABLE, CropSpec, crop_nodule, parse_name, read_table

        c = self.config
        spec = CropSpec(self.size, float(c.get("pixel_spacing", 0.4)), (float(c.get("hu_min", -1000)), float(c.get("hu_max", 400))))
        rows, failures, images = [], [], []

        def fail(message):
            failures.append(message)
            print(f"error: {message}", file=sys.stderr, flush=True)

        for folder in map(Path, folders):
            if not (folder / "image").is_dir():
                fail(f"{folder}: expected a folder holding image/ and nodule_mask/ (NIfTI pairs of the same name)")
                continue
            try:
                table = read_table(folder / TABLE) if (folder / TABLE).is_file() else {}
            except DataError as err:
                fail(str(err))
                continue
            for image in sorted(p for p in (folder / "image").iterdir() if p.name.endswith((".nii", ".nii.gz"))):
                try:
                    crop, info = crop_nodule(image, folder / "nodule_mask" / image.name, spec)
                except (DataError, OSError, ValueError) as err:
                    fail(str(err) if image.name in str(err) else f"{image}: {err}")
                    continue
                try:
                    row = table.get(parse_name(image), {})
                except DataError:
                    row = {}
                images.append(crop[..., None])
                rows.append({"volume": str(image), "slice": info["slice"], "mean_hu": round(info["mean_hu"], 1)})
                rows[-1]["diagnosis"] = self.classes[row["label"]] if row else ""
        if not rows:
            return rows, failures
        probs = self.predict_arrays(np.stack(images))["probabilities"]
        for row, p in zip(rows, probs, strict=True):
            row.update({f"p_{name}": round(float(v), 6) for name, v in zip(self.classes, p, strict=True)})
            row["predicted"] = self.classes[int(np.argmax(p))]
        if progress:
            print(f"{len(rows)} nodule volumes read", flush=True)
        return rows, failures

    # ------------------------------------------------------------------ images
    def load_image(self, path) -> np.ndarray:
        """One preprocessed image as the model expects it; DataError naming the file."""
        import cv2

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        if self.task == "nodules":
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DataError(f"{path}: not a readable image")
            interp = cv2.INTER_AREA if self.size < min(image.shape) else cv2.INTER_LINEAR
            return cv2.resize(image, (self.size, self.size), interpolation=interp).astype(np.float32)[..., None]
        from data.dermoscopy import preprocess_image, read_rgb

        power = float(self.config.get("sog_power") or 0) or None
        # a run whose config predates the crop-shape option was trained on the square crop
        shape = self.config.get("crop_shape", "square")
        image = preprocess_image(read_rgb(path), self.size, float(self.config.get("crop_fraction", 0.85)), power, shape)
        return image.astype(np.float32)

    def predict_arrays(self, images: np.ndarray) -> dict:
        """Probabilities (N, C), and the estimated loss and ODIN score where available."""
        out = np.asarray(self.model.predict(images, batch_size=self.batch_size, verbose=0))
        result = {"probabilities": out[:, : len(self.classes)]}
        if self.has_loss_estimate:
            result["estimated_loss"] = out[:, -1]
        if self.odin is not None:
            from architectures.vgg import logits_model
            from evaluation.odin import odin_scores

            result["odin_score"] = odin_scores(
                logits_model(self.model), images, self.odin["temperature"], self.odin["epsilon"],
                batch_size=self.batch_size,
            )
        return result

    def predict_images(self, paths, progress: bool = False) -> tuple[list[dict], list[str]]:
        """One CSV row per readable image; ``failures`` names each image that could not be read."""
        rows, failures, images, kept = [], [], [], []
        for i, path in enumerate(map(Path, paths), 1):
            try:
                images.append(self.load_image(path))
                kept.append(path)
            except (DataError, OSError, ValueError) as err:
                failures.append(f"{path}: {err}")
                print(f"error: [{i}/{len(paths)}] {path}: {err}", file=sys.stderr, flush=True)
            else:
                if progress and (i % 100 == 0 or i == len(paths)):
                    print(f"[{i}/{len(paths)}] images read", flush=True)
        if not kept:
            return rows, failures
        result = self.predict_arrays(np.stack(images))
        for j, path in enumerate(kept):
            probs = result["probabilities"][j]
            row = {"image": str(path), **{f"p_{c}": round(float(p), 6) for c, p in zip(self.classes, probs, strict=True)}}
            row["predicted"] = self.classes[int(np.argmax(probs))]
            if "estimated_loss" in result:
                row["estimated_loss"] = round(float(result["estimated_loss"][j]), 6)
            if "odin_score" in result:
                score = float(result["odin_score"][j])
                row["odin_score"] = round(score, 6)
                row["out_of_distribution"] = score < self.odin["threshold"]
            rows.append(row)
        return rows, failures

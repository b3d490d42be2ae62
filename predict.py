"""Predict with a trained model: NIfTI masks for segmentation, a CSV for classification.

    python predict.py --model runs/lung-glf-det --input scan.nii.gz --out preds/
    python predict.py --model runs/lung-glf-det --input Task06_Lung/imagesTs --out preds/ --probabilities
    python predict.py --model runs/hippocampus-dice/best.keras --input vols/ --out preds/
    python predict.py --model runs/isic-ce+loss-estimator --input photos/ --out preds/

``--model`` is a run directory (its best.keras and config.json) or a ``.keras`` file (with
the config.json beside it, or ``--task`` for the task's default preprocessing). The
preprocessing is the run's own. An input that fails (not NIfTI, too small, undecodable)
is reported with its name and the others still get their outputs; the exit status is 1
if any input failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run directory or .keras model file")
    parser.add_argument("--input", required=True, nargs="+", help="files or folders (NIfTI volumes, or images)")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--task", default=None, help="task of a .keras file without config.json beside it")
    parser.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the run's, else 0.5)")
    parser.add_argument("--probabilities", action="store_true", help="segmentation: also write probability maps")
    return parser


def expand_inputs(inputs, suffixes) -> list[Path]:
    """Files given, plus the matching files of folders given (dot-files skipped), sorted."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffixes)
            )
            if not found:
                print(f"warning: {item} holds no {'/'.join(suffixes)} files", file=sys.stderr)
            files += found
        else:
            files.append(item)  # a missing or wrong file is reported when it is processed
    return files


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from inference import load_predictor
    from inference.segmentation import SegmentationPredictor
    from training import io

    predictor = load_predictor(args.model, task=args.task, threshold=args.threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    if isinstance(predictor, SegmentationPredictor):
        files = expand_inputs(args.input, NIFTI_SUFFIXES)
        rows = []
        for i, path in enumerate(files, 1):
            try:
                row = predictor.predict_file(path, out, probabilities=args.probabilities)
            except (ValueError, OSError) as err:
                failures.append(f"{path}: {err}")
                print(f"[{i}/{len(files)}] {path.name}: FAILED: {err}", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            print(
                f"[{i}/{len(files)}] {path.name}: {row['voxels']} voxels, {row['volume_ml']} ml, "
                f"{row['components']} components -> {Path(row['mask']).name}",
                flush=True,
            )
        if rows:
            io.write_csv(out / "summary.csv", rows)
    else:
        files = expand_inputs(args.input, IMAGE_SUFFIXES)
        rows, failures = predictor.predict_images(files, progress=True)
        if rows:
            io.write_csv(out / "predictions.csv", rows)
    done = len(files) - len(failures)
    print(f"{done} of {len(files)} inputs predicted into {out}" + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures or not files else 0


if __name__ == "__main__":
    sys.exit(main())

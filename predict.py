"""Predict with a trained model: NIfTI masks for segmentation, a CSV for classification.

    python predict.py runs/lung-glf-det scan.nii.gz                  # masks into predictions/
    python predict.py --model runs/lung-glf-det --input scan.nii.gz --out preds/
    python predict.py --model runs/lung-glf-det --input Task06_Lung/imagesTs --out preds/ --probabilities
    python predict.py --model runs/hippocampus-dice/best.keras --input vols/ --out preds/
    python predict.py --model runs/isic-ce+loss-estimator --input photos/ --out preds/
    python predict.py --model runs/nodules-real --input lidc_folder/ --out preds/   # image/ + nodule_mask/

The model (``--model``, or the first positional argument) is a run directory (its best.keras
and config.json) or a ``.keras`` file (with the config.json beside it, or ``--task`` for the
task's default preprocessing); the inputs follow it (or come with ``--input``). The
preprocessing is the run's own. A run that did not finish (no COMPLETED) is refused unless
``--allow-unfinished``. A missing model or input, or a bad flag, stops before any
work with one ``error:`` line and exit status 2. An input that fails to load (not NIfTI,
truncated, too small, undecodable) gets an ``error:`` line naming it, the others still get
their outputs, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.errors import UserError  # noqa: E402
from tasks.common import add_allow_unfinished_flag, allow_unfinished  # noqa: E402
from training import cli  # noqa: E402

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="predict.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="the model (unless --model is given), then input files or folders",
    )
    parser.add_argument("--model", default=None, help="run directory or .keras model file")
    parser.add_argument(
        "--input", nargs="+", default=[], help="files or folders (NIfTI volumes, or images)"
    )
    parser.add_argument(
        "--out", default="predictions", help="output folder (created; default: predictions)"
    )
    parser.add_argument(
        "--task", default=None, help="task of a .keras file without config.json beside it"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability threshold (default: the run's, else 0.5)",
    )
    parser.add_argument(
        "--probabilities", action="store_true", help="segmentation: also write probability maps"
    )
    add_allow_unfinished_flag(parser)
    cli.add_debug_flag(parser)
    return parser


def model_and_inputs(parser: argparse.ArgumentParser, args) -> tuple[str, list[str]]:
    """``(model, inputs)`` from ``--model``/``--input`` and the positionals; every one must exist."""
    paths = list(args.paths)
    model = args.model or (paths.pop(0) if paths else None)
    inputs = [*paths, *args.input]
    if model is None:
        parser.error("give the model: a run directory or .keras file (first argument or --model)")
    if not inputs:
        parser.error(f"give the files or folders to predict after the model {model}")
    missing = [p for p in [model, *inputs] if not Path(p).exists()]
    if missing:
        what = "model" if missing[0] == model else "input"
        raise UserError(f"{what} {missing[0]} does not exist; check the path")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the predictions")
    return model, inputs


def expand_inputs(inputs, suffixes) -> list[Path]:
    """Files given, plus the matching files of folders given (dot-files skipped), sorted."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p
                for p in item.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffixes)
            )
            if not found:
                print(f"warning: {item} holds no {'/'.join(suffixes)} files", file=sys.stderr)
            files += found
        else:
            files.append(item)  # a missing or wrong file is reported when it is processed
    return files


def main(argv=None) -> int:
    """Parse ``argv`` and predict; returns 2 if an input failed (``cli.run`` reports the rest)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    model, inputs = model_and_inputs(parser, args)
    allow_unfinished(args.allow_unfinished)
    from core import io
    from inference import load_predictor
    from inference.segmentation import SegmentationPredictor

    predictor = load_predictor(model, task=args.task, threshold=args.threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    if isinstance(predictor, SegmentationPredictor):
        files = expand_inputs(inputs, NIFTI_SUFFIXES)
        rows = []
        for i, path in enumerate(files, 1):
            try:
                row = predictor.predict_file(path, out, probabilities=args.probabilities)
            except (ValueError, OSError) as err:  # UserError is a ValueError
                failures.append(f"{path}: {err}")
                text = cli.one_line(err)
                text = text if path.name in text else f"{path}: {text}"
                print(f"error: [{i}/{len(files)}] {text}", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            print(
                f"[{i}/{len(files)}] {path.name}: {row['voxels']} voxels, {row['volume_ml']} ml, "
                f"{row['components']} components -> {Path(row['mask']).name}",
                flush=True,
            )
        if rows:
            io.write_csv(out / "summary.csv", rows)
    elif getattr(predictor, "reads_nodule_volumes", False):
        # A nodules run trained on real volumes: each input is a folder of image/ + nodule_mask/.
        rows, failures = predictor.predict_nodule_folders(inputs, progress=True)
        if rows:
            io.write_csv(out / "predictions.csv", rows)
        print(f"{len(rows)} nodules predicted into {out}" + (f"; {len(failures)} failed" if failures else ""))
        return cli.EXIT_USER_ERROR if failures or not rows else 0
    else:
        files = expand_inputs(inputs, IMAGE_SUFFIXES)
        rows, failures = predictor.predict_images(files, progress=True)
        if rows:
            io.write_csv(out / "predictions.csv", rows)
    done = len(files) - len(failures)
    print(
        f"{done} of {len(files)} inputs predicted into {out}"
        + (f"; {len(failures)} failed" if failures else "")
    )
    return cli.EXIT_USER_ERROR if failures or not files else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

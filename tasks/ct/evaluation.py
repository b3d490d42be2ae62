"""Metrics and figures of saved lung/liver runs on their test split."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from tasks.common import model_of_run
from tasks.ct.config import CTConfig, data_config


def add_evaluate_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH",
        help="a run directory or a .keras file; repeat to compare models (overlays need several)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        help="name of each --model in the figures (default: the run directory's loss or the file name)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data source (default: the first run's; a bare .keras file without a run directory needs it or uses the phantom)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="slice size (default: the first run's, else the model's input size)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="slices per prediction batch (default: 8)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="threshold on the output (paper: 0.5) (default: 0.5)",
    )
    parser.add_argument(
        "--pixel-mm",
        type=float,
        default=None,
        help="in-plane spacing of the network input in mm, to place the '< 100 px at 512' range (default: from the image size)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: <first run>/eval, or eval/ beside a .keras file)",
    )


def _run_of(path: Path):
    """(run directory or None when no config.json lies beside the model, model file)."""
    run, model = model_of_run(path)
    return (run if (run / "config.json").exists() else None), model


def evaluate(args: argparse.Namespace) -> dict:
    """Evaluate one or more saved models on the test split; writes metrics.json and PNGs."""
    from core import io
    from training.io import check_model_input, load_model

    paths = [Path(p) for p in args.model]
    runs = [_run_of(p) for p in paths]
    labels = args.label or []
    if labels and len(labels) != len(paths):
        raise ValueError(
            f"give one --label per --model; received {len(labels)} labels for {len(paths)} models"
        )
    run_cfg = {}
    first_run = next((r for r, _ in runs if r is not None), None)
    if first_run is not None:
        run_cfg = io.read_json(first_run / "config.json", expect=dict)
    models = {}
    for i, (run, file) in enumerate(runs):
        label = labels[i] if labels else _default_label(run, file, models)
        models[label] = load_model(file, compile=False)
    first_model = next(iter(models.values()))
    values = {
        k: v for k, v in run_cfg.items() if k in {f.name for f in dataclasses.fields(CTConfig)}
    }
    values["task"] = args.task
    if args.data_dir is not None:
        values["data_dir"] = args.data_dir
    values["image_size"] = (
        args.image_size or values.get("image_size") or int(first_model.input_shape[1])
    )
    values["threshold"] = args.threshold
    if args.pixel_mm is not None:
        values["pixel_mm"] = args.pixel_mm
    cfg = CTConfig(**values)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; received {args.batch_size}")
    for (_, file), model in zip(runs, models.values(), strict=True):
        check_model_input(
            model, (cfg.image_size, cfg.image_size, 1), file, "pass --image-size to match the model"
        )
    out = Path(args.out) if args.out else ((first_run or paths[0].parent) / "eval")
    result = evaluate_models(models, cfg, out, split_from=first_run, batch_size=args.batch_size)
    print(
        json.dumps(
            {
                k: v["tumour_slices"] | {"tumour_free_dice": v["tumour_free_slices"]["dice"]}
                for k, v in result["models"].items()
            },
            indent=1,
        )
    )
    print(f"Metrics and figures written to {out}")
    return result


def _default_label(run, file: Path, taken) -> str:
    label = file.stem
    if run is not None and (run / "config.json").exists():
        from core import io

        label = io.read_json(run / "config.json", expect=dict).get("loss", run.name)
    base, n = label, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    return label


def _test_data(cfg: CTConfig, split_from=None):
    """The data of ``cfg`` with the split of run directory ``split_from`` (if it has one)."""
    from data.ct import prepare_ct_data

    split = Path(split_from) / "split.json" if split_from is not None else None
    if split is not None and not split.exists():
        split = None
    return prepare_ct_data(data_config(cfg, augment=False), split=split)


def predict_counts(models: dict, data, cfg: CTConfig, batch_size: int = 8):
    """Per-slice counts of every model over the test split, and the label's tumour sizes."""
    import numpy as np

    from evaluation.segmentation import concat_counts, slice_counts

    parts = {label: [] for label in models}
    for images, masks in data.test(batch_size, all_slices=True):
        images, masks = np.asarray(images), np.asarray(masks)
        for label, model in models.items():
            probs = np.asarray(model.predict_on_batch(images))
            parts[label].append(slice_counts(masks, probs, cfg.threshold))
    return {label: concat_counts(p) for label, p in parts.items()}


def collect_slices(data, indices, batch_size: int = 8):
    """The images and masks of the test slices at ``indices`` (a second, prediction-free pass)."""
    import numpy as np

    wanted, found, offset = set(indices), {}, 0
    for images, masks in data.test(batch_size, all_slices=True):
        images, masks = np.asarray(images), np.asarray(masks)
        for i in range(len(images)):
            if offset + i in wanted:
                found[offset + i] = (images[i, ..., 0], masks[i, ..., 0])
        offset += len(images)
        if len(found) == len(wanted):
            break
    return found


def small_px(cfg: CTConfig) -> float:
    from evaluation.segmentation import PAPER_PIXEL_MM, small_tumour_threshold
    from tasks.ct.paper import PIXEL_MM

    return small_tumour_threshold(
        image_size=cfg.image_size,
        pixel_mm=cfg.pixel_mm,
        paper_pixel_mm=PIXEL_MM.get(cfg.task, PAPER_PIXEL_MM),
    )


def evaluate_models(
    models: dict, cfg: CTConfig, out_dir, *, data=None, split_from=None, batch_size: int = 8
) -> dict:
    """Test metrics (paper Figs. 3, 5), Dice vs size (Fig. 4a/c) and overlays (Fig. 4b/d).

    Writes ``metrics.json``, ``tumour_slices.png``, ``tumour_free_dice.png``,
    ``dice_vs_size.png`` and ``overlays.png`` into ``out_dir``; returns the metrics dict.
    """
    import numpy as np

    from core import io
    from evaluation import segmentation as seg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else _test_data(cfg, split_from)
    counts = predict_counts(models, data, cfg, batch_size)
    limit = small_px(cfg)
    summaries = {label: seg.summarize(c) for label, c in counts.items()}
    sizes = next(iter(counts.values()))["tumour_px"]
    edges = seg.size_edges(sizes, limit)
    for label, c in counts.items():
        summaries[label]["dice_by_size"] = seg.dice_by_size(c, edges)
        small = (c["tumour_px"] > 0) & (c["tumour_px"] < limit)
        summaries[label]["small_tumour_slices"] = {
            "n": int(small.sum()),
            "dice": seg._mean(seg.slice_dice(c)[small]),
        }
    result = {
        "task": cfg.task,
        "data": cfg.data_dir or "built-in synthetic phantom",
        "image_size": cfg.image_size,
        "threshold": cfg.threshold,
        "small_tumour_px": limit,
        "conventions": {
            "precision": "mean over tumour slices with a non-empty prediction (0/0 slices counted in precision_undefined_slices)",
            "tumour_free_dice": "empty prediction on an empty slice = Dice 1; any false positive = Dice 0",
            "small_tumour_px": "the paper's < 100 px at 512x512, converted to this resolution",
        },
        "models": summaries,
    }
    io.write_json(out_dir / "metrics.json", result)
    seg.plot_tumour_slice_metrics(summaries, out_dir / "tumour_slices.png")
    seg.plot_tumour_free_dice(summaries, out_dir / "tumour_free_dice.png")
    seg.plot_dice_vs_size(counts, limit, out_dir / "dice_vs_size.png")
    chosen = seg.choose_overlay_slices(sizes, limit)
    if chosen:
        slices = collect_slices(data, list(chosen.values()), batch_size)
        panels = {}
        for kind, index in chosen.items():
            image, mask = slices[index]
            preds = {
                label: np.asarray(m.predict_on_batch(image[None, ..., None]))[0, ..., 0]
                for label, m in models.items()
            }
            panels[f"{kind} tumour"] = {"image": image, "truth": mask, "preds": preds}
        seg.plot_overlays(panels, out_dir / "overlays.png", threshold=cfg.threshold)
    return result

"""Find a model and its run configuration, and build the predictor for its task."""

from __future__ import annotations

from pathlib import Path

SEGMENTATION_TASKS = ("lung", "liver", "hippocampus")
CLASSIFICATION_TASKS = ("nodules", "isic")


def resolve_model(path, task: str | None = None) -> tuple[Path, dict]:
    """``(model_file, run_config)`` for a run directory or a ``.keras`` file.

    A ``.keras`` file takes its configuration from the ``config.json`` beside it when there
    is one; otherwise ``task`` must be given and the task's defaults apply.
    """
    from core.io import read_json
    from tasks.common import model_of_run

    run_dir, model_file = model_of_run(path)
    config_file = run_dir / "config.json"
    config = read_json(config_file) if config_file.is_file() else {}
    if task is not None:
        if config.get("task", task) != task:
            raise ValueError(f"{path} was trained for task {config['task']!r}, not {task!r}")
        config["task"] = task
    if "task" not in config:
        raise ValueError(f"{path}: no config.json beside the model says its task; pass --task")
    return model_file, config


def load_predictor(path, task: str | None = None, threshold: float | None = None):
    """A predictor for the model at ``path`` (run directory or ``.keras`` file).

    Segmentation tasks (lung, liver, hippocampus) give a
    :class:`inference.segmentation.SegmentationPredictor` with ``predict_volume``;
    classification tasks (nodules, isic) a
    :class:`inference.classification.ClassificationPredictor` with ``predict_images``.
    """
    import keras_losses  # noqa: F401  (registers the custom losses for loading)
    from training.io import load_model

    model_file, config = resolve_model(path, task)
    model = load_model(model_file, compile=False)
    if config["task"] in SEGMENTATION_TASKS:
        from inference.segmentation import SegmentationPredictor

        return SegmentationPredictor(model, config, threshold=threshold)
    if config["task"] in CLASSIFICATION_TASKS:
        from inference.classification import ClassificationPredictor

        return ClassificationPredictor(model, config, run_dir=model_file.parent)
    raise ValueError(f"{model_file}: unknown task {config['task']!r} in its config")

"""The training and validation arrays of a nodules run: generated (synthetic nodules) or read
from real LIDC-IDRI nodules (:mod:`tasks.nodules.real`); the one place that knows the source."""

from __future__ import annotations

from tasks.nodules.config import nodule_spec


def training_data(cfg: dict):
    """(x_train, y_train, x_val, y_val) of a run's config. Synthetic: the first 85 % train, the
    rest validation (labels alternate, so both halves are balanced); real nodules (``data_dir``):
    the scenario's nodules of the seed's training and validation patients (:mod:`tasks.nodules.real`)."""
    from data.nodules import generate_nodules

    if cfg.get("data_dir"):
        from tasks.nodules.real import real_training_data

        return real_training_data(cfg)

    images, _, labels = generate_nodules(
        int(cfg["n_samples"]), cfg["train_dist"][0], cfg["train_dist"][1], int(cfg["seed"]), nodule_spec(cfg)
    )
    n_val = int(round(len(images) * float(cfg["val_fraction"])))
    n_train = len(images) - n_val
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]

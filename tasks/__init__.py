"""One package per study, binding data + model + losses + metrics + defaults.

Every task package (``tasks/ct``, ``tasks/nodules``, ``tasks/isic``, ``tasks/hippocampus``; one
file per step inside, see each package's docstring) provides the same functions, which the
thin command lines call:

    add_train_arguments(parser, task)      train(args) -> run directory (Path)
    add_evaluate_arguments(parser, task)   evaluate(args) -> metrics dict
    add_reproduce_arguments(parser, name)  reproduce(args) -> output directory (Path)

Packages are imported lazily, so ``train.py --help`` and one task never pay for another.
"""

from __future__ import annotations

import importlib

TASKS = {
    "lung": "tasks.ct",  # Seo et al. 2021: GLF, mU-Net, MSD Task06 lung tumours
    "liver": "tasks.ct",  # Seo et al. 2021: GLF, mU-Net, LiTS liver tumours
    "nodules": "tasks.nodules",  # Baltatzis et al. 2021: CE vs contrastive, synthetic nodules
    "isic": "tasks.isic",  # Narayanaswamy et al. 2021: loss estimators, ODIN
    "hippocampus": "tasks.hippocampus",  # Rajput 2021: BCE/Dice/Focal robustness
}

REPRODUCTIONS = {
    "glf-lung": "tasks.ct",
    "glf-liver": "tasks.ct",
    "nodules": "tasks.nodules",
    "nodules-real": "tasks.nodules.real_reproduction",
    "lossest": "tasks.isic",
    "robustness": "tasks.hippocampus",
    "loss-benchmark": "tasks.lossbench",
}


def load(module_name: str):
    """Import a task package by its dotted name."""
    return importlib.import_module(module_name)


def task_module(task: str):
    if task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}; received {task!r}")
    return load(TASKS[task])

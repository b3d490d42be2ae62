"""Train a model for one task with one loss.

    python train.py --task lung --loss glf-det          # the main job (built-in phantom)
    python train.py --task lung --loss glf-det --data-dir /data/Task06_Lung
    python train.py --task nodules --loss contrastive --train-dist 180,160
    python train.py --task isic --loss ce+loss-estimator --data-dir ../shared/data/ham10000
    python train.py --task hippocampus --loss bce+dice --data-dir .../Task04_Hippocampus

``python train.py --task TASK --help`` lists the task's own options.
"""

from __future__ import annotations

import argparse
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tasks  # noqa: E402
from tasks.common import add_run_arguments


def build_parser(argv=None) -> tuple[argparse.ArgumentParser, object]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="lung", choices=list(tasks.TASKS))
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--task", default="lung", choices=list(tasks.TASKS),
        help="lung/liver: GLF tumour segmentation; nodules: synthetic nodule classification; "
        "isic: dermoscopy with a loss estimator; hippocampus: robustness study (default: lung)",
    )
    add_run_arguments(parser)
    module = tasks.task_module(known.task)
    module.add_train_arguments(parser, known.task)
    return parser, module


def main(argv=None) -> int:
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    module.train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

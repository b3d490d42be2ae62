"""Evaluate a saved model (a ``.keras`` file or a run directory) on a data source.

    python evaluate.py --task lung --model runs/lung-glf-det
    python evaluate.py --task nodules --model runs/nodules-ce --test-dist 150,190
    python evaluate.py --task hippocampus --model runs/hippocampus-dice --attacks

Writes a metrics JSON and PNG figures (see ``--task TASK --help`` for the task's options).
"""

from __future__ import annotations

import argparse
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tasks  # noqa: E402


def build_parser(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="lung", choices=list(tasks.TASKS))
    known, _ = pre.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="lung", choices=list(tasks.TASKS), help="the task the model was trained for (default: lung)")
    module = tasks.task_module(known.task)
    module.add_evaluate_arguments(parser, known.task)
    return parser, module


def main(argv=None) -> int:
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    module.evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

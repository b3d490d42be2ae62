"""Train a model for one task with one loss.

    python train.py --task lung --loss glf-det          # the main job (built-in phantom)
    python train.py --task lung --loss glf-det --data-dir /data/Task06_Lung
    python train.py --task nodules --loss contrastive --train-dist 180,160
    python train.py --task isic --loss ce+loss-estimator --data-dir ../shared/data/ham10000
    python train.py --task hippocampus --loss bce+dice --data-dir .../Task04_Hippocampus

``python train.py --task TASK --help`` lists the task's own options. A bad flag, bad data or
a failing disk ends in one ``error:`` line and exit status 2 (``--debug`` shows the
traceback); a NaN loss stops training with exit status 1 and names the last good model;
SIGINT, SIGTERM or SIGHUP stops it with exit status 128 + signal. A stopped run is resumable
(``--resume``), or removed if no epoch had finished. One process at a time owns a run folder.
"""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tasks  # noqa: E402
from tasks.common import add_run_arguments  # noqa: E402
from training import cli  # noqa: E402


def build_parser(argv=None) -> tuple[cli.ArgumentParser, object]:
    pre = cli.ArgumentParser(prog="train.py", add_help=False)
    pre.add_argument("--task", default="lung", choices=list(tasks.TASKS))
    known, _ = pre.parse_known_args(argv)
    parser = cli.ArgumentParser(
        prog="train.py", description=__doc__, formatter_class=cli.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--task",
        default="lung",
        choices=list(tasks.TASKS),
        help="lung/liver: GLF tumour segmentation; nodules: synthetic nodule classification; "
        "isic: dermoscopy with a loss estimator; hippocampus: robustness study (default: lung)",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism on top of the seed: two runs give identical numbers "
        "(costs CPU time; see README, Reproducibility)",
    )
    cli.add_debug_flag(parser)
    module = tasks.task_module(known.task)
    module.add_train_arguments(parser, known.task)
    return parser, module


def main(argv=None) -> int:
    """Parse ``argv`` and train; errors propagate (``cli.run`` turns them into one line)."""
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if args.deterministic:
        cli.enable_determinism()
    module.train(args)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

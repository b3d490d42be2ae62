"""Evaluate saved models (run directories or ``.keras`` files) on a data source.

    python evaluate.py runs/lung-glf-det                 # the task comes from the run's config.json
    python evaluate.py runs/lung-glf-det runs/lung-dice  # several runs compared in one set of figures
    python evaluate.py --task nodules --model runs/nodules-ce --test-dist 150,190
    python evaluate.py runs/hippocampus-dice --attacks

Run directories (or ``.keras`` files) may be given as positional arguments or with
``--model``. Writes a metrics JSON and PNG figures (see ``--task TASK --help`` for the
task's options). A run that did not finish (no COMPLETED) is refused unless
``--allow-unfinished``. A bad flag or bad data ends in one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tasks  # noqa: E402
from tasks.common import add_allow_unfinished_flag, allow_unfinished  # noqa: E402
from training import cli  # noqa: E402
from training.rundir import task_of_runs  # noqa: E402


def build_parser(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = cli.ArgumentParser(prog="evaluate.py", add_help=False)
    pre.add_argument("--task", default=None, choices=list(tasks.TASKS))
    known, _ = pre.parse_known_args(argv)
    task = known.task or task_of_runs(argv) or "lung"
    parser = cli.ArgumentParser(
        prog="evaluate.py", description=__doc__, formatter_class=cli.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--task",
        default=task,
        choices=list(tasks.TASKS),
        help="the task the model was trained for (default: the run's config.json, else lung)",
    )
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run directories or .keras files (the same as --model)",
    )
    add_allow_unfinished_flag(parser)
    cli.add_debug_flag(parser)
    module = tasks.task_module(task)
    module.add_evaluate_arguments(parser, task)
    cli.model_arguments_optional(parser)
    return parser, module


def main(argv=None) -> int:
    """Parse ``argv`` and evaluate; errors propagate (``cli.run`` turns them into one line)."""
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    cli.merge_positional_models(parser, args)
    allow_unfinished(args.allow_unfinished)
    module.evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

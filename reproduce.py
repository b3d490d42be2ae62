"""Reproduce a paper's experiment end to end and write report.md, results.json and figures.

    python reproduce.py glf-lung   [--quick] [--data-dir DIR] [--out DIR]   # Seo et al. 2021
    python reproduce.py glf-liver  [--quick] [--data-dir DIR]
    python reproduce.py nodules    [--quick] [--seeds N] --out DIR          # Baltatzis et al. 2021
    python reproduce.py nodules-real --data-dir ../shared/data/lidc_nodules --out DIR  # the same on real nodules
    python reproduce.py lossest    [--quick] --data-dir ../shared/data/ham10000  # Narayanaswamy et al.
    python reproduce.py robustness [--quick] --data-dir .../Task04_Hippocampus   # Rajput 2021
    python reproduce.py loss-benchmark [--quick] [--max-runs N]   # every loss, Ma et al. 2021

A bad flag or bad data ends in one ``error:`` line and exit status 2 (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tasks  # noqa: E402
from core.errors import UserError  # noqa: E402
from training import cli  # noqa: E402

DESCRIPTIONS = {
    "glf-lung": "Seo et al. 2021: D, E, T, G(D), G(E) on lung tumours (MSD Task06 or patches)",
    "glf-liver": "Seo et al. 2021: D, E, T, G(D), G(E) on liver tumours (LiTS)",
    "nodules": "Baltatzis et al. 2021: Table 1, CE vs contrastive under distribution shift",
    "nodules-real": "beyond Baltatzis et al. 2021: CE vs contrastive under attribute shifts of real LIDC-IDRI nodules",
    "lossest": "Narayanaswamy et al. 2021: loss estimator vs vanilla, ODIN OOD detection",
    "robustness": "Rajput 2021: BCE/Dice/Focal combinations under gradient pixel attacks",
    "loss-benchmark": "every segmentation loss of the library, one recipe, hippocampus and lung patches",
}


def build_parser(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = cli.ArgumentParser(
        prog="reproduce.py", description=__doc__, formatter_class=cli.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in tasks.REPRODUCTIONS.items():
        p = sub.add_parser(name, help=DESCRIPTIONS[name], description=DESCRIPTIONS[name])
        p.set_defaults(module_name=module_name)
        p.add_argument("--out", default=None, help=f"output directory (default: reports/{name})")
        p.add_argument(
            "--quick", action="store_true", help="small settings that finish on a 2-core CPU"
        )
        cli.add_debug_flag(p)
        if name == chosen:  # import only the task that runs
            tasks.load(module_name).add_reproduce_arguments(p, name)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` and reproduce; errors propagate (``cli.run`` turns them into one line)."""
    args = build_parser(argv).parse_args(argv)
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a file; give a folder for the report")
    tasks.load(args.module_name).reproduce(args)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

"""Every segmentation loss of the library on the shipped data: one recipe, 3 seeds, one command.

    python reproduce.py loss-benchmark [--quick] [--out DIR] [--max-runs N]

Tasks: MSD hippocampus (background, anterior, posterior; 2D slices, 3D HD95 per volume) and the
MSD lung tumour patches (binary, small structure). One folder per loss x task x seed, each
resumable; the same early-stopping rule for all; test Dice and HD95 (mm) per class.

    config.py        BenchConfig (the one recipe), --quick settings
    losses.py        the benchmark's losses: builder, group, tasks, settings
    data.py          the two data sets, split by case with the run's seed
    runs.py          train one run to its plateau and test it
    report.py        summary (mean +- sd, ranks), table, figures
    reproduction.py  the command: every run, then results.json and report.md
"""

from tasks.lossbench.reproduction import add_reproduce_arguments, reproduce

__all__ = ["add_reproduce_arguments", "reproduce"]

"""Lung and liver tumour segmentation with the adaptive GLF (Seo, Bassenne, Xing, TMI 2021).

    python train.py --task lung --loss glf-det                  # built-in phantom, a few minutes
    python train.py --task lung --loss glf-det --data-dir /data/Task06_Lung --paper
    python evaluate.py --task lung --model runs/lung-glf-det [--model runs/lung-dice ...]
    python reproduce.py glf-lung --quick --data-dir ../shared/data/msd_lung_patches

Losses (``--loss``): ``dice``, ``effectiveness`` (``--beta2``), ``tversky`` (``--tversky-alpha``
weighs false positives, ``--tversky-beta`` false negatives), ``glf`` (fixed ``--alpha-p
--alpha-n --beta2``), ``glf-det`` and ``glf-exp`` (adaptive GLF, deterministic and exploratory
rules of the paper's Fig. 2, starting from ``--alpha-p --alpha-n --beta2``; Dice values by
default).

Defaults are sized for a 2-core CPU (128x128 slices, a 16-filter mU-Net, 8 short epochs, Adam
1e-3 so that the network learns within them); ``--paper`` switches to the paper's 512x512 slices,
Adam 1e-4 and a full-size network (and any flag given explicitly wins over both).

A run directory (``--out``, default ``runs/<task>-<loss>``) holds ``config.json`` (resolved
configuration), ``split.json`` (test cases), ``best.keras`` (best validation Dice; loads with
``keras.saving.load_model`` after ``import keras_losses``), ``last.keras``, ``history.csv``,
``tensorboard/``, for adaptive runs ``glf_trajectory.csv`` with ``glf_coefficients.png``
(paper Fig. 6) and ``glf_tversky_trajectory.png`` (Fig. 7), and ``eval/`` with the test
metrics and figures of the best model.

One file per step (the names are nouns because ``train``, ``evaluate`` and ``reproduce``
are the functions below, which the command lines call):

    paper.py         the paper's stated settings (Sec. II-C) and published numbers (Sec. III)
    config.py        CTConfig, presets, flags -> config, the data configuration
    training.py      model, loss, metrics, callbacks; train a run
    evaluation.py    metrics and figures of saved runs
    reproduction.py  the glf-lung / glf-liver sweep
    report.py        its report.md: ours beside the paper's numbers, the claims, the ablation
"""

from tasks.ct.config import add_train_arguments
from tasks.ct.evaluation import add_evaluate_arguments, evaluate
from tasks.ct.reproduction import add_reproduce_arguments, reproduce
from tasks.ct.training import train

__all__ = [
    "add_train_arguments",
    "train",
    "add_evaluate_arguments",
    "evaluate",
    "add_reproduce_arguments",
    "reproduce",
]

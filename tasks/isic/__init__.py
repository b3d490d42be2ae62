"""Dermoscopy with a loss-estimator head and ODIN OOD detection (Narayanaswamy et al. 2021).

    python train.py --task isic --loss ce                  # vanilla VGG-16 (synthetic set)
    python train.py --task isic --loss ce+loss-estimator --data-dir ../shared/data/ham10000
    python evaluate.py --task isic --model runs/isic-ce-loss-estimator
    python reproduce.py lossest --quick --data-dir ../shared/data/ham10000

Reference: V. Narayanaswamy, J. J. Thiagarajan, D. Rajan, A. Spanias, "Loss estimators improve
model generalization", arXiv:2103.03788 (2021): Sec. 3 (head, lambda = 0.5), Sec. 4 (ISIC 2019 set-up, Fig. 3,
Table 1, Fig. 5). Paper values are quoted in each option's help.

One file per step (the names are nouns because ``train``, ``evaluate`` and ``reproduce``
are the functions below, which the command lines call):

    paper.py         the paper's stated settings (Sec. 3, 4.1) and numbers (Fig. 3, Table 1, Fig. 5)
    config.py        IsicConfig, EvalConfig
    training.py      records, model (+ loss-estimator head), train a run
    evaluation.py    balanced accuracy and ODIN on saved runs
    figures.py       score histograms and the summary figure
    reproduction.py  the lossest sweep and its report
"""

from tasks.isic.evaluation import add_evaluate_arguments, evaluate
from tasks.isic.reproduction import add_reproduce_arguments, reproduce
from tasks.isic.training import add_train_arguments, train

__all__ = [
    "add_train_arguments",
    "train",
    "add_evaluate_arguments",
    "evaluate",
    "add_reproduce_arguments",
    "reproduce",
]

"""Rajput (2021): robustness of BCE, Dice, BCE+Dice and BCE+Dice+Focal to gradient pixel attacks.

A 2D U-Net is trained on MSD Task04 hippocampus slices with each loss; then the N input
pixels of largest gradient (of the predicted output w.r.t. the input) are overwritten, and
Dice is measured as N and the written value grow (the paper's Figures 1-7).

    python train.py --task hippocampus --loss dice --data-dir .../Task04_Hippocampus
    python evaluate.py --task hippocampus --model runs/hippocampus-bce runs/hippocampus-dice
    python reproduce.py robustness --data-dir .../Task04_Hippocampus --quick

Reference:
    V. Rajput, "Robustness of different loss functions and their impact on networks learning
    capability", arXiv:2110.08322, 2021.

One file per step (the names are nouns because ``train``, ``evaluate`` and ``reproduce``
are the functions below, which the command lines call):

    paper.py         the paper's stated settings (Sec. 3)
    config.py        HippocampusConfig, AttackConfig, --quick settings
    training.py      model, loss, slices, train a run
    evaluation.py    the gradient pixel attacks on saved runs
    figures.py       the figures of the attacks (paper Figures 1-7)
    reproduction.py  the robustness sweep over seeds and the report
    seeds.py         mean +- sd over seeds of every curve point, convergence, their figures
    claims.py        the paper's claims, checked one by one
"""

from tasks.hippocampus.evaluation import add_evaluate_arguments, evaluate
from tasks.hippocampus.reproduction import add_reproduce_arguments, reproduce
from tasks.hippocampus.training import add_train_arguments, train

__all__ = [
    "add_train_arguments",
    "train",
    "add_evaluate_arguments",
    "evaluate",
    "add_reproduce_arguments",
    "reproduce",
]

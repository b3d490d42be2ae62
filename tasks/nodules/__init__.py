"""Baltatzis et al. (2021): cross-entropy vs siamese contrastive loss under distribution shift.

A LeNet-5 is trained on synthetic nodules of one distribution D(i_mal, i_ben) (foreground
intensity of malignant / benign nodules) and tested on others, with (a) cross-entropy end to
end, or (b) a siamese encoder trained with the contrastive loss and then (c) a classifier
head trained with cross-entropy on the frozen encoder. Table 1 of the paper shows that the
loss decides whether the network learns shape (which transfers) or intensity (which does not).

    python train.py --task nodules --loss ce --train-dist 150,150
    python train.py --task nodules --loss contrastive --train-dist 180,160
    python evaluate.py --task nodules --model runs/nodules-ce --test-dist 130,170 170,130
    python reproduce.py nodules --out reports/nodules [--seeds 3] [--quick]

Reference:
    V. Baltatzis, L. Le Folgoc, S. Ellis, O. E. Martinez Manzanera, K.-M. Bintsi, A. Nair,
    S. Desai, B. Glocker, J. A. Schnabel, "The effect of the loss on generalization: empirical
    study on synthetic lung nodule data", iMIMIC / MICCAI workshops 2021 (arXiv:2108.04815).

One file per step (the names are nouns because ``train``, ``evaluate`` and ``reproduce``
are the functions below, which the command lines call):

    paper.py         the paper's stated settings (Sec. 3) and Table 1
    config.py        NodulesConfig: the settings of a run
    sets.py          the training and validation arrays of a run (synthetic or real nodules)
    training.py      CE and contrastive (siamese + head) training
    evaluation.py    metrics, saliency and PCA of saved runs (synthetic or real nodules)
    reproduction.py  every model of Table 1 over seeds, and its report
    real.py          real LIDC-IDRI nodules: scenarios, patient-grouped splits, the sets of a run
    real_reproduction.py  both losses on real nodules (reproduce.py nodules-real), its report
"""

from tasks.nodules.evaluation import add_evaluate_arguments, evaluate
from tasks.nodules.reproduction import add_reproduce_arguments, reproduce
from tasks.nodules.training import add_train_arguments, train

__all__ = [
    "add_train_arguments",
    "train",
    "add_evaluate_arguments",
    "evaluate",
    "add_reproduce_arguments",
    "reproduce",
]

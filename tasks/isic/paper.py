"""Narayanaswamy et al. 2021 (loss estimators, ODIN on ISIC 2019): what the paper states.

Each constant quotes where it stands in ``../shared/papers/narayanaswamy-2021-loss-estimators.txt``.
What the paper leaves open (the margin, the colour-constancy norm, our stand-in OOD sets) is our
choice and lives in ``config.py`` with its reason.
"""

from __future__ import annotations

# --- stated settings
# Sec. 3, after eq. (2): "The parameter λ was set to 0.5 in all our experiments."
LAMBDA_RANK = 0.5
# Sec. 4.1 Setup: "we used 90 – 10 stratified random splits for train/validation and report
# performance from 3 independent trials"
VAL_FRACTION = 0.1
TRIALS = 3
# Sec. 4.1 Setup: "all images were center cropped to 0.85 times its original width, adjusted for
# color constancy and resized to 224 × 224 × 3"
CROP_FRACTION = 0.85
IMAGE_SIZE = 224
# Sec. 4.1 Setup: "we adopted a VGG-16 network (pre-trained on imagenet) and fine-tuned it for 50 epochs"
EPOCHS = 50
# Sec. 4.1 Setup: "learning rate of 1e-4 reduced by a factor of 0.5 every 10 epochs, Adam optimizer
# with 0.9 momentum and 5e-4 weight decay, dropout of 0.4, and batch size of 64"
LEARNING_RATE = 1e-4
LR_HALVE_EVERY = 10
WEIGHT_DECAY = 5e-4
DROPOUT = 0.4
BATCH_SIZE = 64
# Sec. 4.3: the predictor is trained on 5 of ISIC 2019's 8 classes, "the 3 remaining classes
# (BKL, VASC and SCC) as novel data at test time"
IN_CLASSES = ["MEL", "NV", "BCC", "AK", "DF"]

# --- published numbers, in %
# Sec. 4.1 Findings (Fig. 3): balanced accuracy "77.9% as opposed to 73.1% of the vanilla model".
# Sec. 4.2, Table 1: ODIN, (vanilla, proposed) per OOD set; the paper's NCT is our "histology" and
# its ImageNet our "natural" stand-in (see "sets").
# Sec. 4.3 (Fig. 5): new classes, "AUROC metric - Vanilla: 56.3%, Proposed : 65.26%".
PAPER = {
    "balanced_accuracy": {"vanilla": 73.1, "proposed": 77.9},
    "fpr_at_95_tpr": {"histology": (51.41, 17.93), "b-box": (36.43, 5.16)},
    "auroc": {
        "histology": (87.27, 96.43),
        "b-box": (90.74, 98.74),
        "b-box-70": (100.0, 100.0),
        "natural": (79.03, 87.57),
        "derm-skin": (87.14, 95.69),
        "new-class": (56.3, 65.26),
    },
    "clin-skin_auroc": (82.58, 92.15),
    "sets": {
        "histology": "NCT (colorectal H&E) in the paper; here crops of scikit-image's immunohistochemistry slide",
        "natural": "ImageNet in the paper; here crops of scikit-image's bundled photographs",
        "b-box": "B-Box",
        "b-box-70": "B-Box-70",
        "derm-skin": "Derm-Skin",
        "new-class": "held-out classes (paper Fig. 5)",
        "clin-skin": "Clin-Skin: no equivalent set here (clinical skin photographs are not available offline)",
    },
}

"""Seo, Bassenne, Xing, IEEE TMI 2021 (adaptive generalized loss, mU-Net): what the paper states.

Each constant quotes where it stands in ``../shared/papers/seo-bassenne-xing-2021-adaptive-glf.txt``.
What the paper leaves open (epochs, filter width, batch size, the baselines' grids) is our choice
and lives in ``config.py`` / ``reproduction.py`` with its reason.
"""

from __future__ import annotations

# --- stated settings, Sec. II-C "Training details"
# "neural network parameters are randomly initialized using a truncated normal distribution with
# mean value of 0, standard deviation of 0.05, and constant bias values of 0.1"
KERNEL_STDDEV = 0.05
BIAS_VALUE = 0.1
# "The initial learning rate is 0.0001." (Adam)
LEARNING_RATE = 1e-4
# "The decay value of the moving average in the batch normalization was 0.9"
BN_MOMENTUM = 0.9
# "the dropout probability was 0.6"
DROPOUT = 0.6
# "All input images are 512×512"
IMAGE_SIZE = 512
# "The performance metrics are calculated by thresholding the continuous output layer values with
# a threshold 0.5."
THRESHOLD = 0.5

# Fig. 4 caption: "for the liver dataset in (d): the full length 512 pixels of the CT scan
# corresponds to 30cm". The lung's spacing is not stated (evaluation.segmentation.PAPER_PIXEL_MM,
# 0.78 mm, is ours). Used to place the "< 100 px" small-tumour range at another resolution.
PIXEL_MM = {"liver": 300.0 / 512}

# --- published numbers, in %
# Sec. III (Results), on Fig. 3 (test slices with a tumour): "The precision reach very high values
# up to 96.3% and 98.1%"; recall "88.3% (D) and 90.4% (E) for the lung dataset, and 84.3% (D) and
# 85.8% (E) for the liver dataset, all statistically significantly larger compared to the 82% and
# 83.3% best recall performance obtained with the conventional loss functions".
# Sec. III, on Fig. 5 (test slices without a tumour): "On the lung (liver) data, the Dice
# coefficient is increased from 71.6% (87.2%) for the Tversky loss to 75.4% (88.8%) and 77.4%
# (90.1%) for the deterministic and exploratory training of the GLF".
PAPER_RESULTS = {
    "lung": {
        "recall": {"G(D)": 88.3, "G(E)": 90.4, "best conventional": 82.0},
        "tumour_free_dice": {"T": 71.6, "G(D)": 75.4, "G(E)": 77.4},
        "precision_max": 96.3,
    },
    "liver": {
        "recall": {"G(D)": 84.3, "G(E)": 85.8, "best conventional": 83.3},
        "tumour_free_dice": {"T": 87.2, "G(D)": 88.8, "G(E)": 90.1},
        "precision_max": 98.1,
    },
}

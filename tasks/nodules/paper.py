"""Baltatzis et al. 2021 (CE vs contrastive loss on synthetic lung nodules): what the paper states.

Each constant quotes where it stands in
``../shared/papers/baltatzis-2021-loss-generalization-synthetic-nodules.txt``. What the paper leaves
open (image size, pixel noise, shapes and deformation ranges) is our choice and lives in ``config.py``
with its reason.
"""

from __future__ import annotations

PAPER = "Baltatzis et al. 2021"

# --- stated settings, Sec. 3 "Training details"
# "We draw 200 samples from the training distribution, 85% of which are for training and 15% for
# validation, and another 200 samples from the test distribution for testing."
N_SAMPLES = 200
VAL_FRACTION = 0.15
N_TEST = 200
# "The networks are trained using the Adam optimizer [3] (learning rate = 10^-4) for 100 epochs and
# a batch size of 32 samples."
LEARNING_RATE = 1e-4
EPOCHS = 100
BATCH_SIZE = 32
# The same paragraph in the second text copy (the first lost the sentence): "The margin is chosen to
# be m = 1 based on validation performance."
MARGIN = 1.0

# --- published numbers
# Table 1 of the paper: (scenario, train D(i_mal, i_ben), test D, loss, (acc, se, sp)); the
# scenarios' distributions are those of Sec. 3 "Experimental Scenario 1-3".
TABLE1 = (
    (1, (150, 150), (130, 170), "ce", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "ce", (0.62, 0.87, 0.37)),
    (1, (150, 150), (130, 170), "contrastive", (1.00, 1.00, 1.00)),
    (1, (150, 150), (170, 130), "contrastive", (0.15, 0.30, 0.00)),
    (2, (180, 160), (150, 190), "ce", (0.94, 0.90, 0.98)),
    (2, (180, 160), (190, 150), "ce", (0.96, 0.94, 0.98)),
    (2, (180, 160), (150, 190), "contrastive", (0.27, 0.01, 0.53)),
    (2, (180, 160), (190, 150), "contrastive", (1.00, 1.00, 1.00)),
    (3, (180, 150), (150, 190), "ce", (0.59, 0.35, 0.83)),
)

"""Rajput 2021 (robustness of BCE / Dice / Focal combinations to pixel attacks): what the paper states.

Each constant quotes where it stands in
``../shared/papers/rajput-2021-robustness-of-loss-functions.txt``. The paper prints no table; its
results are the trends of Figures 2-6, checked one by one in ``claims.py``
(``check_claims``). What it leaves open (epochs, batch size, learning rate, U-Net width) is our
choice and lives in ``config.py`` with its reason.
"""

from __future__ import annotations

PAPER = "Rajput 2021, arXiv:2110.08322"

# Sec. 3 (Methodology): "It had 395 3-D images out of which 263 are for training and 131 for
# testing" (131 of 263 + 131 is about 1/3). MSD Task04's dataset.json lists 260 labelled volumes
# ("numTraining": 260); those are the volumes we split.
TEST_FRACTION = 1 / 3
# Sec. 3: "we have scaled all our images between 0 and 0.2 (for training)"
MAX_INTENSITY = 0.2
# Sec. 3: "first we identify the pixels corresponding to 5-highest gradient and replace those
# pixels with (i) with maximum pixel value i.e., 0.2 (in our case) (ii) with value of 0, 0.1, 0.2,
# 0.4, 0.6 and 0.8" (Figs. 2-3 plot noise levels up to 1.0)
N_FIXED = 5
VALUES = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]
# Sec. 3: "we replace N-pixels (i) with 0.2 and (ii) with random values between 0 and 1 (for this
# case each experiment is run 100 times)" (Figs. 5 and 6)
FIXED_VALUE = 0.2
REPETITIONS = 100

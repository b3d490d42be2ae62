"""Narayanaswamy et al. (2021): the paper's published numbers."""

from __future__ import annotations

# Narayanaswamy et al. 2021: Fig. 3 (balanced accuracy), Table 1 (ODIN, vanilla / proposed), Fig. 5
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

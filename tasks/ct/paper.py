"""Seo, Bassenne, Xing (IEEE TMI 2021): the paper's published numbers."""

from __future__ import annotations

# Paper's numbers (Seo et al. 2021, Figs. 3 and 5, as quoted in the issue), in %.
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

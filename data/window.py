"""Hounsfield-unit windows: clip CT intensities to a task's window and scale to [0, 1]."""

from __future__ import annotations

import numpy as np

# Defaults per task: lung [-1000, 400] HU shows parenchyma,
# vessels and soft-tissue tumours; liver [-200, 250] HU is the usual abdominal window.
DEFAULT_WINDOWS = {"lung": (-1000.0, 400.0), "liver": (-200.0, 250.0)}


def apply_window(values: np.ndarray, window) -> np.ndarray:
    """``clip((values - lo) / (hi - lo), 0, 1)`` as float32."""
    lo, hi = (float(v) for v in window)
    if not hi > lo:
        raise ValueError(f"window must be (low, high) with high > low; received {tuple(window)}")
    out = (np.asarray(values, dtype=np.float32) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)

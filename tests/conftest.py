"""Test-wide settings: quiet TensorFlow, the location of the shared real data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KERAS_LOSSES_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set KERAS_LOSSES_SHARED_DATA)")
    return SHARED_DATA


def _assert_png_shows_something(path, min_side: int = 100) -> None:
    """A readable PNG of a plausible size (a strip of panels may be ~190 px high) whose pixels are
    not one colour and hold some ink."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) >= min_side, (path, pixels.shape)
    assert pixels.std() > 5, (path, "nearly constant pixels")
    assert (pixels < 128).mean() > 0.005, (path, "almost no dark pixels: an empty plot")


@pytest.fixture
def assert_png():
    """``assert_png(path)``: the figure at ``path`` shows something (not only that it exists)."""
    return _assert_png_shows_something

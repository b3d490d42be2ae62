"""Test-wide settings: quiet TensorFlow, the location of the shared real data, small lung patches."""

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


def write_patches(path: Path, n: int, size: int, seed: int) -> None:
    """HDF5 patches as in msd_lung_patches: bright discs are tumours, every 5th slice has none."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, size, size)).astype(np.float32) * 0.3
    labels = np.zeros((n, 1, size, size))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        if i % 5 == 4:
            continue
        r = int(rng.integers(2, 6))
        cy, cx = rng.integers(r, size - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[i, 0][disc] = 1
        images[i, 0][disc] += 0.6
    with h5py.File(path, "w") as f:
        f["images"] = np.clip(images, 0, 1)
        f["labels"] = labels


@pytest.fixture
def patch_dir(tmp_path, monkeypatch) -> Path:
    """A folder like ../shared/data/msd_lung_patches at 32x32, with its own preprocessing cache."""
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "patches"
    folder.mkdir()
    write_patches(folder / "val_patches.h5", 40, 32, 0)  # 4 patients: train + validation
    write_patches(folder / "test_patches.h5", 20, 32, 1)  # 2 other patients: test
    return folder

"""The real MSD lung tumour patches in <shared data>/msd_lung_patches (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from data.ct import CTDataConfig, check_ct_data, prepare_ct_data


@pytest.fixture
def patches(shared_data, tmp_path, monkeypatch):
    """``msd_lung_patches`` under the shared data folder (``KERAS_LOSSES_SHARED_DATA`` moves it)."""
    folder = shared_data / "msd_lung_patches"
    if not (folder / "val_patches.h5").is_file():
        pytest.skip(f"real MSD lung patches not found at {folder}")
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))
    return folder


def test_train_on_val_file_test_on_test_file(tmp_path, patches):
    cfg = CTDataConfig(data_dir=str(patches), image_size=48, val_fraction=0.15, verbose=False, augment=False)
    assert check_ct_data(cfg) == []
    data = prepare_ct_data(cfg, run_dir=tmp_path / "run")
    assert data.source == "hdf5" and (tmp_path / "run" / "split.json").is_file()
    assert len(data.split["train"]) + len(data.split["val"]) == 13 and len(data.split["val"]) == 2
    assert all(c.startswith("val_patches/") for c in data.split["train"] + data.split["val"])
    assert len(data.split["test"]) == 13 and all(c.startswith("test_patches/") for c in data.split["test"])
    assert data.num_slices("test") == 130
    x, m = next(iter(data.test(130)))
    assert x.shape == (130, 48, 48, 1) and 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    fraction = float(np.mean(m))
    assert 0.03 < fraction < 0.09  # tumour is about 5-7 % of the patch pixels (data README)

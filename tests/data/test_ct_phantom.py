"""The built-in CT phantoms: layout, Hounsfield values, tumour sizes in the GLF paper's range."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from data.cache import cache_root
from data.ct import CTDataConfig, prepare_ct_data
from data.msd import list_msd_cases
from data.phantom import PhantomSpec, make_liver_phantom, make_lung_phantom, phantom_dir

SMALL = PhantomSpec(n_volumes=4, size=128, n_slices=24)
SCALE = (512 / SMALL.size) ** 2  # pixels at 128x128 -> pixels at 512x512


@pytest.fixture(scope="module")
def lung(tmp_path_factory):
    return make_lung_phantom(tmp_path_factory.mktemp("lung"), SMALL)


def test_lung_layout_and_hounsfield_values(lung):
    cases = list_msd_cases(lung)
    assert [c.case_id for c in cases] == [f"lung_{i:03d}" for i in range(1, 5)]
    hu = np.asarray(nib.load(str(cases[0].image)).dataobj)
    label = np.asarray(nib.load(str(cases[0].label)).dataobj)
    assert hu.dtype == np.int16 and hu.shape == (128, 128, 24) and label.dtype == np.uint8
    assert set(np.unique(label).tolist()) <= {0, 1}
    z = 12
    assert np.median(hu[:3, :3, z]) < -950  # air outside the body
    slice_z = hu[:, :, z]
    lungs = slice_z[(slice_z > -950) & (slice_z < -600)]
    assert lungs.size > 0.1 * slice_z.size and -870 < np.median(lungs) < -780  # lungs near -800 HU
    # tumours are soft tissue
    assert -100 < np.median(hu[label == 1]) < 120


def test_tumour_sizes_span_the_paper_range(lung):
    areas, free = [], 0
    for case in list_msd_cases(lung):
        label = np.asarray(nib.load(str(case.label)).dataobj)
        per_slice = label.sum(axis=(0, 1)) * SCALE  # area at 512x512
        areas += per_slice[per_slice > 0].tolist()
        free += int((per_slice == 0).sum())
    areas = np.array(areas)
    assert free > 0 and len(areas) > 0
    assert (areas < 100).mean() >= 0.3  # many below 100 px at 512 (0.04 % of the slice)
    assert areas.max() <= 0.0025 * 512 * 512  # up to about 0.2 % of the slice
    assert areas.max() >= 200
    meta = json.loads((lung / "phantom.json").read_text())
    assert len(meta["volumes"]) == 4


def test_liver_phantom_lits_layout_orientation(tmp_path):
    root = make_liver_phantom(tmp_path / "lits", PhantomSpec(n_volumes=2, size=64, n_slices=12))
    assert sorted(p.name for p in root.glob("*.nii")) == ["segmentation-0.nii", "segmentation-1.nii", "volume-0.nii", "volume-1.nii"]
    flipped = nib.load(str(root / "volume-1.nii"))
    assert nib.aff2axcodes(flipped.affine)[0] == "L" and nib.aff2axcodes(nib.load(str(root / "volume-0.nii")).affine)[0] == "R"
    seg = np.asarray(nib.load(str(root / "segmentation-0.nii")).dataobj)
    assert set(np.unique(seg).tolist()) == {0, 1, 2}


def test_default_phantom_is_generated_once_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    cfg = CTDataConfig(image_size=64, phantom_volumes=4, phantom_size=128, phantom_slices=16, augment=False)
    data = prepare_ct_data(cfg)
    out = capsys.readouterr().out
    assert data.source == "phantom" and data.synthetic
    assert "SYNTHETIC" in out and "--data-dir" in out
    assert str(tmp_path / "cache") in str(data.root)
    assert "synthetic phantom" in data.describe()
    stamp = (data.root / "phantom.json").stat().st_mtime_ns
    assert phantom_dir("lung", PhantomSpec(n_volumes=4, size=128, n_slices=16), verbose=False) == data.root
    assert (data.root / "phantom.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    x, m = next(iter(data.test(4)))
    assert x.shape == (4, 64, 64, 1)


def test_default_liver_phantom_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("KERAS_LOSSES_CACHE", raising=False)
    cfg = CTDataConfig(task="liver", image_size=64, phantom_volumes=4, phantom_size=128, phantom_slices=16,
                       verbose=False, augment=False)
    data = prepare_ct_data(cfg)
    assert data.root.parent == tmp_path / "xdg" / "keras_losses" / "phantoms"
    assert data.root.name.startswith("LiTS_phantom")
    assert data.cache.manifest["window"] == [-200.0, 250.0]
    assert (data.cache.tumour_px_source > 0).any() and (data.cache.tumour_px_source == 0).any()

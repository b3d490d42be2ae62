"""MSD Task04 hippocampus slices: padding, scaling, binary labels, cache, split, errors."""

import json

import nibabel as nib
import numpy as np
import pytest

from data.hippocampus import (
    SliceSettings,
    decode_case,
    list_cases,
    load_case_cached,
    load_slices,
    pad_slices,
    scale_intensities,
    split_cases,
)
from data.validate import DataError


def write_msd(root, volumes, image_dtype=np.float32, label_dtype=np.uint8):
    """Write ``[(image (H, W, D), labels (H, W, D)), ...]`` as an MSD Task04 folder."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    entries = []
    for i, (image, labels) in enumerate(volumes, start=1):
        name = f"hippocampus_{i:03d}.nii.gz"
        nib.save(
            nib.Nifti1Image(image.astype(image_dtype), np.eye(4)), str(root / "imagesTr" / name)
        )
        nib.save(
            nib.Nifti1Image(labels.astype(label_dtype), np.eye(4)), str(root / "labelsTr" / name)
        )
        entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "imagesTr" / "._hippocampus_001.nii.gz").write_bytes(b"macOS junk")
    (root / "dataset.json").write_text(
        json.dumps({"name": "Hippocampus", "training": entries, "test": []})
    )
    return root


def volume(shape=(5, 7, 3), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(10, 100, size=shape)
    labels = np.zeros(shape)
    labels[1:3, 2:4, 1] = 1
    labels[3, 4, 1:] = 2
    return image, labels


def test_pad_slices_centres_each_depth_slice():
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (H, W, D)
    out = pad_slices(vol, 6)
    assert out.shape == (4, 6, 6)
    np.testing.assert_array_equal(out[1, 2:4, 1:4], vol[:, :, 1])
    assert out.sum() == vol.sum()


def test_pad_slices_refuses_slices_larger_than_the_size():
    with pytest.raises(DataError, match="exceeds the padded size 4x4"):
        pad_slices(np.zeros((5, 3, 2)), 4, "case.nii.gz")


def test_scale_intensities_default_maps_min_to_zero_and_max_to_02():
    # shape: (1, 2, 2); min 2, max 1000 -> x' = 0.2 (x - 2) / 998, no clipping (the paper)
    vol = np.array([[[2.0, 4.0], [6.0, 1000.0]]])
    out = scale_intensities(vol, SliceSettings())
    np.testing.assert_allclose(out.ravel(), [0.0, 0.2 * 2 / 998, 0.2 * 4 / 998, 0.2], rtol=1e-6)
    # the percentile is ignored under scaling="max"
    assert np.array_equal(out, scale_intensities(vol, SliceSettings(clip_percentile=50)))
    assert scale_intensities(np.full((2, 2, 2), 7.0), SliceSettings()).max() == 0


def test_scale_intensities_percentile_option_maps_percentile_to_max_and_clips():
    vol = np.array([[[2.0, 4.0], [6.0, 1000.0]]])
    # np.percentile([2, 4, 6, 1000], 50) = 5 -> x' = 0.2 (x - 2) / 3, clipped to 0.2
    out = scale_intensities(vol, SliceSettings(scaling="percentile", clip_percentile=50))
    np.testing.assert_allclose(out.ravel(), [0.0, 0.2 * 2 / 3, 0.2, 0.2], rtol=1e-6)
    full = scale_intensities(vol, SliceSettings(scaling="percentile", clip_percentile=100))
    np.testing.assert_allclose(full, scale_intensities(vol, SliceSettings()), rtol=1e-6)


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="scaling must be one of max, percentile; received 'p99'"):
        SliceSettings(scaling="p99")


@pytest.mark.parametrize(
    "image_dtype,label_dtype", [(np.float32, np.uint8), (np.uint8, np.float32)]
)
def test_decode_case_binary_foreground_and_range(tmp_path, image_dtype, label_dtype):
    image, labels = volume()
    root = write_msd(tmp_path / "Task04", [(image, labels)], image_dtype, label_dtype)
    (case,) = list_cases(root)
    images, masks = decode_case(case, SliceSettings(size=16))
    assert images.shape == masks.shape == (3, 16, 16)
    assert images.dtype == np.float32 and masks.dtype == np.uint8
    assert 0 <= images.min() and images.max() == pytest.approx(0.2, abs=1e-6)
    # labels 1 and 2 together are the foreground
    assert masks.sum() == np.count_nonzero(labels)
    assert set(np.unique(masks)) == {0, 1}


def test_decode_case_rejects_bad_labels_naming_the_file(tmp_path):
    image, labels = volume()
    labels[0, 0, 0] = 7
    root = write_msd(tmp_path / "Task04", [(image, labels)])
    (case,) = list_cases(root)
    with pytest.raises(DataError, match=r"labelsTr/hippocampus_001\.nii\.gz: expected labels in \{0, 1, 2\}; found \[7\]"):
        decode_case(case, SliceSettings(size=16))


def test_cache_is_reused_and_keyed_by_settings(tmp_path):
    root = write_msd(tmp_path / "Task04", [volume(seed=1)])
    (case,) = list_cases(root)
    cache = tmp_path / "cache"
    first = load_case_cached(case, SliceSettings(size=16), cache)
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_case_cached(case, SliceSettings(size=16), cache)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    load_case_cached(case, SliceSettings(size=32), cache)
    assert len(list(cache.glob("*.npz"))) == 2


def test_cache_never_serves_one_scaling_for_another(tmp_path):
    image, labels = volume()
    image[0, 0, 0] = 1000.0  # a bright outlier: max and percentile scaling differ
    (case,) = list_cases(write_msd(tmp_path / "Task04", [(image, labels)]))
    cache = tmp_path / "cache"
    pct = SliceSettings(size=16, scaling="percentile", clip_percentile=90)
    old, _ = load_case_cached(case, pct, cache)
    new, _ = load_case_cached(case, SliceSettings(size=16), cache)
    assert len(list(cache.glob("*.npz"))) == 2
    np.testing.assert_allclose(new, decode_case(case, SliceSettings(size=16))[0])
    assert new.mean() < 0.5 * old.mean()  # tissue sits far lower under max scaling


def test_cached_entry_is_read_without_nifti(tmp_path, monkeypatch):
    root = write_msd(tmp_path / "Task04", [volume(seed=2)])
    (case,) = list_cases(root)
    load_case_cached(case, SliceSettings(size=16), tmp_path / "cache")
    import data.hippocampus as hip

    def fail(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(hip, "decode_case", fail)
    images, masks = load_case_cached(case, SliceSettings(size=16), tmp_path / "cache")
    assert images.shape == (3, 16, 16)


def test_split_by_volume_is_seeded_and_disjoint():
    ids = [f"hippocampus_{i:03d}" for i in range(30)]
    a = split_cases(ids, 1 / 3, seed=3, val_fraction=0.1)
    b = split_cases(ids, 1 / 3, seed=3, val_fraction=0.1)
    assert a == b
    assert len(a["test"]) == 10 and len(a["val"]) == 2 and len(a["train"]) == 18
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert split_cases(ids, 1 / 3, seed=4)["test"] != a["test"]


def test_load_slices_stacks_volumes(tmp_path):
    root = write_msd(tmp_path / "Task04", [volume((5, 7, 3), 0), volume((6, 5, 2), 1)])
    cases = list_cases(root)
    images, masks, vol = load_slices(cases, SliceSettings(size=16), tmp_path / "cache")
    assert images.shape == masks.shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(vol, [0, 0, 0, 1, 1])


def test_real_task04_loads(shared_data, tmp_path):
    root = shared_data / "msd_hippocampus" / "Task04_Hippocampus"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    cases = list_cases(root)
    assert len(cases) == 260
    images, masks, vol = load_slices(cases[:6], SliceSettings(), tmp_path / "cache")
    assert images.shape[1:] == (64, 64, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 0.2 + 1e-6
    assert set(np.unique(masks)) == {0, 1}
    assert 0 < masks.mean() < 0.1

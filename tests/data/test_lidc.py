"""data/lidc.py: real nodule volumes -> 2D crops, the table, and the loader's bad inputs.

Small NIfTI folders in the shared copy's format are written into tmp_path: a background of
-800 HU with a bright disc (0 HU) on a few slices, largest on one known slice.
"""

import csv

import nibabel as nib
import numpy as np
import pytest

from data.lidc import CropSpec, crop_nodule, load_nodules, read_table
from data.validate import DataError

HEADER = ["patient_id", "nodule_id", "Diagnosis", "Diagnosis_value", "Texture", "Texture_value",
          "Calcification", "Calcification_value", "Spiculation_value", "diameter_mm"]
SPACING = (0.7, 0.7, 2.5)


def write_volume(folder, name, *, radius=(2, 4, 3), centre=(9, 11), hu=0.0, shape=(20, 22, 3), mask=True):
    """image/NAME and nodule_mask/NAME: discs of the given radius per slice (slice 1 largest)."""
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    m = np.zeros(shape, np.int16)
    for z, r in enumerate(radius):
        m[..., z] = (ii - centre[0]) ** 2 + (jj - centre[1]) ** 2 <= r * r
    image = np.where(m > 0, hu, -800.0).astype(np.int16)
    affine = np.diag([*SPACING, 1.0])
    for sub, data in (("image", image), ("nodule_mask", m)):
        if sub == "nodule_mask" and not mask:
            continue
        (folder / sub).mkdir(parents=True, exist_ok=True)
        img = nib.Nifti1Image(data, affine)
        img.header.set_zooms(SPACING)
        nib.save(img, folder / sub / name)


def write_table(folder, rows):
    with open(folder / "nodules.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for patient, nodule, diagnosis, texture, calcification in rows:
            w.writerow([patient, nodule, diagnosis, int(diagnosis == "Malign"), "t", texture, "c", calcification, 1, 5.0])


def small_folder(tmp_path):
    folder = tmp_path / "lidc"
    write_volume(folder, "P-0001_R_1.nii.gz")
    write_volume(folder, "P-0002_R_1.nii.gz", hu=-600.0)
    write_volume(folder, "P-0002_R_2.nii.gz", hu=300.0)
    write_table(folder, [("P-0001", 1, "Malign", 5, 6), ("P-0002", 1, "Benign", 1, 6), ("P-0002", 2, "Benign", 5, 3)])
    return folder


def window(hu, low=-1000.0, high=400.0):
    return float(np.clip((hu - low) / (high - low), 0, 1) * 255)


def test_crop_is_the_largest_slice_centred_resampled_and_windowed(tmp_path):
    folder = tmp_path / "lidc"
    write_volume(folder, "P-0001_R_1.nii.gz", centre=(9, 11))
    spec = CropSpec(size=9, spacing_mm=0.35)  # half the source spacing: 2 crop pixels per voxel
    crop, info = crop_nodule(folder / "image" / "P-0001_R_1.nii.gz", folder / "nodule_mask" / "P-0001_R_1.nii.gz", spec)
    assert crop.shape == (9, 9) and crop.dtype == np.float32
    assert info["slice"] == 1  # radius 4 on slice 1 is the largest cross-section
    assert info["mean_hu"] == pytest.approx(0.0)
    assert info["area_mm2"] == pytest.approx(49 * 0.49)  # 49 voxels of 0.7 x 0.7 mm in a disc of radius 4
    # The centre pixel sits on the disc's centre (0 HU); the disc is 4 voxels = 8 crop pixels wide
    # each side, so the whole 9x9 crop (+-4 crop pixels = +-2 voxels) lies inside it.
    np.testing.assert_allclose(crop, window(0.0), rtol=1e-5)
    wide, _ = crop_nodule(folder / "image" / "P-0001_R_1.nii.gz", folder / "nodule_mask" / "P-0001_R_1.nii.gz",
                          CropSpec(size=21, spacing_mm=1.4))
    # 1.4 mm = 2 voxels per crop pixel: pixel 10 is the centre, pixel 0 is 20 voxels away (edge repeated, -800 HU).
    assert wide[10, 10] == pytest.approx(window(0.0), rel=1e-5)
    assert wide[0, 0] == pytest.approx(window(-800.0), rel=1e-5)


def test_folder_loads_with_labels_attributes_and_cache(tmp_path, monkeypatch):
    folder = small_folder(tmp_path)
    found = load_nodules(folder, CropSpec(size=16), cache_dir=tmp_path / "cache")
    assert [(r["patient_id"], r["nodule_id"]) for r in found.info] == [("P-0001", "1"), ("P-0002", "1"), ("P-0002", "2")]
    assert found.labels.tolist() == [1, 0, 0]
    assert [(r["texture"], r["calcification"]) for r in found.info] == [(5, 6), (1, 6), (5, 3)]
    assert found.images.shape == (3, 16, 16) and found.skipped == []
    assert [found.images[k, 8, 8] for k in range(3)] == pytest.approx([window(0), window(-600), window(300)], rel=1e-5)
    assert len(list((tmp_path / "cache").glob("crops-*.npz"))) == 1
    # A second load reads the cache and opens no volume.
    monkeypatch.setattr("data.lidc.crop_nodule", lambda *a: pytest.fail("volume reread despite the cache"))
    again = load_nodules(folder, CropSpec(size=16), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, found.images)


def test_table_row_without_file_and_file_without_row_are_named_skips(tmp_path):
    folder = small_folder(tmp_path)
    write_table(folder, [("P-0001", 1, "Malign", 5, 6), ("P-0002", 1, "Benign", 1, 6), ("P-1002", 1, "Benign", 5, 6)])
    found = load_nodules(folder, CropSpec(size=16), cache_dir=tmp_path / "cache")
    assert len(found.info) == 2
    assert any("P-1002 nodule 1 has no image file" in s for s in found.skipped)
    assert any("P-0002_R_2.nii.gz: no row in" in s for s in found.skipped)


def test_without_table_prediction_keeps_every_volume(tmp_path):
    folder = small_folder(tmp_path)
    (folder / "nodules.csv").unlink()
    with pytest.raises(DataError, match="nodules.csv: CSV file not found"):
        load_nodules(folder, cache_dir=tmp_path / "cache")
    found = load_nodules(folder, CropSpec(size=16), cache_dir=tmp_path / "cache", require_table=False)
    assert found.labels.tolist() == [-1, -1, -1]


def test_volume_without_mask_is_an_error_naming_it(tmp_path):
    folder = small_folder(tmp_path)
    write_volume(folder, "P-0003_R_1.nii.gz", mask=False)
    with pytest.raises(DataError, match=r"P-0003_R_1.nii.gz: no mask .*nodule_mask"):
        load_nodules(folder, cache_dir=tmp_path / "cache")


def test_unreadable_volume_is_an_error_naming_it(tmp_path):
    folder = small_folder(tmp_path)
    (folder / "image" / "P-0002_R_1.nii.gz").write_bytes(b"not a NIfTI file")
    with pytest.raises(DataError, match="P-0002_R_1.nii.gz"):
        load_nodules(folder, cache_dir=tmp_path / "cache")


def test_empty_mask_is_an_error_naming_it(tmp_path):
    folder = small_folder(tmp_path)
    write_volume(folder, "P-0001_R_1.nii.gz", radius=(0, 0, 0), centre=(-50, -50))
    with pytest.raises(DataError, match=r"nodule_mask/P-0001_R_1.nii.gz: the nodule mask is empty"):
        load_nodules(folder, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("P-0001", 1, "Unknown", 5, 6), r"row 2 \(P-0001 nodule 1\): expected Diagnosis in \{Benign, Malign\}; found 'Unknown'"),
        (("P-0001", 1, "Malign", 9, 6), r"row 2 \(P-0001 nodule 1\): expected Texture_value in \{1, 2, 3, 4, 5\}; found 9"),
        (("P-0001", 1, "Malign", 5, "x"), r"expected Calcification_value in \{1, 2, 3, 4, 5, 6\}; found 'x'"),
    ],
)
def test_labels_outside_the_known_values_name_the_row(tmp_path, row, message):
    folder = small_folder(tmp_path)
    write_table(folder, [row])
    with pytest.raises(DataError, match=message):
        read_table(folder / "nodules.csv")


def test_the_shared_lidc_copy(shared_data, tmp_path):
    folder = shared_data / "lidc_nodules"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    found = load_nodules(folder, cache_dir=tmp_path / "cache")
    assert found.images.shape == (759, 64, 64)
    assert 0 <= found.images.min() and found.images.max() <= 255
    # The two LIDC-IDRI-1002 rows have a mask but no image: skipped and said so.
    assert len(found.skipped) == 2 and all("LIDC-IDRI-1002" in s for s in found.skipped)
    assert set(found.labels.tolist()) == {0, 1} and found.labels.sum() == 261
    # Texture shifts intensity as the scenarios assume: subsolid nodules are darker than solid ones.
    hu = np.array([r["mean_hu"] for r in found.info])
    texture = np.array([r["texture"] for r in found.info])
    assert hu[texture <= 3].mean() < -400 < -300 < hu[texture == 5].mean()

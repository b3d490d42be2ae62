"""Every kind of bad input gets a message that names the file and says what is wrong."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from data import validate
from data.msd import DataError


def nifti(path, array):
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4)), str(path))
    return path


def h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def image(path, size=(32, 48), mode="RGB", value=None):
    rng = np.random.default_rng(0)
    shape = (*size, 3) if mode == "RGB" else size
    array = (
        rng.integers(0, 256, shape, dtype=np.uint8)
        if value is None
        else np.full(shape, value, np.uint8)
    )
    Image.fromarray(array, mode=mode).save(path)
    return path


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def good_volume():
    return np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)


def good_label():
    label = np.zeros((8, 8, 4), np.uint8)
    label[2:5, 2:5, 1:3] = 1
    label[3, 3, 2] = 2
    return label


def csv_file(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# Each case: (name, function making the bad input in tmp_path and returning the problems,
# text every message must contain apart from the file name the case returns).
def corrupt_nifti(tmp):
    bad = tmp / "img.nii.gz"
    bad.write_bytes(b"not a nifti file at all" * 10)
    return bad, validate.check_nifti(bad), "cannot read NIfTI volume"


def truncated_nifti_gz(tmp):
    bad = truncate(nifti(tmp / "img.nii.gz", good_volume()))
    return bad, validate.check_nifti(bad), "cannot read NIfTI volume (corrupt or truncated?)"


def truncated_nifti(tmp):
    bad = truncate(nifti(tmp / "img.nii", good_volume()), keep=0.6)
    return bad, validate.check_nifti(bad), "cannot read NIfTI volume"


def shape_mismatch(tmp):
    img = nifti(tmp / "img.nii.gz", good_volume())
    lab = nifti(tmp / "lab.nii.gz", good_label()[:, :, :3])
    return (
        lab,
        validate.check_nifti_pair(img, lab, labels=(0, 1, 2)),
        "label shape (8, 8, 3) does not match image shape (8, 8, 4)",
    )


def unexpected_labels(tmp):
    label = good_label()
    label[0, 0, 0] = 7
    img = nifti(tmp / "img.nii.gz", good_volume())
    lab = nifti(tmp / "lab.nii.gz", label)
    return (
        lab,
        validate.check_nifti_pair(img, lab, labels=(0, 1, 2)),
        "expected labels in {0, 1, 2}; found [7]",
    )


def nan_voxels(tmp):
    volume = good_volume()
    volume[1, 1, 1] = np.nan
    volume[2, 2, 2] = np.inf
    bad = nifti(tmp / "img.nii.gz", volume)
    return bad, validate.check_nifti(bad), "2 NaN or infinite voxel values"


def missing_label(tmp):
    img = nifti(tmp / "img.nii.gz", good_volume())
    lab = tmp / "labelsTr" / "lab.nii.gz"
    return lab, validate.check_nifti_pair(img, lab), "NIfTI file not found"


def corrupt_hdf5(tmp):
    bad = tmp / "patches.h5"
    bad.write_bytes(b"\x00garbage" * 100)
    return bad, validate.check_hdf5(bad), "cannot read HDF5 file"


def truncated_hdf5(tmp):
    rng = np.random.default_rng(0)
    bad = truncate(
        h5(
            tmp / "patches.h5", images=rng.random((20, 1, 48, 48)), labels=np.zeros((20, 1, 48, 48))
        ),
        0.5,
    )
    return bad, validate.check_hdf5(bad), "cannot read HDF5 file"


def hdf5_missing_dataset(tmp):
    bad = h5(tmp / "patches.h5", images=np.zeros((2, 1, 8, 8)))
    return (
        bad,
        validate.check_hdf5(bad),
        "expected datasets ['images', 'labels']; missing ['labels']",
    )


def hdf5_label_range(tmp):
    bad = h5(tmp / "patches.h5", images=np.zeros((2, 1, 8, 8)), labels=np.full((2, 1, 8, 8), 3.0))
    return (
        bad,
        validate.check_hdf5(bad, label_range=(0, 1)),
        "expected label values in [0, 1]; found [3, 3]",
    )


def hdf5_shape_mismatch(tmp):
    bad = h5(tmp / "patches.h5", images=np.zeros((2, 1, 8, 8)), labels=np.zeros((3, 1, 8, 8)))
    return (
        bad,
        validate.check_hdf5(bad),
        "label shape (3, 1, 8, 8) does not match image shape (2, 1, 8, 8)",
    )


def truncated_jpeg(tmp):
    bad = truncate(image(tmp / "ISIC_0000001.jpg", size=(64, 64)), 0.5)
    return bad, validate.check_image(bad), "cannot decode image (corrupt or truncated?)"


def corrupt_png(tmp):
    bad = tmp / "mask.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    return bad, validate.check_image(bad), "cannot decode image"


def mask_size_mismatch(tmp):
    img = image(tmp / "a.jpg", size=(32, 48))
    mask = image(tmp / "a_segmentation.png", size=(32, 40), mode="L", value=255)
    return (
        mask,
        validate.check_image_mask_pair(img, mask),
        "label shape (32, 40) does not match image shape (32, 48)",
    )


def csv_missing_columns(tmp):
    bad = csv_file(tmp / "meta.csv", "image_id,age\nISIC_1,30\n")
    return (
        bad,
        validate.check_csv(bad, ["image_id", "dx"]),
        "expected columns ['image_id', 'dx']; missing ['dx']",
    )


def csv_names_missing_image(tmp):
    (tmp / "images").mkdir()
    image(tmp / "images" / "ISIC_1.jpg")
    bad = csv_file(tmp / "meta.csv", "image_id,dx\nISIC_1,nv\nISIC_2,mel\n")
    problems = validate.check_csv(
        bad, ["image_id", "dx"], image_column="image_id", image_dir=tmp / "images", suffix=".jpg"
    )
    return bad, problems, "line 3: names image 'ISIC_2', but"


def csv_path_escapes(tmp):
    (tmp / "images").mkdir()
    bad = csv_file(tmp / "meta.csv", "image_id,dx\n../../etc/passwd,nv\n")
    problems = validate.check_csv(
        bad, ["image_id", "dx"], image_column="image_id", image_dir=tmp / "images"
    )
    return bad, problems, "which lies outside the data folder"


def empty_after_filtering(tmp):
    return (
        tmp,
        validate.check_not_empty([], "training slices with tumour", source=tmp),
        "no training slices with tumour left (empty after filtering)",
    )


def slice_too_small(tmp):
    source = tmp / "hippocampus_001.nii.gz"
    return (
        source,
        validate.check_min_size((35, 51), (64, 64), source),
        "slice size (35, 51) is smaller than the model input (64, 64)",
    )


CASES = [
    corrupt_nifti,
    truncated_nifti_gz,
    truncated_nifti,
    shape_mismatch,
    unexpected_labels,
    nan_voxels,
    missing_label,
    corrupt_hdf5,
    truncated_hdf5,
    hdf5_missing_dataset,
    hdf5_label_range,
    hdf5_shape_mismatch,
    truncated_jpeg,
    corrupt_png,
    mask_size_mismatch,
    csv_missing_columns,
    csv_names_missing_image,
    csv_path_escapes,
    empty_after_filtering,
    slice_too_small,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_reported_with_file_and_reason(tmp_path, case):
    path, problems, expected = case(tmp_path)
    assert len(problems) == 1, problems
    assert str(path) in problems[0]
    assert expected in problems[0]
    with pytest.raises(DataError, match="1 problem"):
        validate.raise_problems(problems, "the test data")


def test_good_data_has_no_problems(tmp_path):
    img = nifti(tmp_path / "img.nii.gz", good_volume())
    lab = nifti(tmp_path / "lab.nii.gz", good_label())
    assert validate.check_nifti_pair(img, lab, labels=(0, 1, 2)) == []
    assert (
        validate.check_hdf5(
            h5(tmp_path / "p.h5", images=np.zeros((2, 1, 8, 8)), labels=np.ones((2, 1, 8, 8))),
            labels=(0, 1),
        )
        == []
    )
    (tmp_path / "images").mkdir()
    jpg = image(tmp_path / "images" / "ISIC_1.jpg")
    mask = image(tmp_path / "images" / "ISIC_1_mask.png", size=(32, 48), mode="L", value=255)
    assert validate.check_image_mask_pair(jpg, mask) == []
    csv = csv_file(tmp_path / "meta.csv", "image_id,dx\nISIC_1,nv\n")
    assert (
        validate.check_csv(
            csv,
            ["image_id", "dx"],
            image_column="image_id",
            image_dir=tmp_path / "images",
            suffix=".jpg",
        )
        == []
    )
    assert validate.check_min_size((64, 64), (64, 64), "x") == []
    validate.raise_problems([], "nothing")  # no problems, no error


def test_all_problems_are_reported_together(tmp_path):
    problems = (
        corrupt_nifti(tmp_path)[1] + csv_missing_columns(tmp_path)[1] + slice_too_small(tmp_path)[1]
    )
    with pytest.raises(DataError) as err:
        validate.raise_problems(problems, "--data-dir x")
    text = str(err.value)
    assert text.startswith("3 problem(s) in --data-dir x:")
    assert all(p in text for p in problems)


def test_inside_accepts_subfolders_and_refuses_escapes(tmp_path):
    assert validate.inside(tmp_path, "a/b.jpg", "meta.csv") == (tmp_path / "a" / "b.jpg").resolve()
    for escape in ("../x.jpg", "/etc/passwd", "a/../../x"):
        with pytest.raises(DataError, match="outside the data folder"):
            validate.inside(tmp_path, escape, "meta.csv")

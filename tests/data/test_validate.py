"""Every kind of bad input, read by the loader a run uses, is refused with a message that names
the file and says what was expected and what was found.

The checks live in :mod:`data.validate`; each case here goes through the public loader that
``train.py`` / ``predict.py`` / ``--check-data`` call, so a check that a loader stopped calling
fails here.
"""

from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from data import validate
from data.dermoscopy import Record, check_images, list_dermoscopy, load_images
from data.hippocampus import SliceSettings, decode_case
from data.msd import Case, list_msd_cases, load_canonical, load_label, load_nifti
from data.patches import patch_file_info, read_patches
from data.slices import SlicePair, read_pair
from data.validate import DataError


def nifti(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
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
    path.parent.mkdir(parents=True, exist_ok=True)
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


def dataset_json(root, content):
    root.mkdir(parents=True, exist_ok=True)
    path = root / "dataset.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def hippocampus_case(tmp, image_array, label_array):
    img = nifti(tmp / "imagesTr" / "h_001.nii.gz", image_array)
    lab = nifti(tmp / "labelsTr" / "h_001.nii.gz", label_array)
    return Case("h_001", img, lab)


def patches(tmp, images=None, labels=None, **extra):
    images = np.zeros((2, 1, 8, 8), np.float32) if images is None else images
    labels = np.zeros((2, 1, 8, 8), np.uint8) if labels is None else labels
    return h5(tmp / "patches.h5", images=images, labels=labels, **extra)


# Each case builds the bad input in tmp_path and returns (file the message must name, the
# loader call that must refuse it, text the message must contain).
# ---------------------------------------------------------------------------- NIfTI
def corrupt_nifti(tmp):
    bad = tmp / "img.nii.gz"
    bad.write_bytes(b"not a nifti file at all" * 10)
    return bad, lambda: load_nifti(bad), "cannot read NIfTI header (corrupt or truncated?)"


def truncated_nifti_gz(tmp):
    # large enough that the header survives the cut and the voxels do not
    volume = np.random.default_rng(0).random((32, 32, 16)).astype(np.float32)
    bad = truncate(nifti(tmp / "img.nii.gz", volume))
    return bad, lambda: load_nifti(bad), "cannot read NIfTI volume (corrupt or truncated?)"


def truncated_nifti(tmp):
    bad = truncate(nifti(tmp / "img.nii", good_volume()), keep=0.6)
    return bad, lambda: load_canonical(bad), "cannot read NIfTI volume (corrupt or truncated?)"


def nan_voxels(tmp):
    volume = good_volume()
    volume[1, 1, 1] = np.nan
    volume[2, 2, 2] = np.inf
    bad = nifti(tmp / "img.nii.gz", volume)
    return bad, lambda: load_canonical(bad), "2 NaN or infinite voxel values (of 256)"


def four_d_volume(tmp):
    bad = nifti(tmp / "img.nii.gz", np.zeros((8, 8, 4, 2), np.float32))
    return bad, lambda: load_canonical(bad), "expected a 3D volume; found shape (8, 8, 4, 2)"


def missing_label(tmp):
    lab = tmp / "labelsTr" / "lab.nii.gz"
    return lab, lambda: load_label(lab, (0, 1)), "NIfTI file not found"


def shape_mismatch(tmp):
    case = hippocampus_case(tmp, good_volume(), good_label()[:, :, :3])
    return (
        case.label,
        lambda: decode_case(case, SliceSettings(size=8)),
        "label shape (8, 8, 3) does not match image shape (8, 8, 4)",
    )


def unexpected_labels(tmp):
    label = good_label()
    label[0, 0, 0] = 7
    case = hippocampus_case(tmp, good_volume(), label)
    return (
        case.label,
        lambda: decode_case(case, SliceSettings(size=8)),
        "expected labels in {0, 1, 2}; found [7]",
    )


def hippocampus_four_d(tmp):
    case = hippocampus_case(tmp, np.zeros((8, 8, 4, 2), np.float32), good_label())
    return (
        case.image,
        lambda: decode_case(case, SliceSettings(size=8)),
        "expected a 3D volume; found shape (8, 8, 4, 2)",
    )


# ---------------------------------------------------------------------------- dataset.json
def dataset_json_missing(tmp):
    return tmp / "dataset.json", lambda: list_msd_cases(tmp), "an MSD data folder must hold"


def dataset_json_invalid(tmp):
    bad = dataset_json(tmp, '{"training": [')
    return bad, lambda: list_msd_cases(tmp), "is not valid JSON"


def dataset_json_without_split(tmp):
    bad = dataset_json(tmp, {"name": "x", "test": []})
    return bad, lambda: list_msd_cases(tmp), "has no 'training' list (keys: name, test)"


def dataset_json_bad_entry(tmp):
    bad = dataset_json(tmp, {"training": [{"image": "./imagesTr/a.nii.gz"}]})
    return bad, lambda: list_msd_cases(tmp), "training entry 0 must have 'image' and 'label'"


def dataset_json_empty(tmp):
    bad = dataset_json(tmp, {"training": []})
    return bad, lambda: list_msd_cases(tmp), "lists no 'training' cases"


def dataset_json_escapes(tmp):
    bad = dataset_json(tmp, {"training": [{"image": "../../etc/passwd", "label": "./l.nii.gz"}]})
    return bad, lambda: list_msd_cases(tmp), "which lies outside the data folder"


# ---------------------------------------------------------------------------- HDF5 patches
def corrupt_hdf5(tmp):
    bad = tmp / "patches.h5"
    bad.write_bytes(b"\x00garbage" * 100)
    return bad, lambda: patch_file_info(bad), "cannot read HDF5 file (corrupt or truncated?)"


def truncated_hdf5(tmp):
    rng = np.random.default_rng(0)
    bad = truncate(patches(tmp, rng.random((20, 1, 48, 48)), np.zeros((20, 1, 48, 48))), 0.5)
    return bad, lambda: read_patches(bad), "cannot read HDF5 patches (corrupt or truncated?)"


def missing_hdf5(tmp):
    bad = tmp / "nope.h5"
    return bad, lambda: patch_file_info(bad), "HDF5 file not found"


def hdf5_missing_dataset(tmp):
    bad = h5(tmp / "patches.h5", images=np.zeros((2, 1, 8, 8)))
    return bad, lambda: patch_file_info(bad), "expected datasets 'images' and 'labels'; missing ['labels']"


def hdf5_wrong_rank(tmp):
    bad = patches(tmp, np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    return bad, lambda: patch_file_info(bad), "'images' must have shape (N, 1, H, W); found (2, 8, 8)"


def hdf5_shape_mismatch(tmp):
    bad = patches(tmp, labels=np.zeros((3, 1, 8, 8)))
    return bad, lambda: patch_file_info(bad), "label shape (3, 1, 8, 8) does not match image shape (2, 1, 8, 8)"


def hdf5_case_ids(tmp):
    bad = patches(tmp, case_ids=np.array([b"a", b"b", b"c"]))
    return bad, lambda: patch_file_info(bad), "case id list holds 3 entries for 2 patches"


def hdf5_nan_images(tmp):
    bad = patches(tmp, np.full((2, 1, 8, 8), np.nan, np.float32))
    return bad, lambda: read_patches(bad), "128 NaN or infinite values (of 128)"


def hdf5_unscaled(tmp):
    bad = patches(tmp, np.full((2, 1, 8, 8), 300.0, np.float32))
    return bad, lambda: read_patches(bad), "images must be scaled to [0, 1] when no window is given; found [300, 300]"


def hdf5_label_values(tmp):
    bad = patches(tmp, labels=np.full((2, 1, 8, 8), 3.0))
    return bad, lambda: read_patches(bad), "expected labels in {0, 1}; found [3]"


# ---------------------------------------------------------------------------- images
def truncated_jpeg(tmp):
    bad = truncate(image(tmp / "ISIC_0000001.jpg", size=(64, 64)), 0.5)
    return (
        bad,
        lambda: validate.raise_problems(check_images([Record("ISIC_0000001", bad, "NV", "l")])),
        "cannot decode image (corrupt or truncated?)",
    )


def corrupt_mask_png(tmp):
    good = image(tmp / "ISIC_0000001.jpg")
    bad = tmp / "masks" / "ISIC_0000001_segmentation.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    record = Record("ISIC_0000001", good, "NV", "l", mask=bad)
    return bad, lambda: validate.raise_problems(check_images([record])), "cannot decode image"


def undecodable_slice(tmp):
    bad = tmp / "images" / "p1_001.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    mask = image(tmp / "masks" / "p1_001.png", mode="L", value=0)
    return bad, lambda: read_pair(SlicePair("p1", 1, bad, mask)), "cannot decode image"


def slice_mask_size(tmp):
    img = image(tmp / "images" / "p1_001.png", size=(32, 48), mode="L")
    mask = image(tmp / "masks" / "p1_001.png", size=(32, 40), mode="L", value=255)
    return (
        mask,
        lambda: read_pair(SlicePair("p1", 1, img, mask)),
        "label shape (32, 40) does not match image shape (32, 48)",
    )


def slice_mask_values(tmp):
    img = image(tmp / "images" / "p1_001.png", mode="L")
    mask_array = np.zeros((32, 48), np.uint8)
    mask_array[0, :3] = (1, 128, 255)
    mask = tmp / "masks" / "p1_001.png"
    mask.parent.mkdir()
    Image.fromarray(mask_array, mode="L").save(mask)
    return (
        mask,
        lambda: read_pair(SlicePair("p1", 1, img, mask)),
        "expected labels in {0, 255}; found [1, 128]",
    )


# ---------------------------------------------------------------------------- CSV
def ham(tmp, text, images=("ISIC_1",), **kw):
    for name in images:
        image(tmp / "images" / f"{name}.jpg")
    path = tmp / "HAM10000_metadata.csv"
    path.write_bytes(text.encode(kw.get("encoding", "utf-8")))
    return path


def csv_missing_columns(tmp):
    bad = ham(tmp, "image_id,age\nISIC_1,30\n")
    return bad, lambda: list_dermoscopy(tmp), "expected columns ['lesion_id', 'image_id', 'dx']; missing ['lesion_id', 'dx']"


def csv_undecodable(tmp):
    bad = ham(tmp, "lesion_id,image_id,dx\nL\xe9,ISIC_1,nv\n", encoding="latin-1")
    return bad, lambda: list_dermoscopy(tmp), "cannot read CSV"


def csv_empty(tmp):
    bad = ham(tmp, "lesion_id,image_id,dx\n")
    return bad, lambda: list_dermoscopy(tmp), "lists no images"


def csv_unknown_dx(tmp):
    bad = ham(tmp, "lesion_id,image_id,dx\nL1,ISIC_1,xyz\n")
    return bad, lambda: list_dermoscopy(tmp), "row 2: dx must be one of mel, nv, bcc, akiec, bkl, df, vasc; found 'xyz'"


def isic(tmp, text, images=("ISIC_1",)):
    for name in images:
        image(tmp / "images" / f"{name}.jpg")
    path = tmp / "ISIC_2019_Training_GroundTruth.csv"
    path.write_text(text, encoding="utf-8")
    return path


def isic_one_hot_not_numbers(tmp):
    bad = isic(tmp, "image,MEL,NV,BCC,AK,BKL\nISIC_1,x,0,0,0,0\n")
    return bad, lambda: list_dermoscopy(tmp), "row 2 (ISIC_1): one-hot values must be numbers"


def isic_no_image_folder(tmp):
    isic(tmp, "image,MEL,NV,BCC,AK,BKL\nISIC_1,1,0,0,0,0\n", images=())
    return tmp, lambda: list_dermoscopy(tmp), "no folder of images found (looked for images, "


def isic_no_listed_image_exists(tmp):
    isic(tmp, "image,MEL,NV,BCC,AK,BKL\nISIC_2,1,0,0,0,0\n", images=("ISIC_1",))
    return tmp, lambda: list_dermoscopy(tmp), "none of the 1 images listed in the CSV exists in"


def dermoscopy_not_a_folder(tmp):
    bad = tmp / "nowhere"
    return bad, lambda: list_dermoscopy(bad), "is not a folder"


def dermoscopy_unknown_layout(tmp):
    ham(tmp, "lesion_id,image_id,dx\nL1,ISIC_1,nv\n")
    return tmp, lambda: list_dermoscopy(tmp, "isic2020"), "layout must be auto, isic or ham; received 'isic2020'"


def ham_layout_without_its_csv(tmp):
    isic(tmp, "image,MEL,NV,BCC,AK,BKL\nISIC_1,1,0,0,0,0\n")
    return tmp / "HAM10000_metadata.csv", lambda: list_dermoscopy(tmp, "ham"), "not found"


def isic_layout_without_its_csv(tmp):
    ham(tmp, "lesion_id,image_id,dx\nL1,ISIC_1,nv\n")
    return tmp / "ISIC_2019_Training_GroundTruth.csv", lambda: list_dermoscopy(tmp, "isic"), "CSV file not found"


def unreadable_mask_while_loading(tmp):
    good = image(tmp / "ISIC_1.jpg")
    bad = tmp / "ISIC_1_segmentation.png"
    bad.write_bytes(b"not a png")
    record = Record("ISIC_1", good, "NV", "l", mask=bad)
    return bad, lambda: load_images([record], 16, progress=False), "cannot decode image"


def nodule_arrays_of_other_lengths(tmp):
    from data.nodules import check_arrays

    source = tmp / "nodules"
    return (
        source,
        lambda: check_arrays(np.zeros((3, 8, 8)), np.zeros(2), str(source)),
        "expected images (n, h, w[, 1]) and labels (n,); received (3, 8, 8) and (2,)",
    )


def ood_folder_missing(tmp):
    from data.ood_sets import folder_images

    bad = tmp / "ood"
    return bad, lambda: folder_images(bad, 16), "is not a folder"


def ood_folder_without_images(tmp):
    from data.ood_sets import folder_images

    bad = tmp / "ood"
    bad.mkdir()
    (bad / "notes.txt").write_text("x")
    return bad, lambda: folder_images(bad, 16), "holds no .jpg/.jpeg/.png images"


CASES = [
    corrupt_nifti,
    truncated_nifti_gz,
    truncated_nifti,
    nan_voxels,
    four_d_volume,
    missing_label,
    shape_mismatch,
    unexpected_labels,
    hippocampus_four_d,
    dataset_json_missing,
    dataset_json_invalid,
    dataset_json_without_split,
    dataset_json_bad_entry,
    dataset_json_empty,
    dataset_json_escapes,
    corrupt_hdf5,
    truncated_hdf5,
    missing_hdf5,
    hdf5_missing_dataset,
    hdf5_wrong_rank,
    hdf5_shape_mismatch,
    hdf5_case_ids,
    hdf5_nan_images,
    hdf5_unscaled,
    hdf5_label_values,
    truncated_jpeg,
    corrupt_mask_png,
    undecodable_slice,
    slice_mask_size,
    slice_mask_values,
    csv_missing_columns,
    csv_undecodable,
    csv_empty,
    csv_unknown_dx,
    isic_one_hot_not_numbers,
    isic_no_image_folder,
    isic_no_listed_image_exists,
    dermoscopy_not_a_folder,
    dermoscopy_unknown_layout,
    ham_layout_without_its_csv,
    isic_layout_without_its_csv,
    unreadable_mask_while_loading,
    nodule_arrays_of_other_lengths,
    ood_folder_missing,
    ood_folder_without_images,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_refused_with_file_and_reason(tmp_path, case):
    path, load, expected = case(tmp_path)
    with pytest.raises(DataError) as err:
        load()
    message = str(err.value)
    assert str(path) in message or str(path.resolve()) in message, message
    assert expected in message, message


def test_good_data_passes_the_loaders(tmp_path):
    case = hippocampus_case(tmp_path, good_volume(), good_label())
    images, masks = decode_case(case, SliceSettings(size=8))
    assert images.shape == masks.shape == (4, 8, 8)
    path = patches(tmp_path, labels=np.ones((2, 1, 8, 8)))
    assert patch_file_info(path) == ((2, 8, 8), ["patches/p000", "patches/p000"])
    assert read_patches(path)[1].all()
    jpg = image(tmp_path / "ISIC_1.jpg")
    mask = image(tmp_path / "ISIC_1_segmentation.png", mode="L", value=255)
    assert check_images([Record("ISIC_1", jpg, "NV", "l", mask=mask)]) == []
    assert read_pair(SlicePair("p", 1, jpg, mask))[1].all()


def test_every_problem_of_one_file_is_reported_together(tmp_path):
    label = good_label()[:, :, :3]
    label[0, 0, 0] = 9
    lab = nifti(tmp_path / "lab.nii.gz", label)
    with pytest.raises(DataError) as err:
        load_label(lab, (0, 1, 2), image_shape=(8, 8, 4), image_source="img.nii.gz")
    assert str(err.value) == (
        "2 problems:\n"
        f"  - {lab}: label shape (8, 8, 3) does not match image shape (8, 8, 4) of img.nii.gz\n"
        f"  - {lab}: expected labels in {{0, 1, 2}}; found [9]"
    )
    validate.raise_problems([])  # no problems, no error


def test_inside_accepts_subfolders_and_refuses_escapes(tmp_path):
    assert validate.inside(tmp_path, "a/b.jpg", "meta.csv") == (tmp_path / "a" / "b.jpg").resolve()
    for escape in ("../x.jpg", "/etc/passwd", "a/../../x"):
        with pytest.raises(DataError, match="outside the data folder"):
            validate.inside(tmp_path, escape, "meta.csv")


def test_ood_images_when_no_bundled_photograph_loads(monkeypatch):
    """Packages without their data files: the natural OOD set says so instead of being empty."""
    from data import ood_sets

    def broken():
        raise OSError("no data")

    monkeypatch.setattr(ood_sets, "_photograph_loaders", lambda: [broken] * 17)
    with pytest.raises(DataError, match="none of the natural photographs .* could be loaded: astronaut"):
        ood_sets.natural_images(2, 16)

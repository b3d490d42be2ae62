"""CT loaders (MSD, LiTS, HDF5 patches, slice folders) on tiny files written here, and their
bad-input messages."""

from __future__ import annotations

import json

import cv2
import h5py
import nibabel as nib
import numpy as np
import pytest

from data.ct import CTDataConfig, check_ct_data, detect_source, prepare_ct_data
from data.validate import DataError

SHAPE = (32, 32, 6)  # x, y, slices


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))


def volume(seed: int, tumour_slices=(2, 3), tumour_label=1):
    """HU ramp along x plus noise; a 3x3 tumour on ``tumour_slices``."""
    rng = np.random.default_rng(seed)
    hu = np.linspace(-1200, 600, SHAPE[0])[:, None, None] + rng.normal(0, 5, SHAPE)
    label = np.zeros(SHAPE, np.uint8)
    for z in tumour_slices:
        label[10:13, 20:23, z] = tumour_label
    return hu.astype(np.int16), label


def write_msd(root, n=6, **kw):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        hu, label = volume(i, **kw)
        name = f"lung_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu, np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    # the MSD archives list macOS resource forks too
    training.append({"image": "./imagesTr/._lung_000.nii.gz", "label": "./labelsTr/._lung_000.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"training": training, "test": []}))
    return root


def cfg(root, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("verbose", False)
    kw.setdefault("augment", False)
    return CTDataConfig(data_dir=str(root) if root else None, **kw)


def all_rows(data):
    rows = np.arange(len(data.cache))
    return data.cache.read_images(rows), data.cache.read("masks", rows)


# --------------------------------------------------------------------------- MSD


def test_msd_values_window_and_orientation(tmp_path):
    root = write_msd(tmp_path / "Task06_Lung")
    data = prepare_ct_data(cfg(root))
    assert data.source == "msd"
    images, masks = all_rows(data)
    assert images.shape == (36, 32, 32) and masks.shape == (36, 32, 32)
    hu, label = nib.load(str(root / "imagesTr/lung_001.nii.gz")).get_fdata(), volume(1)[1]
    rows = np.flatnonzero(data.cache.case_id == "lung_001")
    # Independent computation: window [-1000, 400], slice z, turned by np.rot90 (anterior up).
    for z, r in enumerate(rows):
        expected = np.rot90(np.clip((hu[:, :, z] + 1000) / 1400, 0, 1))
        np.testing.assert_allclose(images[r], expected, atol=1e-4)  # 16-bit storage
        np.testing.assert_array_equal(masks[r], np.rot90(label[:, :, z]))
    assert data.cache.slice_index[rows].tolist() == list(range(6))
    assert data.cache.tumour_px[rows].tolist() == [0, 0, 9, 9, 0, 0]


def test_custom_window(tmp_path):
    root = write_msd(tmp_path / "msd", n=3)
    data = prepare_ct_data(cfg(root, window=(-200, 250), val_fraction=0.3, test_fraction=0.3))
    images, _ = all_rows(data)
    hu = nib.load(str(root / "imagesTr/lung_000.nii.gz")).get_fdata()
    np.testing.assert_allclose(images[0], np.rot90(np.clip((hu[:, :, 0] + 200) / 450, 0, 1)), atol=1e-3)


def test_resize_to_model_size(tmp_path):
    root = write_msd(tmp_path / "msd", n=3)
    data = prepare_ct_data(cfg(root, image_size=16, val_fraction=0.3, test_fraction=0.3))
    x, m = next(iter(data.test(4)))
    assert x.shape == (4, 16, 16, 1) and m.shape == (4, 16, 16, 1)
    # the 9 px tumour at 32x32 covers about 9/4 px at 16x16; the source count is kept
    rows = data.cache.tumour_px_source > 0
    assert set(data.cache.tumour_px_source[rows].tolist()) == {9}
    assert 1 <= data.cache.tumour_px[rows].min() <= 4


# --------------------------------------------------------------------------- LiTS


def write_lits(root, n=4, flip_odd=True, float_labels=True):
    root.mkdir(parents=True)
    for i in range(n):
        hu, label = volume(i)
        label[label == 1] = 2  # tumour
        label[5:9, 5:9, :] = np.where(label[5:9, 5:9, :] == 0, 1, label[5:9, 5:9, :])  # liver
        affine = np.eye(4)
        if flip_odd and i % 2:
            hu, label = hu[::-1].copy(), label[::-1].copy()
            affine[0, 0] = -1
        stored = label.astype(np.float32) + (0.01 if float_labels else 0.0)  # float segmentation
        nib.save(nib.Nifti1Image(hu, affine), str(root / f"volume-{i}.nii"))
        nib.save(nib.Nifti1Image(stored, affine), str(root / f"segmentation-{i}.nii"))
    return root


def test_lits_tumour_label_rounding_and_canonical_orientation(tmp_path):
    root = write_lits(tmp_path / "lits")
    data = prepare_ct_data(cfg(root, task="liver", val_fraction=0.25, test_fraction=0.25))
    assert data.source == "lits"
    images, masks = all_rows(data)
    # volume-1 is stored flipped along x with a negative x axis: after reorientation its
    # slices equal those of an unflipped volume with the same content (volume(1)).
    hu, label = volume(1)
    rows = np.flatnonzero(data.cache.case_id == "volume-1")
    for z, r in enumerate(rows):
        np.testing.assert_allclose(images[r], np.rot90(np.clip((hu[:, :, z] + 200) / 450, 0, 1)), atol=1e-3)
        np.testing.assert_array_equal(masks[r], np.rot90(label[:, :, z] == 1))  # tumour only, not liver
    assert data.cache.tumour_px.sum() == 4 * 2 * 9


def test_lits_missing_segmentation(tmp_path):
    root = write_lits(tmp_path / "lits", n=3)
    (root / "segmentation-1.nii").unlink()
    with pytest.raises(DataError, match=r"volume-1\.nii: label file segmentation-1\.nii is missing"):
        prepare_ct_data(cfg(root, task="liver"))


# --------------------------------------------------------------------------- HDF5 patches


def write_patches(path, n=40, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (n, 1, 16, 16)).astype(np.float32)
    labels = np.zeros((n, 1, 16, 16))
    labels[::2, :, 4:8, 4:8] = 1.0
    with h5py.File(path, "w") as f:
        f["images"], f["labels"] = images, labels
        if ids is not None:
            f["case_ids"] = np.array(ids, dtype="S")
    return images, labels


def test_hdf5_folder_split_by_file(tmp_path):
    root = tmp_path / "patches"
    root.mkdir()
    val_images, _ = write_patches(root / "val_patches.h5", seed=1)
    write_patches(root / "test_patches.h5", seed=2)
    data = prepare_ct_data(cfg(root, image_size=16, val_fraction=0.25))
    assert data.source == "hdf5"
    # no train file: the val file's 4 patients (blocks of 10) are split into train and val
    assert sorted(data.split["train"] + data.split["val"]) == [f"val_patches/p{i:03d}" for i in range(4)]
    assert len(data.split["val"]) == 1
    assert data.split["test"] == [f"test_patches/p{i:03d}" for i in range(4)]
    rows = np.flatnonzero(data.cache.case_id == "val_patches/p001")
    assert data.cache.slice_index[rows].tolist() == list(range(10, 20))
    np.testing.assert_allclose(data.cache.read_images(rows), val_images[10:20, 0], atol=1e-3)
    assert data.num_slices("test") == 40


def test_hdf5_explicit_files_and_case_ids(tmp_path):
    ids = [f"lung_{i // 5:03d}" for i in range(40)]
    write_patches(tmp_path / "a.h5", ids=ids)
    write_patches(tmp_path / "b.h5", seed=3)
    c = cfg(None, image_size=16, train_files=[str(tmp_path / "a.h5")], test_files=[str(tmp_path / "b.h5")], val_fraction=0.25)
    data = prepare_ct_data(c)
    assert sorted(data.split["train"] + data.split["val"]) == [f"lung_{i:03d}" for i in range(8)]
    assert len(data.split["val"]) == 2 and len(data.split["test"]) == 4


def test_hdf5_smaller_than_model_is_refused(tmp_path):
    write_patches(tmp_path / "p.h5")
    with pytest.raises(DataError, match=r"p\.h5: slice size 16x16 is smaller than the model input 32x32"):
        prepare_ct_data(cfg(tmp_path / "p.h5", image_size=32))
    data = prepare_ct_data(cfg(tmp_path / "p.h5", image_size=32, allow_upsample=True))
    assert data.image_size == 32


# --------------------------------------------------------------------------- slice folders


def write_slices(root, jpeg_masks=False):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for case in range(4):
        for z in range(3):
            image = rng.integers(0, 256, (24, 24), dtype=np.uint8)
            mask = np.zeros((24, 24), np.uint8)
            if z == 1:
                mask[8:14, 8:14] = 255
            cv2.imwrite(str(root / "images" / f"p{case}_{z:03d}.png"), image)
            ext = ".jpg" if jpeg_masks else ".png"
            cv2.imwrite(str(root / "masks" / f"p{case}_{z:03d}{ext}"), mask)
    return root


@pytest.mark.parametrize("jpeg_masks", [False, True])
def test_slice_folder(tmp_path, jpeg_masks):
    root = write_slices(tmp_path / "slices", jpeg_masks)
    data = prepare_ct_data(cfg(root, image_size=24, val_fraction=0.25, test_fraction=0.25))
    assert data.source == "slices"
    assert sorted(sum(data.split.values(), [])) == ["p0", "p1", "p2", "p3"]
    rows = np.flatnonzero(data.cache.case_id == "p2")
    assert data.cache.slice_index[rows].tolist() == [0, 1, 2]
    image = cv2.imread(str(root / "images" / "p2_001.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    np.testing.assert_allclose(data.cache.read_images(rows[1:2])[0], image, atol=1e-3)
    assert data.cache.tumour_px[rows].tolist() == [0, 36, 0]


# --------------------------------------------------------------------------- bad input


def corrupt(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: corrupt(r / "imagesTr/lung_002.nii.gz"), r"lung_002\.nii\.gz: cannot read NIfTI"),
        (lambda r: (r / "labelsTr/lung_003.nii.gz").write_bytes(b"not nifti"), r"labelsTr/lung_003\.nii\.gz: cannot read NIfTI header"),
        (lambda r: nib.save(nib.Nifti1Image(np.zeros((32, 30, 6), np.uint8), np.eye(4)), str(r / "labelsTr/lung_001.nii.gz")),
         r"labelsTr/lung_001\.nii\.gz: label shape \(32, 30, 6\) does not match image shape \(32, 32, 6\)"),
        (lambda r: nib.save(nib.Nifti1Image(np.full((32, 32, 6), 7, np.uint8), np.eye(4)), str(r / "labelsTr/lung_004.nii.gz")),
         r"labelsTr/lung_004\.nii\.gz: expected labels in \{0, 1\}; found \[7\]"),
        (lambda r: (r / "labelsTr/lung_005.nii.gz").unlink(), r"labelsTr/lung_005\.nii\.gz is listed in .*dataset\.json but does not exist"),
        (lambda r: (r / "imagesTr/lung_000.nii.gz").unlink(), r"imagesTr/lung_000\.nii\.gz is listed in .*dataset\.json but does not exist"),
        (lambda r: nib.save(nib.Nifti1Image(np.full((32, 32, 6), np.nan, np.float32), np.eye(4)), str(r / "imagesTr/lung_002.nii.gz")),
         r"lung_002\.nii\.gz: 6144 NaN or infinite voxel values \(of 6144\)"),
    ],
    ids=["truncated", "not-nifti", "shape-mismatch", "label-values", "missing-label", "listed-but-absent", "nan"],
)
def test_bad_msd_input(tmp_path, damage, message):
    root = write_msd(tmp_path / "msd")
    damage(root)
    with pytest.raises(DataError, match=message):
        prepare_ct_data(cfg(root))
    problems = check_ct_data(cfg(root))
    assert any(__import__("re").search(message, p) for p in problems), problems


def test_check_reports_every_problem(tmp_path):
    root = write_msd(tmp_path / "msd")
    corrupt(root / "imagesTr/lung_002.nii.gz")
    (root / "labelsTr/lung_005.nii.gz").unlink()
    nib.save(nib.Nifti1Image(np.full(SHAPE, 3, np.uint8), np.eye(4)), str(root / "labelsTr/lung_001.nii.gz"))
    problems = check_ct_data(cfg(root))
    assert len(problems) == 3, problems
    assert check_ct_data(cfg(write_msd(tmp_path / "clean"))) == []


def test_zero_slices_after_selection(tmp_path):
    root = write_msd(tmp_path / "msd", tumour_slices=())
    with pytest.raises(DataError, match=r"msd: none of the \d+ training slices' labels holds any foreground"):
        prepare_ct_data(cfg(root))


def test_bad_hdf5_and_slices(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["images"] = np.zeros((4, 1, 16, 16), np.float32)
        f["labels"] = np.zeros((4, 1, 16, 12))
    with pytest.raises(DataError, match=r"x\.h5\['labels'\]: label shape \(4, 1, 16, 12\) does not match image shape \(4, 1, 16, 16\)"):
        prepare_ct_data(cfg(tmp_path / "x.h5", image_size=16))
    (tmp_path / "t.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"t\.h5: cannot read HDF5 file"):
        prepare_ct_data(cfg(tmp_path / "t.h5", image_size=16))
    root = write_slices(tmp_path / "s")
    (root / "masks" / "p1_002.png").unlink()
    with pytest.raises(DataError, match=r"images/p1_002\.png: label file missing"):
        prepare_ct_data(cfg(root, image_size=24))


def test_unknown_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a known CT layout"):
        detect_source(cfg(tmp_path / "empty"))
    with pytest.raises(DataError, match="no such file or folder"):
        detect_source(cfg(tmp_path / "nowhere"))


# --------------------------------------------------------------------------- every refusal


def test_data_dir_kinds_that_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"--data-dir .*notes\.txt: a file must be HDF5 patches \(\.h5\); received notes\.txt"):
        detect_source(cfg(tmp_path / "notes.txt"))
    root = write_slices(tmp_path / "slices")
    with pytest.raises(DataError, match=r"--window does not apply to a folder of PNG/JPEG slices .*slices"):
        prepare_ct_data(cfg(root, image_size=24, window=(-1000, 400)))
    (tmp_path / "hidden").mkdir()  # only a hidden patch file (a macOS resource fork): no cases
    (tmp_path / "hidden" / "._p.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"hidden: no cases found"):
        prepare_ct_data(cfg(tmp_path / "hidden", image_size=16))
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DataError, match=r"empty/images: no PNG or JPEG images found"):
        prepare_ct_data(cfg(tmp_path / "empty", image_size=16))


def test_lits_pairing_errors(tmp_path):
    root = write_lits(tmp_path / "lits", n=2)
    (root / "segmentation-7.nii").write_bytes((root / "segmentation-1.nii").read_bytes())
    with pytest.raises(DataError, match=r"segmentation-7\.nii: segmentation without a matching volume-7\.nii"):
        prepare_ct_data(cfg(root, task="liver"))
    (root / "segmentation-7.nii").unlink()
    (root / "sub").mkdir()
    (root / "sub" / "volume-1.nii.gz").write_bytes(b"x")
    with pytest.raises(DataError, match=r"volume-1\.nii.*: case 1 occurs twice \(also .*\)"):
        prepare_ct_data(cfg(root, task="liver"))
    from data.lits import list_lits_cases

    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match=r"none: no LiTS volume-N\.nii files found"):
        list_lits_cases(tmp_path / "none")


@pytest.mark.parametrize(
    "split, message",
    [
        ("{not json", r"split\.json: cannot read the split"),
        ({"train": ["lung_000"], "val": []}, r"split\.json: expected 'train', 'val' and 'test' case id lists; missing \['test'\]"),
        ({"train": ["lung_000", "lung_099"], "val": [], "test": []}, r"split\.json names 1 case\(s\) absent from .*: \['lung_099'\]"),
        ({"train": ["lung_000", "lung_001"], "val": ["lung_001"], "test": []}, r"split\.json: case 'lung_001' is in both 'train' and 'val'"),
        ({"train": [], "val": ["lung_000"], "test": ["lung_001"]}, r"split\.json leaves no training cases \(6 cases in .*\)"),
    ],
    ids=["unreadable", "missing-key", "absent-case", "overlap", "no-train"],
)
def test_a_runs_split_json_is_checked(tmp_path, split, message):
    """A resumed or evaluated run reuses its split.json: a damaged one is refused by name."""
    root = write_msd(tmp_path / "msd")
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(split if isinstance(split, str) else json.dumps(split))
    with pytest.raises(DataError, match=message):
        prepare_ct_data(cfg(root), run_dir=run)


def test_an_empty_split_is_refused_when_asked_for(tmp_path):
    data = prepare_ct_data(cfg(write_msd(tmp_path / "msd"), val_fraction=0.0))
    assert data.split["val"] == []
    with pytest.raises(DataError, match=r"split 'val' holds no slices \(cases: 0\); adjust --val-fraction"):
        data.val(2)


def test_a_damaged_preprocessing_cache_is_refused(tmp_path):
    from data.cache import SliceCache

    root = write_msd(tmp_path / "msd")
    data = prepare_ct_data(cfg(root))
    cache = data.cache.path
    images = np.load(cache / "images.npy")
    # A cache folder is complete only with all four files.
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "images.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"partial: incomplete preprocessing cache \(delete it to rebuild\)"):
        SliceCache(tmp_path / "partial")
    # Opened while intact, cut short later (another process rewrote it): rows read short.
    opened = SliceCache(cache)
    (cache / "images.npy").write_bytes((cache / "images.npy").read_bytes()[:-100])
    with pytest.raises(DataError, match=r"images\.npy: truncated \(rows 35\.\. are short\)"):
        opened.read("images", [35])
    opened.close()
    # Truncated when a run opens it: refused before training, naming the file.
    with pytest.raises(DataError, match=r"images\.npy: corrupt preprocessing cache \(delete the folder to rebuild it\)"):
        prepare_ct_data(cfg(root))
    np.save(cache / "images.npy", images[:-1])  # a readable array of the wrong length
    with pytest.raises(DataError, match=r"images\.npy: shape \(35, 32, 32\) uint16 does not match the index \(36, 32, 32\) uint16"):
        prepare_ct_data(cfg(root))
    (cache / "manifest.json").write_text("{")
    with pytest.raises(DataError, match=r"corrupt preprocessing cache .*JSONDecodeError"):
        prepare_ct_data(cfg(root))


def test_a_unit_that_reads_other_than_its_header_said(tmp_path):
    """The cache pass compares each unit's slice count with its header's (a file rewritten
    between the two reads)."""
    from data.cache import Unit, build_cache

    def load():
        return [np.zeros((4, 4), np.float32)] * 2, [np.zeros((4, 4), bool)] * 2, ["a", "a"], [0, 1]

    with pytest.raises(DataError, match=r"vol-a: header says 3 slices but 2 were read"):
        build_cache(tmp_path / "c", [Unit(name="vol-a", n_slices=3, load=load)], 4, "resize", {}, verbose=False)

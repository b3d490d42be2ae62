"""Dermoscopy listing (ISIC 2019 / HAM10000 layouts), preprocessing, lesion split, tf.data."""

import csv

import cv2
import numpy as np
import pytest

from data import dermoscopy as d
from data.synthetic_dermoscopy import write_synthetic_isic
from data.validate import DataError


def _write_ham(root, rows, images=True):
    (root / "images").mkdir(parents=True)
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        for lesion, image, dx in rows:
            w.writerow([lesion, image, dx, "histo", 50, "male", "back"])
            if images:
                cv2.imwrite(
                    str(root / "images" / f"{image}.jpg"), np.full((30, 40, 3), 128, np.uint8)
                )


def test_ham_layout_maps_classes_and_reports_missing(tmp_path):
    _write_ham(
        tmp_path,
        [("L1", "I1", "mel"), ("L1", "I2", "mel"), ("L2", "I3", "akiec"), ("L3", "I4", "nv")],
    )
    (tmp_path / "images" / "I4.jpg").unlink()
    (tmp_path / "images" / "notes.txt").write_text("ignored")
    records, missing = d.list_dermoscopy(tmp_path)
    assert [(r.image_id, r.label, r.lesion_id) for r in records] == [
        ("I1", "MEL", "L1"),
        ("I2", "MEL", "L1"),
        ("I3", "AK", "L2"),
    ]
    assert missing == ["I4"]


def test_ham_layout_bad_dx(tmp_path):
    _write_ham(tmp_path, [("L1", "I1", "xyz")])
    with pytest.raises(DataError, match="dx must be one of"):
        d.list_dermoscopy(tmp_path)


def test_isic_layout_one_hot_and_errors(tmp_path):
    root = write_synthetic_isic(tmp_path / "syn", per_class=3, size=40, seed=0)
    records, missing = d.list_dermoscopy(root)
    assert len(records) == 21 and not missing
    assert {r.label for r in records} == {"MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"}
    assert all(r.mask is not None for r in records)
    assert records[1].lesion_id == records[0].lesion_id  # the twice-photographed lesion
    csv_path = root / d.ISIC_CSV
    text = csv_path.read_text().splitlines()
    text[1] = ",".join([text[1].split(",")[0]] + ["0.0"] * 9)  # no class set
    csv_path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match="exactly one class"):
        d.list_dermoscopy(root)


def test_no_csv(tmp_path):
    with pytest.raises(DataError, match="HAM10000_metadata.csv"):
        d.list_dermoscopy(tmp_path)


def test_crop_of_a_200_by_150_image_is_170_wide():
    # "center cropped to 0.85 times its original width": 0.85 x 200 = 170, the height kept
    image = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    top, left, h, w = d.center_crop_box(150, 200, 0.85)
    assert (top, left, h, w) == (0, 15, 150, 170)
    np.testing.assert_array_equal(image[top : top + h, left : left + w], image[:, 15:185])
    # the square option: side min(170, 150)
    assert d.center_crop_box(150, 200, 0.85, "square") == (0, 25, 150, 150)
    assert d.center_crop_box(400, 200, 0.85, "square") == (115, 15, 170, 170)
    assert d.center_crop_box(400, 200, 0.85) == (0, 15, 400, 170)
    with pytest.raises(ValueError, match="crop shape"):
        d.center_crop_box(150, 200, 0.85, "circle")


def test_preprocess_crops_the_width_and_keeps_the_height():
    # left and right 15 columns red, the middle 170 blue: the width crop keeps no red
    image = np.zeros((150, 200, 3), np.uint8)
    image[:, :15, 0] = image[:, 185:, 0] = 255
    image[:, 15:185, 2] = 255
    out = d.preprocess_image(image, 34, 0.85, None)
    assert out.shape == (34, 34, 3) and out[..., 0].max() == 0 and out[..., 2].min() == 255
    # the top and bottom rows are kept: a green first and last row stay in the output
    image[0, :, 1] = image[-1, :, 1] = 255
    out = d.preprocess_image(image, 150, 0.85, None)
    assert out[0, :, 1].min() > 0 and out[-1, :, 1].min() > 0


def test_center_crop_and_shades_of_gray():
    rng = np.random.default_rng(0)
    img = rng.uniform(20, 200, (16, 16, 3))
    cast = np.clip(img * [1.2, 1.0, 0.7], 0, 255).astype(np.uint8)
    out = d.shades_of_gray(cast, 6).astype(float)
    # numpy reference: e_c = (mean I_c^6)^(1/6), scaled to the mean illuminant
    e = np.mean(cast.astype(float) ** 6, axis=(0, 1)) ** (1 / 6)
    ref = np.clip(np.round(cast * (e.mean() / e)), 0, 255)
    np.testing.assert_array_equal(out, ref)
    e_out = np.mean(out**6, axis=(0, 1)) ** (1 / 6)
    assert e_out.std() / e_out.mean() < 0.02  # grey illuminant after correction


def test_mask_resized_nearest_and_thresholded():
    mask = np.zeros((60, 80), np.uint8)
    mask[:, 40:] = 200
    mask[0, 0] = 100  # below 127
    m = d.preprocess_mask(mask, (30, 40), 16, crop_fraction=1.0)
    assert m.dtype == bool and m.shape == (16, 16)
    assert not m[:, :7].any() and m[:, 9:].all()


def test_lesion_split_is_grouped_stratified_and_seeded():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    groups = np.arange(300) // 2  # two images per lesion
    labels[1::2] = labels[::2]
    tr, va = d.lesion_split(labels, groups, 0.1, seed=3)
    assert not set(groups[tr]) & set(groups[va])
    assert 0.07 < len(va) / 300 < 0.13
    assert set(labels[va]) == {0, 1, 2}
    tr2, va2 = d.lesion_split(labels, groups, 0.1, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, d.lesion_split(labels, groups, 0.1, seed=4)[1])


def test_lesion_split_test_is_disjoint_grouped_and_sized():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    groups = np.arange(600) // 3  # three images per lesion
    labels = labels[groups * 3]  # one label per lesion
    tr, va, te = d.lesion_split_test(labels, groups, 0.1, 0.2, seed=5)
    assert len(tr) + len(va) + len(te) == 600
    sets = [set(groups[i]) for i in (tr, va, te)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert 0.17 < len(te) / 600 < 0.23 and 0.07 < len(va) / 600 < 0.13
    assert set(labels[va]) == set(labels[te]) == {0, 1, 2}
    again = d.lesion_split_test(labels, groups, 0.1, 0.2, seed=5)
    for a, b in zip((tr, va, te), again, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="sum below 1"):
        d.lesion_split_test(labels, groups, 0.5, 0.5)


def test_class_weights():
    assert d.inverse_frequency_weights([0, 0, 0, 1], 3) == pytest.approx([4 / 9, 4 / 3, 1.0])


def test_balanced_sampling_and_augmentation():
    images = np.zeros((40, 32, 32, 3), np.uint8)
    images[:, :, :16] = 200
    labels = np.array([0] * 36 + [1] * 4)
    ds = d.make_dataset(
        images, labels, 2, 16, training=True, seed=0, balanced=True, augment=d.Augment()
    )
    ys = [y.numpy() for _, y in ds.take(20)]
    frac = np.concatenate(ys)[:, 1].mean()
    assert 0.4 < frac < 0.6  # the 10 % class drawn half of the time
    x, _ = next(iter(ds))
    assert (
        x.shape == (16, 32, 32, 3) and float(x.numpy().min()) >= 0 and float(x.numpy().max()) <= 255
    )
    again, _ = next(
        iter(
            d.make_dataset(
                images, labels, 2, 16, training=True, seed=0, balanced=True, augment=d.Augment()
            )
        )
    )
    np.testing.assert_array_equal(x.numpy(), again.numpy())  # seeded
    ev = d.make_dataset(images, labels, 2, 16, training=False)
    assert sum(int(x.shape[0]) for x, _ in ev) == 40


def test_augment_rotation_keeps_centre_pixel():
    import tensorflow as tf

    x = tf.random.uniform((2, 33, 33, 3), 0, 255, seed=1)
    aug = d.Augment(
        flips=False, translation=0.0, brightness=0, contrast=0, saturation=0, rotation_deg=90
    )
    y = d.augment_batch(x, tf.constant([1, 2], tf.int64), aug)
    np.testing.assert_allclose(y[:, 16, 16].numpy(), x[:, 16, 16].numpy(), atol=1e-3)


def test_load_images_with_masks(tmp_path):
    root = write_synthetic_isic(tmp_path / "syn", per_class=1, size=48, seed=1)
    records, _ = d.list_dermoscopy(root)
    images, masks = d.load_images(records, 32, progress=False)
    assert (
        images.shape == (7, 32, 32, 3) and images.dtype == np.uint8 and masks.any(axis=(1, 2)).all()
    )


def test_real_ham10000(shared_data):
    root = shared_data / "ham10000"
    records, missing = d.list_dermoscopy(root)
    assert len(records) == 10015 and not missing
    assert {r.label for r in records} == {"MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC"}
    ham, _ = d.list_dermoscopy(root, layout="ham")
    assert {r.image_id: r.label for r in ham} == {r.image_id: r.label for r in records}
    images, masks = d.load_images(records[:4], 32, progress=False)
    assert images.shape == (4, 32, 32, 3) and masks.any(axis=(1, 2)).all()


@pytest.mark.parametrize(
    "balanced, weighted, expected",
    [
        # counts 80 / 20, N = 100, C = 2: w = 100 / (2 * 80) = 0.625 and 100 / (2 * 20) = 2.5
        (False, False, [0.8, 0.2]),  # the data's own prior
        (True, False, [0.5, 0.5]),  # one correction: equal
        (False, True, [0.5, 0.5]),  # 0.8 * 0.625 = 0.5 = 0.2 * 2.5
        (True, True, [0.2, 0.8]),  # both: 0.5 * 0.625 : 0.5 * 2.5 = 1 : 4, i.e. 1 / n_c
    ],
)
def test_class_loss_shares_by_hand(balanced, weighted, expected):
    shares = d.class_loss_shares([80, 20], balanced, weighted)
    assert shares == pytest.approx(expected)


def test_class_loss_shares_compound_on_ham10000_training_counts():
    # seed 0's training counts with all images (MEL, NV, BCC, AK, DF): DF weighs 4694 / 81 = 58 x NV
    shares = d.class_loss_shares([778, 4694, 359, 229, 81], True, True)
    assert shares[4] / shares[1] == pytest.approx(4694 / 81)
    with pytest.raises(ValueError, match="at least one training image"):
        d.class_loss_shares([3, 0], True, True)

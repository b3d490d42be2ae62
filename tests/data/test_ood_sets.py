"""OOD sets on synthetic originals: box position and size, skin crops away from the lesion,
the dermoscopy preprocessing applied to every set."""

import cv2
import numpy as np
import pytest

from data import ood_sets
from data.dermoscopy import Record, preprocess_image
from data.validate import DataError

SKIN = (200, 150, 120)  # RGB; Shades-of-Gray turns a uniform colour grey
LESION = (60, 30, 20)
H, W = 150, 200  # the shared HAM10000 images are 200 x 150
BOX = (50, 90, 80, 130)  # lesion rows 50..89, columns 80..129 at the image's resolution


def _record(tmp_path, name, lesion=True, vignette=False, mask=True):
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = SKIN
    y0, y1, x0, x1 = BOX
    if lesion:
        img[y0:y1, x0:x1] = LESION
    if vignette:  # black corners, as a dermoscope's circular field leaves them
        yy, xx = np.mgrid[:H, :W]
        img[((yy - H / 2) / (H / 2)) ** 2 + ((xx - W / 2) / (W / 2)) ** 2 > 1.1] = 0
    path = tmp_path / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    mask_path = None
    if mask:  # masks are stored at 3x the image's resolution, as in the shared data
        m = np.zeros((3 * H, 3 * W), np.uint8)
        if lesion:
            m[3 * y0 : 3 * y1, 3 * x0 : 3 * x1] = 255
        mask_path = tmp_path / f"{name}_segmentation.png"
        cv2.imwrite(str(mask_path), m)
    return Record(name, path, "MEL", name, mask_path), img


def test_bbox_blacks_out_the_lesion_box_on_the_original_then_preprocesses(tmp_path):
    rec, raw = _record(tmp_path, "a")
    no_mask, _ = _record(tmp_path, "b", mask=False)
    image, mask = ood_sets.read_with_mask(rec)
    assert mask.shape == (H, W) and ood_sets.lesion_box(mask) == BOX
    out = ood_sets.bbox_images([rec, no_mask], 32, crop_fraction=0.85, sog_power=6.0)
    assert out.shape == (1, 32, 32, 3)  # the record without a mask is skipped
    boxed = raw.copy()
    boxed[50:90, 80:130] = 0
    np.testing.assert_array_equal(out[0], preprocess_image(boxed, 32, 0.85, 6.0))
    with pytest.raises(ValueError, match="B-Box kind"):
        ood_sets.bbox_images([rec], 32, kind="lesion-50")
    # with_ids names the source images used; the square crop is the option
    out, ids = ood_sets.bbox_images(
        [rec, no_mask], 32, 0.85, 6.0, crop_shape="square", with_ids=True
    )
    assert ids == ["a"]
    np.testing.assert_array_equal(out[0], preprocess_image(boxed, 32, 0.85, 6.0, "square"))


def test_bbox70_lesion_reading_hides_about_70_percent_of_the_lesion(tmp_path):
    rec, _ = _record(tmp_path, "a")
    _, mask = ood_sets.read_with_mask(rec)
    y0, y1, x0, x1 = ood_sets.coverage_box(mask, 0.7)
    hidden = mask[y0:y1, x0:x1].sum() / mask.sum()
    assert 0.7 <= hidden < 0.8
    assert (y0 + y1) / 2 == pytest.approx(70, abs=1) and (x0 + x1) / 2 == pytest.approx(105, abs=1)
    assert y0 > 50 and y1 < 90 and x0 > 80 and x1 < 130  # smaller than the B-Box box


def test_bbox70_image_reading_covers_70_percent_of_the_image(tmp_path):
    rec, raw = _record(tmp_path, "a")
    _, mask = ood_sets.read_with_mask(rec)
    y0, y1, x0, x1 = ood_sets.image_area_box(mask, 0.7)
    assert (y1 - y0) * (x1 - x0) / (H * W) == pytest.approx(0.7, abs=0.01)
    assert 0 <= y0 and y1 <= H and 0 <= x0 and x1 <= W
    assert y0 <= 50 and y1 >= 90 and x0 <= 80 and x1 >= 130  # the lesion box is inside
    out = ood_sets.bbox_images([rec], 32, kind="image-70")
    boxed = raw.copy()
    boxed[y0:y1, x0:x1] = 0
    np.testing.assert_array_equal(out[0], preprocess_image(boxed, 32))


def test_derm_skin_crops_skin_only_from_the_original_and_preprocesses(tmp_path):
    records = [_record(tmp_path, f"r{i}", vignette=True)[0] for i in range(6)]
    out = ood_sets.derm_skin_images(records, 32, side_fraction=0.35, seed=0, max_dark_fraction=0)
    assert out.shape == (6, 32, 32, 3)
    # no lesion and no vignette pixel: each patch is the uniform skin colour, and after
    # Shades-of-Gray that colour is grey (the raw skin's R - B is 80)
    expected = preprocess_image(np.full((52, 52, 3), SKIN, np.uint8), 32)
    for img in out:
        np.testing.assert_array_equal(img, expected)
    assert abs(int(expected[0, 0, 0]) - int(expected[0, 0, 2])) <= 1
    # a patch larger than the skin left around the lesion cannot be found: record skipped
    assert len(ood_sets.derm_skin_images(records[:1], 32, side_fraction=0.9)) == 0


def test_skin_crop_box_avoids_mask_and_dark_pixels():
    rng = np.random.default_rng(0)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    image = np.full((60, 80, 3), 150, np.uint8)
    image[:, :15] = 0  # a dark band on the left
    for _ in range(20):
        y0, y1, x0, x1 = ood_sets.skin_crop_box(mask, image, 15, rng)
        assert not mask[y0:y1, x0:x1].any() and x0 >= 15
    assert ood_sets.skin_crop_box(mask, image, 61, rng) is None


def test_random_crops_are_preprocessed_like_dermoscopy_inputs():
    source = np.full((300, 400, 3), SKIN, np.uint8)
    out = ood_sets.random_crops([source], 3, 32, seed=0)
    expected = preprocess_image(np.full((200, 200, 3), SKIN, np.uint8), 32)
    for img in out:  # any crop of a uniform source, Shades-of-Gray corrected: uniform grey
        np.testing.assert_array_equal(img, expected)
    raw = ood_sets.random_crops([source], 1, 32, sog_power=None, seed=0)
    np.testing.assert_array_equal(raw[0], np.full((32, 32, 3), SKIN, np.uint8))


def test_natural_set_uses_every_listed_photograph():
    photos = ood_sets.natural_photographs()
    assert len(photos) == len(ood_sets.NATURAL_PHOTOGRAPHS) == 17
    assert all(a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8 for _, a in photos)
    assert all(min(a.shape[:2]) >= 128 and a.std() > 10 for _, a in photos)
    out = ood_sets.natural_images(34, 32, seed=0)
    assert out.shape == (34, 32, 32, 3) and out.dtype == np.uint8
    assert len({img.tobytes() for img in out}) == 34
    assert not np.array_equal(out, ood_sets.natural_images(34, 32, sog_power=None, seed=0))


def test_histology_set_is_distinct_crops_of_the_ihc_slide():
    out = ood_sets.histology_images(5, 32, seed=1)
    assert out.shape == (5, 32, 32, 3) and len({img.tobytes() for img in out}) == 5


def test_folder(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 50, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert ood_sets.folder_images(tmp_path, 32).shape == (1, 32, 32, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .jpg"):
        ood_sets.folder_images(tmp_path / "empty", 32)
    with pytest.raises(DataError, match="is not a folder"):
        ood_sets.folder_images(tmp_path / "absent", 32)

"""The synthetic nodule generator: the paper's intensity facts, shapes, determinism, tf.data."""

import numpy as np
import pytest
from scipy.ndimage import binary_erosion
from skimage.morphology import convex_hull_image

from data.nodules import (
    BENIGN,
    MALIGNANT,
    NoduleSpec,
    bspline_basis,
    check_arrays,
    generate_nodules,
    make_dataset,
    parse_distribution,
    render_occupancy,
)
from data.validate import DataError

N = 200  # the paper's set size: the facts must hold on a batch of this size


@pytest.fixture(scope="module")
def d150_150():
    return generate_nodules(N, 150, 150, seed=3)


@pytest.fixture(scope="module")
def d180_160():
    return generate_nodules(N, 180, 160, seed=4)


def test_at_d150_150_malignant_images_are_darker_than_benign(d150_150):
    # Baltatzis et al. 2021: whole-image means 110 (malignant) vs 114 (benign) at D(150, 150).
    x, _, y = d150_150
    mal, ben = x[y == MALIGNANT].mean(), x[y == BENIGN].mean()
    assert mal < ben - 3
    assert mal == pytest.approx(110, abs=1.0)
    assert ben == pytest.approx(114, abs=1.0)


def test_at_d180_160_whole_image_means_are_equal(d180_160):
    # Baltatzis et al. 2021: both about 117 at D(180, 160).
    x, _, y = d180_160
    mal, ben = x[y == MALIGNANT].mean(), x[y == BENIGN].mean()
    assert abs(mal - ben) < 1.0
    assert mal == pytest.approx(117, abs=1.0) and ben == pytest.approx(117, abs=1.0)


def test_area_fractions_and_fixed_background(d150_150):
    x, m, y = d150_150
    assert m[y == MALIGNANT].mean() == pytest.approx(0.23, abs=0.01)
    assert m[y == BENIGN].mean() == pytest.approx(0.31, abs=0.01)
    # Pixels the shape never reaches hold exactly the background, in every image.
    assert np.all(x[:, 0, :] == 98.0) and np.all(x[:, :, -1] == 98.0)
    # No shape is cut by the border.
    assert not m[:, [0, -1], :].any() and not m[:, :, [0, -1]].any()


@pytest.mark.parametrize("dist", [(150, 150), (180, 160), (130, 170)])
def test_foreground_intensity_mode(dist):
    x, m, y = generate_nodules(40, *dist, seed=1)
    # Away from the outline, where partial pixels mix in the background.
    interior = np.stack([binary_erosion(mask) for mask in m])
    for label, mode in ((MALIGNANT, dist[0]), (BENIGN, dist[1])):
        inner = interior[y == label]
        assert x[y == label][inner].mean() == pytest.approx(mode, abs=2.0)


def test_benign_is_convex_and_malignant_is_spiculated(d150_150):
    _, m, y = d150_150
    solidity = np.array([mask.sum() / convex_hull_image(mask).sum() for mask in m[:40]])
    assert solidity[y[:40] == BENIGN].min() > 0.95
    assert solidity[y[:40] == MALIGNANT].max() < 0.9


def test_image_and_mask_come_from_one_deformation():
    # Without noise the image is background + occupancy * (i - background) and the mask is
    # occupancy >= 0.5: both must mark the same pixels.
    spec = NoduleSpec(noise_sd=0.0)
    x, m, _ = generate_nodules(20, 170, 130, seed=7, spec=spec)
    y = np.arange(20) % 2 == 0
    mode = np.where(y, 170.0, 130.0)[:, None, None]
    midpoint = 98.0 + 0.5 * (mode - 98.0)
    np.testing.assert_array_equal(m.astype(bool), x >= midpoint - 1e-3)


def test_noise_on_the_whole_image_reaches_the_background():
    spec = NoduleSpec(noise_on="image", noise_sd=8.0)
    x, m, _ = generate_nodules(20, 150, 150, seed=2, spec=spec)
    border = np.concatenate([x[:, 0, :], x[:, -1, :]], axis=None)
    assert border.mean() == pytest.approx(98.0, abs=1.0)
    assert border.std() == pytest.approx(8.0, rel=0.15)
    with pytest.raises(ValueError, match="noise_on"):
        NoduleSpec(noise_on="background")


def test_image_size_changes_the_resolution_only():
    # Pixel lengths are given at 64x64 and scaled with the size: a 32x32 sample is the same
    # deformed shape as the 64x64 sample of the same seed, at half the resolution.
    for label in (MALIGNANT, BENIGN):
        small = render_occupancy(label, np.random.default_rng(9), NoduleSpec(size=32))
        large = render_occupancy(label, np.random.default_rng(9), NoduleSpec(size=64))
        diff = np.abs(small - large.reshape(32, 2, 32, 2).mean(axis=(1, 3)))
        # Only outline pixels differ, by a few of their 16 sub-samples.
        assert diff.max() <= 0.25 and diff.mean() < 0.005
        assert small.sum() * 4 == pytest.approx(large.sum(), rel=0.01)


def test_samples_are_deformed_differently():
    _, m, y = generate_nodules(6, 150, 150, seed=0)
    benign = m[y == BENIGN].astype(int)
    assert np.abs(benign[0] - benign[1]).sum() > 20


def test_seeded_and_independent_of_set_size():
    a = generate_nodules(10, 150, 150, seed=5)
    b = generate_nodules(4, 150, 150, seed=5)
    c = generate_nodules(4, 150, 150, seed=6)
    for full, prefix in zip(a, b, strict=True):
        np.testing.assert_array_equal(full[:4], prefix)
    assert not np.array_equal(a[0][:4], c[0])


def test_bspline_basis_is_a_partition_of_unity():
    coords = np.linspace(0, 63.9, 200)
    w = bspline_basis(coords, n_points=7, spacing=16.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert (w >= 0).all()


def test_tf_data_pipeline_is_batched_and_repeatable():
    x, _, y = generate_nodules(10, 150, 150, seed=0, spec=NoduleSpec(size=32))
    ds = make_dataset(x, y, batch_size=4, shuffle=True, seed=1)
    batches = list(ds.as_numpy_iterator())
    assert [b[0].shape for b in batches] == [(4, 32, 32, 1), (4, 32, 32, 1), (2, 32, 32, 1)]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
    again = list(make_dataset(x, y, batch_size=4, shuffle=True, seed=1).as_numpy_iterator())
    np.testing.assert_array_equal(batches[0][1], again[0][1])
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == sorted(y.tolist())


def test_parse_distribution_and_errors():
    assert parse_distribution("180,160") == (180, 160)
    assert parse_distribution([150, 190]) == (150, 190)
    with pytest.raises(ValueError, match="--train-dist"):
        parse_distribution("180")
    with pytest.raises(ValueError, match="--test-dist.*255"):
        parse_distribution("300,100", "--test-dist")


def test_check_arrays_names_the_problem():
    x = np.full((3, 16, 16), 100.0)
    with pytest.raises(DataError, match=r"my set: expected labels in \{0, 1\}; found \[2\]"):
        check_arrays(x, np.array([0, 1, 2]), "my set")
    with pytest.raises(DataError, match="intensities"):
        check_arrays(x * 3, np.array([0, 1, 1]))

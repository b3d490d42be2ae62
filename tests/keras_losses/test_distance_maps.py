"""Signed distance maps: shapes whose distances are known, 2D and 3D, with the voxel spacing."""

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from keras_losses.distance_maps import (
    attach_distance_maps,
    signed_distance_map,
    signed_distance_maps,
    split_distance_maps,
)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 3.0), (2.5, 0.7)])
def test_half_plane_2d_known_distances(spacing):
    # shape: (6, 9); foreground = columns 0..3 (boundary between columns 3 and 4, along axis 1)
    mask = np.zeros((6, 9), bool)
    mask[:, :4] = True
    phi = signed_distance_map(mask, spacing)
    col = np.arange(9)
    # outside: (j - 3) voxels to the last foreground column; inside: (4 - j) to the first background one
    expected = np.where(col >= 4, (col - 3) * spacing[1], -(4 - col) * spacing[1])
    np.testing.assert_allclose(phi, np.broadcast_to(expected, (6, 9)), rtol=1e-6)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 1.0, 0.5)])
def test_single_voxel_3d_known_distances(spacing):
    # shape: (5, 7, 6); one foreground voxel at c: outside distance = |x - c| in mm
    mask = np.zeros((5, 7, 6), bool)
    c = (2, 3, 1)
    mask[c] = True
    phi = signed_distance_map(mask, spacing)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in mask.shape], indexing="ij"), -1)
    dist = np.sqrt((((grid - np.array(c)) * np.array(spacing)) ** 2).sum(-1))
    expected = np.where(mask, -min(spacing), dist)
    np.testing.assert_allclose(phi, expected, rtol=1e-6)


@pytest.mark.parametrize("shape,spacing", [((20, 24), (0.8, 1.7)), ((9, 12, 10), (2.0, 1.0, 0.6))])
def test_agrees_with_scipy_edt(shape, spacing):
    rng = np.random.default_rng(0)
    mask = rng.random(shape) < 0.3
    phi = signed_distance_map(mask, spacing)
    expected = distance_transform_edt(~mask, sampling=spacing) - distance_transform_edt(
        mask, sampling=spacing
    )
    np.testing.assert_allclose(phi, expected, rtol=1e-6)
    assert (phi[mask] < 0).all() and (phi[~mask] > 0).all()


def test_empty_and_full_masks_have_no_boundary():
    assert not signed_distance_map(np.zeros((4, 4))).any()
    assert not signed_distance_map(np.ones((4, 4))).any()


def test_per_class_maps_sparse_and_onehot_agree():
    labels = np.zeros((8, 8), int)
    labels[2:5, 2:5] = 1
    labels[5:7, 1:7] = 2
    sparse = signed_distance_maps(labels[..., None], 3, spacing=(1.0, 2.0))
    onehot = signed_distance_maps(np.eye(3)[labels], 3, spacing=(1.0, 2.0))
    np.testing.assert_allclose(sparse, onehot)
    assert sparse.shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_allclose(sparse[..., c], signed_distance_map(labels == c, (1.0, 2.0)))
    binary = signed_distance_maps((labels == 1)[..., None], 1)
    np.testing.assert_allclose(binary[..., 0], signed_distance_map(labels == 1))


def test_bad_spacing_names_the_argument():
    with pytest.raises(ValueError, match="spacing"):
        signed_distance_map(np.eye(4, dtype=bool), (1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        signed_distance_map(np.eye(4, dtype=bool), (1.0, 1.0, 1.0))


def test_tf_data_pipeline_attaches_maps():
    import tensorflow as tf

    labels = np.zeros((3, 10, 10, 1), np.float32)
    labels[0, 2:6, 3:7] = 1
    labels[2, 0:2, 0:10] = 1
    images = np.zeros((3, 10, 10, 1), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.map(attach_distance_maps(num_classes=1, spacing=(2.0, 1.0))).batch(3)
    x, y = next(iter(ds))
    assert tuple(y.shape) == (3, 10, 10, 2)
    y = y.numpy()
    np.testing.assert_array_equal(y[..., :1], labels)
    for i in range(3):
        np.testing.assert_allclose(y[i, ..., 1], signed_distance_map(labels[i, ..., 0], (2.0, 1.0)))
    lab, phi = split_distance_maps(y, 1)
    assert lab.shape == (3, 10, 10, 1) and phi.shape == (3, 10, 10, 1)
    with pytest.raises(ValueError, match="distance-map"):
        split_distance_maps(labels, 1)

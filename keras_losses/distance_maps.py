"""Signed distance maps of label masks, computed once per sample in the data pipeline.

The boundary loss (Kervadec et al. 2019) and the distance-transform Hausdorff loss (Karimi &
Salcudean 2019) weight each pixel by its distance to the ground-truth boundary. That distance
does not change during training, so it is computed once per sample, outside the gradient, by
:func:`signed_distance_maps` (numpy, ``scipy.ndimage.distance_transform_edt`` with the voxel
spacing) and attached to the labels by :func:`attach_distance_maps` inside any ``tf.data``
pipeline::

    ds = tf.data.Dataset.from_tensor_slices((images, labels))   # labels (h, w, 1) in {0..C-1}
    ds = ds.map(attach_distance_maps(num_classes=3, spacing=(1.0, 1.0)))
    # elements: (image, y_true) with y_true = concat([labels, phi], -1), shape (h, w, 1 + 3)

The losses that need the maps (``BoundaryLoss``, ``DiceBoundaryLoss``,
``OneSidedHausdorffDTLoss``) read the last ``C`` channels of ``y_true`` as the maps and the
channels before them as the labels (sparse, one channel, or one-hot, ``C`` channels), where
``C`` is the number of channels of ``y_pred``.

Formula (per class c, foreground G = {labels == c}, spacing h):
    phi_c(x) = +dist_h(x, G)               for x outside G
    phi_c(x) = -dist_h(x, complement of G) for x inside G
    phi_c = 0 everywhere when G is empty or fills the whole sample (no boundary)

``dist_h`` is the Euclidean distance between voxel centres in millimetres
(``distance_transform_edt(..., sampling=spacing)``). The zero level lies between the last
voxel inside and the first voxel outside, so a voxel on either side of the boundary is at one
voxel spacing, not zero.

Reference:
    H. Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 /
    Medical Image Analysis 67, 101851, 2021, Eq. 5 (the level-set function phi_G). Their code
    subtracts one voxel inside G so that the inner boundary voxels are 0; here the two sides
    are symmetric, which keeps the map in millimetres under an anisotropic spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def signed_distance_map(mask, spacing: Sequence[float] | float | None = None) -> np.ndarray:
    """Signed distance (negative inside) of one binary mask of any rank, float32.

    Args:
        mask: boolean or {0, 1} array, e.g. ``(h, w)`` or ``(d, h, w)``.
        spacing: voxel size per axis (one number for all axes); default 1.

    Returns:
        ``phi`` of the mask's shape: ``+distance to the mask`` outside, ``-distance to the
        background`` inside; all zeros when the mask is empty or full.
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask).astype(bool)
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, np.float32)
    sampling = _sampling(spacing, mask.ndim)
    outside = distance_transform_edt(~mask, sampling=sampling)  # 0 inside the mask
    inside = distance_transform_edt(mask, sampling=sampling)  # 0 outside the mask
    return (outside - inside).astype(np.float32)


def signed_distance_maps(
    labels,
    num_classes: int,
    spacing: Sequence[float] | float | None = None,
) -> np.ndarray:
    """One signed distance map per class of one sample's label image, channels last.

    Args:
        labels: one sample, integer class ids of shape ``spatial`` or ``spatial + (1,)``, or a
            one-hot array of shape ``spatial + (num_classes,)``.
        num_classes: C, the number of classes (channels of the network output). For a binary
            task with a sigmoid output, C = 1 and the map is that of ``labels == 1``.
        spacing: voxel size of the spatial axes (one number for all); default 1.

    Returns:
        float32 array ``spatial + (C,)``: channel c is :func:`signed_distance_map` of class c
        (class 1 when C = 1).
    """
    labels = np.asarray(labels)
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1; received {num_classes}")
    if labels.ndim >= 2 and labels.shape[-1] == num_classes and num_classes > 1:
        masks = [labels[..., c] > 0.5 for c in range(num_classes)]
    else:
        if labels.ndim >= 2 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        ids = np.rint(labels).astype(np.int64)
        classes = [1] if num_classes == 1 else range(num_classes)
        masks = [ids == c for c in classes]
    return np.stack([signed_distance_map(m, spacing) for m in masks], axis=-1)


def attach_distance_maps(num_classes: int, spacing: Sequence[float] | float | None = None):
    """A ``tf.data`` map function ``(x, y) -> (x, concat([y, phi], -1))`` for one sample.

    Apply it before ``batch`` (one sample per call); ``phi`` is :func:`signed_distance_maps`
    of ``y``, computed in a ``tf.numpy_function`` with the given voxel spacing. A third
    element (sample weights) is passed through. ``y`` must carry a channel axis (sparse ids
    ``(..., 1)`` or one-hot ``(..., C)``).

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> images = np.zeros((4, 8, 8, 1), "float32")
        >>> labels = np.zeros((4, 8, 8, 1), "float32"); labels[:, 2:5, 2:5] = 1  # shape: (4, 8, 8, 1)
        >>> ds = tf.data.Dataset.from_tensor_slices((images, labels))
        >>> ds = ds.map(attach_distance_maps(num_classes=1, spacing=2.0)).batch(8)
        >>> x, y = next(iter(ds))
        >>> y.shape  # the mask, then its signed distance map
        TensorShape([4, 8, 8, 2])
    """
    import tensorflow as tf

    def maps(y):
        phi = tf.numpy_function(
            lambda a: signed_distance_maps(a, num_classes, spacing), [y], tf.float32
        )
        return tf.reshape(phi, tf.concat([tf.shape(y)[:-1], [num_classes]], 0))

    def attach(x, y, *rest):
        y_float = tf.cast(y, tf.float32)
        y_full = tf.concat([y_float, maps(y_float)], axis=-1)
        return (x, y_full, *rest)

    return attach


def split_distance_maps(y_true, num_classes: int):
    """``(labels, phi)`` of a ``y_true`` built by :func:`attach_distance_maps` (any backend).

    The last ``num_classes`` channels are the maps; the channels before them the labels.
    """
    channels = y_true.shape[-1]
    if channels is not None and channels <= num_classes:
        raise ValueError(
            f"y_true must carry the labels and {num_classes} distance-map channel(s) "
            f"(attach_distance_maps); received {channels} channel(s) for {num_classes} classes"
        )
    return y_true[..., :-num_classes], y_true[..., -num_classes:]


def _sampling(spacing, ndim: int):
    if spacing is None:
        return None
    if np.ndim(spacing) == 0:
        values = [float(spacing)] * ndim
    else:
        values = [float(s) for s in spacing]
    if len(values) != ndim or any(not (v > 0 and np.isfinite(v)) for v in values):
        raise ValueError(
            f"`spacing` must be one positive number or {ndim} of them (one per spatial axis); "
            f"received {spacing!r}"
        )
    return values

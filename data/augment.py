"""In-graph augmentation for (image, mask) batches with stateless seeded TF random ops.

One sampling grid per sample combines a random left-right and up-down flip, a small
rotation about the centre and an elastic deformation whose displacement field is a cubic
B-spline over a coarse grid of random control-point offsets. Image and mask are stacked as two
channels and resampled together with bilinear interpolation, so they move identically; the
mask channel is thresholded at 0.5 afterwards. Pixels mapped from outside the slice become 0.

Everything is a pure function of ``seed`` (shape (2,) int), as ``tf.data`` maps need: the
pipeline draws a fresh seed per batch from ``tf.data.Dataset.random`` so epochs differ while
runs with the same seed repeat exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True  # random left-right and up-down flips, each with probability 0.5
    max_rotation_deg: float = 10.0  # rotation drawn uniformly from [-max, max] degrees
    elastic_sigma: float = 0.01  # sd of control-point offsets as a fraction of the size (5 px at 512)
    elastic_grid: int = 4  # B-spline intervals per axis (control points: grid + 3)


def bspline_basis(n: int, intervals: int) -> np.ndarray:
    """(n, intervals + 3) matrix of uniform cubic B-spline weights for n pixels on ``intervals``."""
    t = (np.arange(n) + 0.5) / n * intervals  # position in control-grid units, in [0, intervals)
    i = np.floor(t).astype(int)
    u = t - i
    weights = np.stack([(1 - u) ** 3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6,
                        (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6, u**3 / 6], axis=1)
    basis = np.zeros((n, intervals + 3), dtype=np.float32)
    for k in range(4):
        basis[np.arange(n), i + k] = weights[:, k]
    return basis


def _bilinear(stack, ys, xs):
    """Sample ``stack`` (B, H, W, C) at float coordinates ys, xs (B, H, W); zero outside.

    The stack is padded with a one-pixel zero border and coordinates are clipped into it, so
    no in-bounds masks are needed: a point outside reads zeros.
    """
    import tensorflow as tf

    shape = tf.shape(stack)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    padded = tf.pad(stack, [[0, 0], [1, 1], [1, 1], [0, 0]])  # (b, h + 2, w + 2, c)
    wp = w + 2
    # One gather instead of four: each padded pixel carries its 2x2 neighbourhood as channels
    # (gathers cost per index far more than per channel on CPU). The extra bottom/right zero
    # row and column only feed neighbours that clipping never selects as a top-left corner.
    quad = tf.concat([padded[:, :-1, :-1], padded[:, :-1, 1:], padded[:, 1:, :-1], padded[:, 1:, 1:]], axis=-1)
    flat = tf.reshape(tf.pad(quad, [[0, 0], [0, 1], [0, 1], [0, 0]]), [b, (h + 2) * wp, 4 * c])
    ys = tf.clip_by_value(ys + 1.0, 0.0, tf.cast(h, tf.float32) + 0.999)  # padded coordinates
    xs = tf.clip_by_value(xs + 1.0, 0.0, tf.cast(w, tf.float32) + 0.999)
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]  # (b, h, w, 1)
    top = tf.reshape(tf.cast(y0, tf.int32) * wp + tf.cast(x0, tf.int32), [b, h * w])
    corners = tf.reshape(tf.gather(flat, top, batch_dims=1), [b, h, w, 4, c])
    upper = corners[..., 0, :] + wx * (corners[..., 1, :] - corners[..., 0, :])
    lower = corners[..., 2, :] + wx * (corners[..., 3, :] - corners[..., 2, :])
    return upper + wy * (lower - upper)


def augment_batch(images, masks, seed, config: AugmentConfig | None = None):
    """Augment a batch: ``images`` (B, H, W, 1) float32, ``masks`` (B, H, W, 1) {0, 1}, ``seed`` (2,).

    H and W must be known when tracing (the B-spline basis is built for them). Returns the
    augmented ``(images, masks)``, masks again exactly 0 or 1.
    """
    import tensorflow as tf

    config = config or AugmentConfig()
    h, w = int(images.shape[1]), int(images.shape[2])
    b = tf.shape(images)[0]
    seed = tf.cast(seed, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, num=4)

    # (b, h, w) output pixel coordinates
    yy, xx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    yy = tf.broadcast_to(yy, [b, h, w])
    xx = tf.broadcast_to(xx, [b, h, w])
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

    if config.flip:
        flips = tf.random.stateless_uniform([b, 2], seeds[0]) < 0.5  # (b, 2): up-down, left-right
        yy = tf.where(flips[:, 0, None, None], (h - 1) - yy, yy)
        xx = tf.where(flips[:, 1, None, None], (w - 1) - xx, xx)

    angle = tf.random.stateless_uniform([b], seeds[1], -1.0, 1.0) * (config.max_rotation_deg * np.pi / 180.0)
    cos, sin = tf.cos(angle)[:, None, None], tf.sin(angle)[:, None, None]
    ys = cy + cos * (yy - cy) - sin * (xx - cx)
    xs = cx + sin * (yy - cy) + cos * (xx - cx)

    if config.elastic_sigma > 0:
        g = config.elastic_grid + 3
        basis_y = tf.constant(bspline_basis(h, config.elastic_grid))  # (h, g)
        basis_x = tf.constant(bspline_basis(w, config.elastic_grid))  # (w, g)
        control = tf.random.stateless_normal([b, 2, g, g], seeds[2]) * (config.elastic_sigma * float(max(h, w)))
        # (b, 2, h, w) displacement in pixels: Bh @ C @ Bw^T per sample and axis
        field = tf.einsum("hi,bkij,wj->bkhw", basis_y, control, basis_x)
        ys = ys + field[:, 0]
        xs = xs + field[:, 1]

    stack = tf.concat([tf.cast(images, tf.float32), tf.cast(masks, tf.float32)], axis=-1)  # (b, h, w, 2)
    warped = _bilinear(stack, ys, xs)
    out_images = tf.clip_by_value(warped[..., :1], 0.0, 1.0)
    out_masks = tf.cast(warped[..., 1:] >= 0.5, tf.float32)
    return out_images, out_masks

"""Gradient pixel attacks on segmentation models and the Dice score they are judged by.

The attack of Rajput (2021): compute the gradient of the predicted output with respect to
the input (:func:`evaluation.gradients.input_gradients`), take the N pixels of largest
gradient, and overwrite them with a value v.

"Largest" is the signed value by default (``ranking="signed"``): the paper ranks by "the
N-highest gradient value" (Sec. 3) and shows the positive gradients as the active ones
(Fig. 1: "positive gradients overlaid on top of the original segmentation mask"); the largest
value of a gradient is its most positive entry. ``ranking="magnitude"`` ranks by ``|grad|``
instead (the other common reading of "highest gradient"). Every attack level (N, v) or random
repetition of every image is evaluated batched on the graph: (image, level) pairs are
gathered, attacked, predicted and scored in one traced function per batch.

Reference:
    V. Rajput, "Robustness of different loss functions and their impact on networks learning
    capability", arXiv:2110.08322, 2021, Sec. 4, Figs. 2-6.
"""

from __future__ import annotations

import numpy as np

RANKINGS = ("signed", "magnitude")


def check_ranking(ranking: str) -> str:
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {', '.join(RANKINGS)}; received {ranking!r}")
    return ranking


def dice_per_image(y_true, y_pred, threshold: float = 0.5, empty: float = 1.0) -> np.ndarray:
    """Hard Dice of each image: ``2 |T & P| / (|T| + |P|)`` with ``P = y_pred > threshold``.

    Args:
        y_true: ``(N, ...)`` binary masks.
        y_pred: ``(N, ...)`` probabilities (or binary masks).
        threshold: probability above which a pixel is foreground (default 0.5).
        empty: the score when both masks are empty (default 1.0: a correct empty prediction).

    Returns:
        ``(N,)`` float64 scores in [0, 1].
    """
    t = np.asarray(y_true) > 0.5
    p = np.asarray(y_pred) > threshold
    if t.shape != p.shape:
        raise ValueError(
            f"dice_per_image: y_true shape {t.shape} differs from y_pred shape {p.shape}"
        )
    axes = tuple(range(1, t.ndim))
    inter = np.logical_and(t, p).sum(axis=axes).astype(np.float64)
    total = (t.sum(axis=axes) + p.sum(axis=axes)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0, empty, 2.0 * inter / np.maximum(total, 1))


def top_gradient_attack(images, grads, n_pixels, values, ranking: str = "signed"):
    """Overwrite the ``n_pixels[b]`` pixels of largest gradient of each image with ``values[b]``.

    Formula:
        r_b = grads[b] (ranking "signed") or |grads[b]| (ranking "magnitude")
        S_b = indices of the n_b largest entries of r_b   (ties: lower index first)
        x'_b[i] = values[b, rank of i in S_b]  for i in S_b,  x_b[i] otherwise

    Args:
        images: ``(B, H, W, C)`` float tensor.
        grads: ``(B, H, W, C)`` gradients (:func:`evaluation.gradients.input_gradients`).
        n_pixels: ``(B,)`` int, how many pixels to overwrite in each image (0 leaves it as is).
        values: ``(B, K)`` float with ``K >= max(n_pixels)``: the value written into the
            k-th highest-gradient pixel (a constant attack repeats one value along K).
        ranking: ``"signed"`` (default, the paper's "N-highest gradient value") or
            ``"magnitude"`` (rank by ``|grad|``).

    Returns:
        ``(B, H, W, C)`` attacked images (a TF tensor).
    """
    import tensorflow as tf

    check_ranking(ranking)

    images = tf.convert_to_tensor(images, tf.float32)
    grads = tf.convert_to_tensor(grads, tf.float32)
    values = tf.convert_to_tensor(values, tf.float32)
    n_pixels = tf.convert_to_tensor(n_pixels, tf.int32)
    k = values.shape[1]
    if k is None:
        raise ValueError("top_gradient_attack: `values` needs a static second dimension K")
    if k == 0:
        return images
    shape = tf.shape(images)
    batch = shape[0]
    # (B, H*W*C): pixels of one image in a row
    flat = tf.reshape(images, (batch, -1))
    score = tf.abs(grads) if ranking == "magnitude" else grads
    _, idx = tf.math.top_k(tf.reshape(score, (batch, -1)), k=k, sorted=True)  # (B, K)
    original = tf.gather(flat, idx, batch_dims=1)
    chosen = tf.range(k)[None, :] < n_pixels[:, None]  # (B, K): rank < n_b
    updates = tf.where(chosen, values, original)
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(idx))
    flat = tf.tensor_scatter_nd_update(flat, tf.stack([rows, idx], axis=-1), updates)
    return tf.reshape(flat, shape)


def attack_dice(
    model,
    images: np.ndarray,
    masks: np.ndarray,
    grads: np.ndarray,
    n_pixels,
    values,
    *,
    batch_size: int = 256,
    threshold: float = 0.5,
    return_predictions: bool = False,
    ranking: str = "signed",
    return_counts: bool = False,
):
    """Dice of every image under every attack level, batched on the graph.

    Args:
        model: Keras segmentation model with sigmoid output.
        images, masks, grads: ``(M, H, W, C)`` clean images, true masks and input gradients.
        n_pixels: ``(L,)`` pixels overwritten at each level.
        values: ``(L,)`` one value per level, or ``(L, K)`` one value per overwritten pixel
            (random attacks), with ``K >= max(n_pixels)``.
        batch_size: (image, level) pairs per model call (default 256).
        threshold: probability threshold of the predicted mask (default 0.5).
        return_predictions: also return the ``(M, L, H, W, C)`` predicted probabilities
            (for figures; memory grows with M * L).
        ranking: ``"signed"`` (default) or ``"magnitude"``, see :func:`top_gradient_attack`.
        return_counts: also return ``(M, L, 2)`` counts ``[|T & P|, |T| + |P|]`` of every
            image and level, from which the Dice pooled over images is
            ``2 sum(counts[..., 0]) / sum(counts[..., 1])``.

    Returns:
        ``(M, L)`` Dice scores (empty truth and empty prediction score 1), then the
        predictions and the counts if asked for, in that order.
    """
    import tensorflow as tf

    check_ranking(ranking)
    images = np.asarray(images, np.float32)
    masks = np.asarray(masks, np.float32)
    grads = np.asarray(grads, np.float32)
    if not images.shape == masks.shape == grads.shape or images.ndim != 4:
        raise ValueError(
            f"images, masks and grads must share one (M, H, W, C) shape; received "
            f"{images.shape}, {masks.shape}, {grads.shape}"
        )
    n_pixels = np.asarray(n_pixels, np.int32).reshape(-1)
    k = int(n_pixels.max()) if n_pixels.size else 0
    values = np.asarray(values, np.float32)
    if values.ndim == 1:
        values = np.repeat(values[:, None], k, axis=1)
    if values.shape[0] != n_pixels.size or values.shape[1] < k:
        raise ValueError(
            f"values must have shape (L,) or (L, K>=max(n_pixels)) with L = {n_pixels.size}; received {values.shape}"
        )
    if n_pixels.min(initial=0) < 0 or k > int(np.prod(images.shape[1:])):
        raise ValueError(
            f"n_pixels must be in [0, pixels per image]; received {n_pixels.min()}..{k}"
        )
    values = values[:, :k]
    m, levels = len(images), n_pixels.size

    t_images, t_masks, t_grads = (tf.constant(a) for a in (images, masks, grads))
    t_n, t_values = tf.constant(n_pixels), tf.constant(values)

    @tf.function(reduce_retracing=True)
    def run(image_idx, level_idx):
        x = top_gradient_attack(
            tf.gather(t_images, image_idx),
            tf.gather(t_grads, image_idx),
            tf.gather(t_n, level_idx),
            tf.gather(t_values, level_idx),
            ranking,
        )
        prob = tf.cast(model(x, training=False), tf.float32)
        pred = tf.cast(prob > threshold, tf.float32)
        truth = tf.gather(t_masks, image_idx)
        inter = tf.reduce_sum(pred * truth, axis=(1, 2, 3))
        total = tf.reduce_sum(pred, axis=(1, 2, 3)) + tf.reduce_sum(truth, axis=(1, 2, 3))
        dice = tf.where(total > 0, 2.0 * inter / tf.maximum(total, 1.0), 1.0)
        return dice, prob, tf.stack([inter, total], axis=-1)

    pairs_img = np.repeat(np.arange(m, dtype=np.int32), levels)
    pairs_lvl = np.tile(np.arange(levels, dtype=np.int32), m)
    dice, probs, counts = [], [], []
    for start in range(0, m * levels, batch_size):
        d, p, c = run(
            tf.constant(pairs_img[start : start + batch_size]),
            tf.constant(pairs_lvl[start : start + batch_size]),
        )
        dice.append(d.numpy())
        counts.append(c.numpy())
        if return_predictions:
            probs.append(p.numpy())
    out = [np.concatenate(dice).reshape(m, levels).astype(np.float64)]
    if return_predictions:
        out.append(np.concatenate(probs).reshape((m, levels, *images.shape[1:])))
    if return_counts:
        out.append(np.concatenate(counts).reshape(m, levels, 2).astype(np.float64))
    return out[0] if len(out) == 1 else tuple(out)


def random_values(
    n_levels: int, repetitions: int, k: int, seed: int, low: float = 0.0, high: float = 1.0
):
    """``(n_levels * repetitions, k)`` uniform values in [low, high), seeded; level-major order."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n_levels * repetitions, k)).astype(np.float32)

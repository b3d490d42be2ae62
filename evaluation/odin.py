"""ODIN: temperature scaling and input perturbation for OOD detection (Liang et al., ICLR 2018).

Formula:
    S_i(x; T) = exp(f_i(x) / T) / sum_j exp(f_j(x) / T)
    x~ = x - eps * sign(-grad_x log S_yhat(x; T)),   yhat = argmax_i f_i(x)
    score(x) = max_i S_i(x~; T)          (higher = more in-distribution)

``f`` are the logits (``architectures.vgg.logits_model``). Images enter the model in [0, 255],
so ``eps`` is given in units of the [0, 1] intensity range (as in ODIN's grid) and multiplied by
``pixel_range`` (255). Narayanaswamy et al. 2021 tune T and eps on one OOD set and apply them
unchanged to the others; :func:`tune_odin` does that, minimising FPR at 95 % TPR.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from evaluation.ood import fpr_at_tpr

# Liang et al. 2018, Sec. 4 ("Choosing parameters"): T in {1, 2, 5, 10, 20, 50, 100, 200, 500,
# 1000} and 21 evenly spaced eps in [0, 0.004]
TEMPERATURES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
EPSILONS = tuple(round(0.004 * i / 20, 6) for i in range(21))


def _batches(images, batch_size):
    for i in range(0, len(images), batch_size):
        yield tf.convert_to_tensor(np.asarray(images[i : i + batch_size], np.float32))


def gradient_signs(logit_model, images, temperature: float, batch_size: int = 64) -> np.ndarray:
    """sign(grad_x (-log S_yhat(x; T))) for every image, int8 like ``images``."""
    out = []
    for x in _batches(images, batch_size):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = tf.cast(logit_model(x, training=False), tf.float32) / temperature
            nll = -tf.reduce_max(tf.nn.log_softmax(z, axis=-1), axis=-1)  # -log S_yhat
        out.append(np.sign(tape.gradient(nll, x).numpy()).astype(np.int8))
    return np.concatenate(out) if out else np.zeros((0, *np.shape(images)[1:]), np.int8)


def max_softmax(logit_model, images, temperature: float = 1.0, batch_size: int = 64) -> np.ndarray:
    out = []
    for x in _batches(images, batch_size):
        z = tf.cast(logit_model(x, training=False), tf.float32) / temperature
        out.append(tf.reduce_max(tf.nn.softmax(z, axis=-1), axis=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def odin_scores(
    logit_model,
    images,
    temperature: float,
    epsilon: float,
    *,
    pixel_range: float = 255.0,
    batch_size: int = 64,
    signs=None,
):
    """ODIN score of every image; ``signs`` (from :func:`gradient_signs` at this T) may be reused."""
    images = np.asarray(images, np.float32)
    if epsilon == 0:
        return max_softmax(logit_model, images, temperature, batch_size)
    if signs is None:
        signs = gradient_signs(logit_model, images, temperature, batch_size)
    return max_softmax(logit_model, images - epsilon * pixel_range * signs, temperature, batch_size)


def tune_odin(
    logit_model,
    in_images,
    out_images,
    temperatures=TEMPERATURES,
    epsilons=EPSILONS,
    *,
    batch_size: int = 64,
    pixel_range: float = 255.0,
    verbose: bool = True,
):
    """Grid search of (T, eps) minimising FPR at 95 % TPR of ``out_images`` against ``in_images``.

    Returns ``(temperature, epsilon, table)`` where ``table`` lists every grid point's FPR (%).
    Gradient signs are computed once per temperature and reused for every eps.
    """
    table, best = [], None
    for t in temperatures:
        s_in = gradient_signs(logit_model, in_images, t, batch_size) if any(epsilons) else None
        s_out = gradient_signs(logit_model, out_images, t, batch_size) if any(epsilons) else None
        for e in epsilons:
            a = odin_scores(
                logit_model,
                in_images,
                t,
                e,
                pixel_range=pixel_range,
                batch_size=batch_size,
                signs=s_in,
            )
            b = odin_scores(
                logit_model,
                out_images,
                t,
                e,
                pixel_range=pixel_range,
                batch_size=batch_size,
                signs=s_out,
            )
            fpr = 100 * fpr_at_tpr(a, b)
            table.append({"temperature": t, "epsilon": e, "fpr_at_95_tpr": fpr})
            if verbose:
                print(f"  ODIN T={t:g} eps={e:g}: FPR@95TPR {fpr:.2f} %", flush=True)
            if best is None or fpr < best[2] - 1e-9:
                best = (t, e, fpr)
    return best[0], best[1], table

"""Every segmentation loss of keras_losses on 2 mirrored replicas against one device.

``python tests/training/loss_replica_worker.py RESULT.json``

Two logical CPU devices, a global batch of 4 images split 2 + 2. For each case, the loss and
its gradient with respect to the two variables of a tiny per-pixel "network" (p = sigmoid or
softmax of x * w + b) are computed on one device for the whole batch and on the replicas,
each replica's value as its loss returns it (which carries Keras's or the loss's own 1/R),
then summed over the replicas. Writes {case: {"single", "replicas", "grad_diff", "grad_max"}}
or {case: {"error": message}}. The logical devices must be configured before TensorFlow
starts, hence a subprocess.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 4
HALF = BATCH // 2  # images per replica


def cases():
    import keras_losses as kl

    # name: (factory, channels, labels carry signed distance maps)
    return {
        "Dice": (lambda: kl.DiceLoss(), 3, False),
        "Dice per image": (lambda: kl.DiceLoss(per_image=True), 3, False),
        "SquaredDice": (lambda: kl.SquaredDiceLoss(), 1, False),
        "Tversky": (lambda: kl.TverskyLoss(0.3, 0.7), 3, False),
        "FocalTversky": (lambda: kl.FocalTverskyLoss(), 3, False),
        "Jaccard": (lambda: kl.JaccardLoss(), 3, False),
        "GeneralizedDice": (lambda: kl.GeneralizedDiceLoss(), 3, False),
        "Effectiveness": (lambda: kl.EffectivenessLoss(2.0), 1, False),
        "GLF": (lambda: kl.GeneralizedLoss(), 1, False),
        "GLF per image": (lambda: kl.GeneralizedLoss(per_image=True), 1, False),
        "ExpLog": (lambda: kl.ExpLogLoss(), 3, False),
        "Combo": (lambda: kl.ComboLoss(), 1, False),
        "DiceCE": (lambda: kl.DiceCELoss(), 3, False),
        "DiceFocal": (lambda: kl.DiceFocalLoss(), 1, False),
        "SymmetricFocal": (lambda: kl.SymmetricFocalLoss(), 3, False),
        "UnifiedFocal": (lambda: kl.UnifiedFocalLoss(), 3, False),
        "AsymmetricFocalTversky": (lambda: kl.AsymmetricFocalTverskyLoss(), 1, False),
        "BCE": (lambda: kl.BinaryCrossentropyLoss(pos_weight=2.0), 1, False),
        "CE class weights": (lambda: kl.CategoricalCrossentropyLoss([0.5, 1.0, 2.0]), 3, False),
        "BinaryFocal": (lambda: kl.BinaryFocalLoss(), 1, False),
        "CategoricalFocal": (lambda: kl.CategoricalFocalLoss(), 3, False),
        "TopK per image": (lambda: kl.TopKCrossEntropyLoss(per_image=True), 3, False),
        "TopK": (lambda: kl.TopKCrossEntropyLoss(), 3, False),
        "SensitivitySpecificity": (lambda: kl.SensitivitySpecificityLoss(), 3, False),
        "SensitivitySpecificity per image": (
            lambda: kl.SensitivitySpecificityLoss(per_image=True),
            3,
            False,
        ),
        "AsymmetricSimilarity": (lambda: kl.AsymmetricSimilarityLoss(), 1, False),
        "LovaszSoftmax per image": (lambda: kl.LovaszSoftmaxLoss(per_image=True), 3, False),
        "LovaszSoftmax": (lambda: kl.LovaszSoftmaxLoss(), 3, False),
        "LovaszHinge": (lambda: kl.LovaszHingeLoss(), 1, False),
        "LovaszHinge whole batch": (lambda: kl.LovaszHingeLoss(per_image=False), 1, False),
        "Boundary": (lambda: kl.BoundaryLoss(), 3, True),
        "DiceBoundary": (lambda: kl.DiceBoundaryLoss(alpha=0.5), 3, True),
        "OneSidedHausdorffDT": (lambda: kl.OneSidedHausdorffDTLoss(), 3, True),
        "DiceTopK": (lambda: kl.DiceTopKLoss(), 3, False),
        "Combined": (
            lambda: kl.CombinedLoss([kl.DiceLoss(), kl.BinaryCrossentropyLoss()]),
            1,
            False,
        ),
    }


def main(result):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np

    from keras_losses.distance_maps import signed_distance_maps

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 8, 8, 1)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for name, (make, channels, maps) in cases().items():
        if channels == 1:
            y = (x > 0.6).astype("float32")
        else:
            y = np.eye(3, dtype="float32")[np.digitize(x[..., 0], [0.4, 0.7])]
        if maps:
            phi = np.stack([signed_distance_maps(image, channels) for image in y])
            y = np.concatenate([y, phi.astype("float32")], -1)
        activation = tf.sigmoid if channels == 1 else tf.nn.softmax
        w0 = np.linspace(-2, 2, channels).astype("float32").reshape(1, channels) + 3.0
        b0 = np.linspace(-1, 1, channels).astype("float32") - 1.5

        def step(xb, yb, loss, w, b, activation=activation):
            with tf.GradientTape() as tape:
                value = loss(yb, activation(xb * w + b))
            return value, tape.gradient(value, [w, b])

        try:
            w, b = tf.Variable(w0), tf.Variable(b0)
            single, grads = step(tf.constant(x), tf.constant(y), make(), w, b)
            with strategy.scope():
                loss = make()
                w2, b2 = tf.Variable(w0), tf.Variable(b0)

            def part(ctx, y=y):
                i = ctx.replica_id_in_sync_group
                return x[i * HALF : (i + 1) * HALF], y[i * HALF : (i + 1) * HALF]

            data = strategy.experimental_distribute_values_from_function(part)

            @tf.function
            def run(d, loss=loss, w2=w2, b2=b2):
                v, g = strategy.run(lambda xy: step(xy[0], xy[1], loss, w2, b2), args=(d,))
                return strategy.reduce("SUM", v, None), [strategy.reduce("SUM", t, None) for t in g]

            replicas, grads2 = run(data)
            out[name] = {
                "single": float(single),
                "replicas": float(replicas),
                "grad_diff": max(
                    float(np.max(np.abs(np.asarray(a) - np.asarray(c))))
                    for a, c in zip(grads, grads2, strict=True)
                ),
                "grad_max": max(float(np.max(np.abs(np.asarray(a)))) for a in grads),
            }
        except ValueError as err:
            out[name] = {"error": str(err)}
    Path(result).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1])

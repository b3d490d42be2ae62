"""A tiny, deterministic training run in its own process, for the distribution tests.

``python tests/training/worker.py RESULT.json --strategy mirrored --devices 2 ...``

Trains a two-layer conv net with the GLF (``keras_losses.GeneralizedLoss``) and a
coefficient-adapting callback (the package's ``DeterministicGLFCallback`` with ``--adaptive``,
else a stand-in rule whose state the resume tests check) on fixed synthetic data (no shuffling, fixed initial
weights), through ``training.fit.fit_model``, and writes what the tests compare: the loss of
every batch, the GLF coefficients after every batch, the final weights and optimizer
iterations. The logical CPU devices must be configured before TensorFlow starts, which is
why this runs as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N, SIZE, BATCH = 32, 16, 8  # 4 global batches of 8 images, 16x16


def make_data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((N, SIZE, SIZE, 1), dtype=np.float32)
    # Foreground = bright pixels of a smoothed image: imbalanced masks (~20 % positives).
    smooth = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, -1, 1)) / 4
    y = (smooth > np.quantile(smooth, 0.8)).astype(np.float32)
    return x, y


def initial_weights(model):
    import numpy as np

    rng = np.random.default_rng(1)
    return [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("result")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--devices", type=int, default=1, help="logical CPU devices")
    p.add_argument("--loop", default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument(
        "--loss",
        default="per-image",
        choices=("per-image", "pooled", "pooled-global"),
        help="GLF per image (exact under replicas), pooled over each replica's batch (the "
        "default GeneralizedLoss), or pooled over the global batch by an all-reduce of the counts",
    )
    p.add_argument("--kill-at", default=None, help="EPOCH,BATCH (0-based): SIGKILL itself there")
    p.add_argument(
        "--nan-at", default=None, help="EPOCH,BATCH (0-based): the weights become NaN after it"
    )
    p.add_argument(
        "--compare-default",
        action="store_true",
        help="also train under the default strategy in this process",
    )
    p.add_argument(
        "--reference", default=None, help="also run an uninterrupted run into this folder"
    )
    p.add_argument(
        "--adaptive",
        default=None,
        metavar="JSON",
        help="adapt with keras_losses.adaptive.DeterministicGLFCallback(loss, **JSON), e.g. '{}'",
    )
    p.add_argument("--single", default=None, help="also train on one device into this folder")
    args = p.parse_args(argv)

    import tensorflow as tf

    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
        )

    from training.strategy import make_strategy

    strategy = make_strategy(args.strategy)  # first: multi-worker must come before other TF ops
    results = {"strategy": run(args, strategy, args.out, args.loop)}
    if args.compare_default:
        results["default"] = run(args, tf.distribute.get_strategy(), args.out + "-default", "fit")
        results["custom_default"] = run(
            args, tf.distribute.get_strategy(), args.out + "-custom-default", "custom"
        )
        results["custom_strategy"] = run(args, strategy, args.out + "-custom", "custom")
    if args.single:
        results["single"] = run(
            args,
            tf.distribute.get_strategy(),
            args.single,
            "fit",
            resume=False,
            kill_at=None,
            chief=True,
        )
    if args.reference:
        results["reference"] = run(
            args, strategy, args.reference, args.loop, resume=False, kill_at=None
        )
    Path(args.result).write_text(json.dumps(results))


class AdaptCoefficients:
    """Stand-in for the adaptive-GLF rule: after every batch, scale alpha_p and alpha_n by the
    global-batch ratios TP/FP and TP/FN (clipped), counting its updates as callback state."""

    def __new__(cls, loss, update=True):
        import keras

        class _Adapt(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.loss, self.updates, self.trace = loss, 0, []

            def on_train_batch_end(self, batch, logs=None):
                import numpy as np

                if not np.isfinite(logs["loss"]):
                    return  # training stops here (fit_model's NaN guard)
                tp, fp, fn = (float(v) for v in np.asarray(self.loss.state.counts.numpy()))
                c = self.loss.coefficients
                if update:
                    self.loss.set_coefficients(
                        alpha_p=float(
                            np.clip(c["alpha_p"] * np.clip((tp + 1) / (fp + 1), 0.8, 1.25), 0.1, 10)
                        ),
                        alpha_n=float(
                            np.clip(c["alpha_n"] * np.clip((tp + 1) / (fn + 1), 0.8, 1.25), 0.1, 10)
                        ),
                    )
                self.updates += 1
                self.trace.append(
                    {**self.loss.coefficients, "loss": float(logs["loss"]), "counts": [tp, fp, fn]}
                )

            def get_state(self):
                return {"updates": self.updates}

            def set_state(self, state):
                self.updates = int(state["updates"])

        return _Adapt()


def make_loss(kind):
    """The GLF under test: "per-image", or pooled over the (global) batch.

    "pooled-global" and "pooled" are the same class since GeneralizedLoss all-reduces its
    counts over the replicas itself; both names stay for the tests that use them.
    """
    from keras_losses import GeneralizedLoss

    return GeneralizedLoss(per_image=kind == "per-image")


def run(args, strategy, out, loop, resume=None, kill_at="", chief=None):
    import keras
    import numpy as np
    import tensorflow as tf

    from training.fit import TrainingDiverged, fit_model
    from training.rundir import RunDir

    x, y = make_data()
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    val = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(BATCH)
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 1)),
                keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(1, 1, activation="sigmoid"),
            ]
        )
        model.set_weights(initial_weights(model))
        # per_image=True: a mean over images, so a global batch split over replicas gives
        # exactly the single-device loss and gradient.
        loss = make_loss(args.loss)
        # loss.state records the batch counts the adapting callbacks read
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=[loss.state])
    adapt = AdaptCoefficients(loss, update=args.adaptive is None)
    callbacks = [adapt]
    rule = None
    if args.adaptive is not None:  # the package's rule adapts; AdaptCoefficients only records
        from keras_losses.adaptive import DeterministicGLFCallback

        rule = DeterministicGLFCallback(loss, **json.loads(args.adaptive))
        callbacks.insert(0, rule)
    resume = args.resume if resume is None else resume
    kill_at = args.kill_at if kill_at == "" else kill_at
    if kill_at:
        kill_epoch, kill_batch = (int(v) for v in kill_at.split(","))

        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if (self.epoch, batch) == (kill_epoch, kill_batch):
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(Kill())
    if args.nan_at:
        nan_epoch, nan_batch = (int(v) for v in args.nan_at.split(","))

        class Poison(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if (self.epoch, batch) == (nan_epoch, nan_batch):
                    kernel = self.model.layers[
                        -1
                    ].kernel  # before the sigmoid: NaN reaches the loss
                    kernel.assign(np.full(kernel.shape, np.nan, np.float32))

        callbacks.append(Poison())
    run_dir = RunDir(out, resume=resume, chief=chief)
    error = None
    try:
        history = fit_model(
            model,
            train,
            val,
            run_dir=run_dir,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=0,
            loop=loop,
            tensorboard=args.tensorboard,
        )
        history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    except TrainingDiverged as err:
        error, history = str(err), {}
    if error is None:
        run_dir.mark_complete(epochs=args.epochs)
    return {
        "trace": adapt.trace,
        "updates": adapt.updates,
        "coefficients": loss.coefficients,
        "weights": [w.tolist() for w in model.get_weights()],
        "iterations": int(model.optimizer.iterations.numpy()),
        "history": history,
        "error": error,
        "chief": run_dir.chief,
        # what the rule saw: counts of the batch just trained and its number of images
        "rule": [[float(r[k]) for k in ("tp", "fp", "fn", "images")] for r in rule.rows]
        if rule is not None
        else [],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()

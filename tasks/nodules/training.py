"""Train LeNet-5 with cross-entropy, or a siamese encoder with the contrastive loss and a head."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from tasks.nodules.config import SELECTIONS, NodulesConfig, log
from tasks.nodules.evaluation import predict_report
from tasks.nodules.sets import training_data
from training.config import add_arguments, from_args


def _compile_classifier(model, lr):
    """Adam and the cross-entropy of the label's class probability. With the sigmoid head the
    model returns (1 - f(X), f(X)), so this is Eq. (1) of Baltatzis et al. 2021,
    -y log f(X) - (1 - y) log(1 - f(X)); with the softmax head it is the two-class CE."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def _feature_dataset(features, labels, batch_size: int, seed: int | None = None):
    """(features, label) batches; shuffled with ``seed`` like the image batches."""
    import numpy as np
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(features, np.float32), np.asarray(labels, np.int32)))
    if seed is not None:
        ds = ds.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def check_data(cfg: NodulesConfig) -> int:
    """Generate the training set, check it and print its whole-image intensity facts."""
    from data.nodules import check_arrays
    from data.validate import DataError

    x_tr, y_tr, x_va, y_va = training_data(dataclasses.asdict(cfg))
    try:
        check_arrays(x_tr, y_tr, "training set")
        check_arrays(x_va, y_va, "validation set")
    except DataError as err:
        print(err, file=sys.stderr)
        return 1
    source = f"real nodules ({cfg.scenario})" if cfg.data_dir else f"D({cfg.train_dist[0]}, {cfg.train_dist[1]})"
    log(
        f"{source}: {len(x_tr)} train + {len(x_va)} validation; "
        f"whole-image mean malignant {x_tr[y_tr == 1].mean():.1f}, benign {x_tr[y_tr == 0].mean():.1f}"
    )
    return 0


def run_training(cfg: NodulesConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto") -> Path:
    """Train one model (mode (a), or modes (b) then (c)); returns the run directory.

    Layout: config.json, best.keras / last.keras (the classifier g(f(x))), history.csv; for
    the contrastive loss instead ``siamese/`` (the encoder's run, best.keras = f) and
    ``head/`` (the head's run on f's outputs, best.keras = g), and best.keras / last.keras
    = g(f(x)) with the best / last head.
    """
    return train_model(cfg, out, resume=resume, overwrite=overwrite, strategy=strategy, verbose=verbose)[0]


def train_model(cfg: NodulesConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto", fit=None):
    """:func:`run_training`, returning ``(run directory, the selected classifier)``.

    ``fit``: the function that trains each stage, with :func:`training.fit.fit_model`'s
    signature (the default); :func:`training_fit_light` skips the per-epoch files.
    """
    import keras

    import keras_losses
    from architectures.lenet import HEAD_NAME, build_classifier, build_encoder, build_head
    from data.nodules import make_dataset
    from tasks.common import seed_everything
    from training import io
    from training.fit import fit_model as default_fit
    from training.rundir import COMPLETE_MARKER, RunDir
    from training.strategy import make_strategy

    fit_model = fit or default_fit
    run = RunDir(out, resume=resume, overwrite=overwrite)
    cfg = run.resume_config(cfg)  # --resume: the saved settings; a changed flag is an error
    conf = dataclasses.asdict(cfg)
    seed_everything(cfg.seed)
    run.write_config({"task": "nodules", **conf})
    x_tr, y_tr, x_va, y_va = training_data(conf)
    train_ds = make_dataset(x_tr, y_tr, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_ds = make_dataset(x_va, y_va, cfg.batch_size, shuffle=False)
    shape = (cfg.image_size, cfg.image_size, 1)
    tb = _tensorboard_available()
    dist = f"real nodules ({cfg.scenario})" if cfg.data_dir else f"D({cfg.train_dist[0]}, {cfg.train_dist[1]})"
    start = time.time()
    with make_strategy(strategy).scope():
        if cfg.loss == "ce":
            log(f"(a) LeNet-5 f+g with cross-entropy on {dist}: {len(x_tr)} train, {len(x_va)} val, {cfg.epochs} epochs")
            model = _compile_classifier(
                build_classifier(input_shape=shape, variant=cfg.encoder, head_init=cfg.head_init, head_output=cfg.head_output),
                cfg.lr,
            )
            fit_model(model, train_ds, val_ds, run_dir=run, epochs=cfg.epochs, tensorboard=tb, verbose=verbose)
        else:
            # RunDir clears the COMPLETED marker of the folder it opens: look first.
            siamese_done = resume and (run / "siamese" / COMPLETE_MARKER).exists()
            siamese = RunDir(run / "siamese", resume=resume)
            if siamese_done:
                siamese.mark_complete(stage="siamese encoder")
                log(f"(b) siamese encoder already trained in {siamese.path}")
            else:
                log(f"(b) siamese LeNet-5 f with the contrastive loss (margin {cfg.margin}) on {dist}, {cfg.epochs} epochs")
                siamese.write_config({"task": "nodules", "stage": "siamese encoder", **conf})
                encoder = build_encoder(shape, variant=cfg.encoder, embedding_dim=cfg.embedding_dim)
                encoder.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=keras_losses.ContrastiveLoss(cfg.margin))
                fit_model(encoder, train_ds, val_ds, run_dir=siamese, epochs=cfg.epochs, tensorboard=tb, verbose=verbose)
                siamese.mark_complete(stage="siamese encoder")
            encoder = keras.saving.load_model(siamese / f"{cfg.select}.keras", compile=False)
            encoder.trainable = False
            head_epochs = cfg.head_epochs or cfg.epochs
            log(f"(c) classifier head g on the frozen encoder, cross-entropy, {head_epochs} epochs")
            # f is frozen and has no dropout or batch norm, so training g on f's outputs is
            # training g(f(x)) with f frozen, without running f every epoch.
            head_done = resume and (run / "head" / COMPLETE_MARKER).exists()
            head_run = RunDir(run / "head", resume=resume)
            if head_done:
                head_run.mark_complete(stage="classifier head")
            else:
                head_run.write_config({"task": "nodules", "stage": "classifier head", **conf})
                head = _compile_classifier(build_head(encoder.output.shape[-1], init=cfg.head_init, output=cfg.head_output), cfg.head_lr)
                emb_tr = encoder.predict(x_tr[..., None], batch_size=256, verbose=0)
                emb_va = encoder.predict(x_va[..., None], batch_size=256, verbose=0)
                fit_model(
                    head,
                    _feature_dataset(emb_tr, y_tr, cfg.batch_size, cfg.seed),
                    _feature_dataset(emb_va, y_va, cfg.batch_size),
                    run_dir=head_run, epochs=head_epochs, tensorboard=tb, verbose=verbose,
                )
                head_run.mark_complete(stage="classifier head")
            for name in SELECTIONS:  # the classifier g(f(x)) of each saved head
                # Assembled from trained parts and never trained itself: saved uncompiled, since a
                # compiled model whose optimizer never ran warns "Skipping variable loading for
                # optimizer" at every load_model.
                model = build_classifier(encoder, train_encoder=False, head_output=cfg.head_output)
                model.get_layer(HEAD_NAME).set_weights(keras.saving.load_model(head_run / f"{name}.keras", compile=False).get_weights())
                io.save_model(model, run / f"{name}.keras")
    model = keras.saving.load_model(run / f"{cfg.select}.keras", compile=False)
    val = predict_report(model, x_va, y_va)
    run.mark_complete(seconds=round(time.time() - start, 1), val_acc=val["acc"], select=cfg.select)
    log(f"done in {time.time() - start:.0f} s; validation accuracy {val['acc']:.3f} ({cfg.select}.keras) -> {run.path}")
    return run.path, model


def training_fit_light(model, train_data, validation_data, *, run_dir, epochs, verbose="auto", **_):
    """``model.fit`` keeping the epoch of lowest validation loss in memory, and writing
    ``best.keras`` and ``last.keras`` once at the end: the same models as
    :func:`training.fit.fit_model` (same data, seeds and selection) without its per-epoch
    checkpoints, backups and history, which cost most of a LeNet-5 epoch on the CPU. A run
    trained with it cannot ``--resume`` in the middle of a stage."""
    import math

    import keras

    from training import io

    class KeepBest(keras.callbacks.Callback):
        best, weights = math.inf, None

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get("val_loss", math.nan))
            if math.isfinite(value) and value < self.best:
                self.best, self.weights = value, self.model.get_weights()

    from training.resume import continue_data

    keep = KeepBest()
    stream, steps = continue_data(train_data, None, 0)  # the data stream fit_model trains on
    history = model.fit(
        stream, validation_data=validation_data, epochs=epochs, steps_per_epoch=steps, callbacks=[keep],
        verbose=verbose, shuffle=False,
    )  # fmt: skip
    if keep.weights is None:
        raise RuntimeError(f"{run_dir}: no epoch had a finite validation loss; nothing to save")
    io.save_model(model, run_dir / "last.keras")
    last = model.get_weights()
    model.set_weights(keep.weights)
    io.save_model(model, run_dir / "best.keras")
    model.set_weights(last)
    return history


def add_train_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    add_arguments(parser, NodulesConfig)


def train(args) -> Path | None:
    from tasks.common import default_out

    cfg = from_args(NodulesConfig, args)
    if getattr(args, "check_data", False):
        sys.exit(check_data(cfg))
    out = args.out or default_out("nodules", cfg.loss)
    return run_training(cfg, out, resume=args.resume, overwrite=args.overwrite, strategy=args.strategy)

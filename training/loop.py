"""A custom training loop for tf.distribute, used where ``model.fit`` cannot go.

Keras 3 ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
``_maybe_symbolic_build`` reduces a per-replica batch). This loop trains the same model
the same way without that step:

* data: ``strategy.distribute_datasets_from_function``. Each input pipeline (one per
  worker) keeps only the full global batches, unbatches them, takes every
  ``num_input_pipelines``-th example starting at its ``input_pipeline_id`` (explicit
  sharding) and rebatches at the per-replica size ``global / num_replicas``. So at every
  step the replicas together hold exactly the global batch that one process would have
  used; a partial last batch is skipped (every worker must run the same number of steps).
* step: ``strategy.run(model.train_step)``. Keras's ``train_step`` already divides the
  per-replica mean loss by the number of replicas (``scale_loss_for_distribution``), which
  is ``tf.nn.compute_average_loss`` with the global batch size for per-example losses, and
  ``optimizer.apply_gradients`` all-reduces the gradients. A model that overrides
  ``train_step`` (e.g. an exploratory-GLF wrapper) keeps its override. Each replica's
  metric results are averaged over the replicas, as ``model.fit`` does.
* callbacks: the same ``keras.callbacks.CallbackList`` protocol as ``model.fit``
  (``on_train_batch_end`` with host-float logs after every step, ``on_epoch_end`` with
  ``val_`` metrics, ``model.stop_training``), so the run directory looks the same.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.utils.python_utils import pythonify_logs


def _batch_size(batch) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(batch)[0])[0]


def distribute(
    strategy, data, global_batch_size: int | None, steps: int | None, what: str, skip_epochs: int = 0
):
    """``(distributed dataset that repeats, steps per epoch)`` for ``data``.

    ``data`` is a dataset of global batches, or ``dataset_fn(input_context)`` returning a
    dataset of per-replica batches (then ``steps`` is required). The first ``skip_epochs``
    epochs of the stream are skipped (a resumed run continues where its backup left it).
    """
    if not isinstance(data, tf.data.Dataset):
        if not callable(data):
            raise TypeError(
                f"{what} data must be a tf.data.Dataset or dataset_fn(input_context); received {type(data).__name__}"
            )
        if steps is None:
            raise ValueError(
                f"{what}: a dataset function needs its number of steps per epoch (steps_per_epoch/validation_steps)"
            )
        def repeated(ctx):
            per_step = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return data(ctx).repeat().skip(int(steps) * skip_epochs * per_step)

        return strategy.distribute_datasets_from_function(repeated), int(steps)

    if global_batch_size is None:
        for batch in data.take(1):
            global_batch_size = int(_batch_size(batch))
    if not global_batch_size:
        raise ValueError(f"The {what} dataset is empty")
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size {global_batch_size} of the {what} data is not divisible by the "
            f"{replicas} replicas; choose a batch size that is a multiple of {replicas}"
        )
    full = data.filter(lambda *batch: _batch_size(batch) == global_batch_size)
    if steps is None:
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                f"The {what} dataset repeats forever: give its number of steps per epoch"
            )
        steps = int(full.reduce(0, lambda n, *_: n + 1))  # one pass over the data
        if steps == 0:
            raise ValueError(
                f"The {what} dataset has no full batch of {global_batch_size} examples; "
                "multi-worker training skips partial batches"
            )

    def dataset_fn(ctx: tf.distribute.InputContext):
        per_replica = ctx.get_per_replica_batch_size(global_batch_size)
        shard = full.unbatch().shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        stream = shard.batch(per_replica, drop_remainder=True).repeat()
        # each step takes one batch per replica this pipeline feeds
        per_step = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        return stream.skip(steps * skip_epochs * per_step).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn), int(steps)


def _make_step(strategy, step_fn):
    def replica_fn(data):
        outputs = step_fn(data)
        # The reduction model.fit applies, the mean over replicas, done as a collective in
        # the replica context so it also spans workers (Keras's own cross-replica reduction
        # fails on scalars under MultiWorkerMirroredStrategy).
        context = tf.distribute.get_replica_context()

        def mean(value):
            value = tf.convert_to_tensor(value)
            if not value.dtype.is_floating:
                value = tf.cast(value, tf.float32)
            # A metric whose result() reads a variable gives a tensor without a device, which
            # the collective cannot place ("destinations can not be empty"); identity puts it
            # on this replica's device.
            return context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(value))

        return tf.nest.map_structure(mean, outputs)

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def run(iterator):
        outputs = strategy.run(replica_fn, args=(next(iterator),))
        return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], outputs)

    return run


def _build(model, strategy, data):
    """Create every variable (model, compiled metrics and loss, optimizer) before the first
    step, in the cross-replica context, from one local batch's shapes."""
    if isinstance(data, tf.data.Dataset):
        batch = next(iter(data.take(1)))
    else:
        batch = next(iter(data(tf.distribute.InputContext()).take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


def train_loop(
    model,
    train_data,
    validation_data,
    *,
    strategy,
    epochs: int,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    callbacks=(),
    verbose="auto",
    global_batch_size: int | None = None,
):
    """Train like ``model.fit`` under any strategy; returns the ``History`` callback."""
    train_dist, train_steps = distribute(
        strategy, train_data, global_batch_size, steps_per_epoch, "training", initial_epoch
    )
    val_dist = val_steps = None
    if validation_data is not None:
        val_dist, val_steps = distribute(
            strategy, validation_data, None, validation_steps, "validation"
        )
    _build(model, strategy, train_data)
    train_step = _make_step(strategy, model.train_step)
    test_step = _make_step(strategy, model.test_step)

    verbose = 1 if verbose == "auto" else int(verbose)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=train_steps,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    train_iterator = iter(train_dist)
    val_iterator = iter(val_dist) if val_dist is not None else None
    epoch_logs: dict = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs: dict = {}
        for step in range(train_steps):
            callback_list.on_train_batch_begin(step)
            logs = pythonify_logs(train_step(train_iterator))
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if val_iterator is not None:
            model.reset_metrics()
            callback_list.on_test_begin()
            val_logs: dict = {}
            for step in range(val_steps):
                callback_list.on_test_batch_begin(step)
                val_logs = pythonify_logs(test_step(val_iterator))
                callback_list.on_test_batch_end(step, val_logs)
            callback_list.on_test_end(val_logs)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(epoch_logs)
    return model.history

"""What a resumed run needs besides the weights to continue exactly where its backup left it:
the state of the random seed generators (dropout masks) and the position in the data stream.

:class:`training.fit.RunBackup` saves :func:`random_state` with every backup and restores it
with :func:`assign_random_state`; :func:`training.fit.fit_model` trains on
:func:`continue_data`'s stream.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np


def _seed_generators(model) -> dict:
    """Every ``keras.random.SeedGenerator`` of the model's layers (dropout, noise, random
    augmentation layers) and Keras's global one, keyed by layer path. Their states are not
    in ``save_weights``; without them a resumed run draws other dropout masks."""
    from keras.src.backend.common import global_state

    found = {}
    for layer in model._flatten_layers(include_self=True):
        for i, generator in enumerate(getattr(layer, "_seed_generators", []) or []):
            found[f"{layer.path}/{i}"] = generator
    generator = global_state.get_global_attribute("global_seed_generator")
    if generator is not None:
        found["global"] = generator
    return found


def random_state(model) -> dict:
    """The state of every seed generator of ``model`` (see :func:`_seed_generators`)."""
    return {
        key: np.asarray(keras.ops.convert_to_numpy(generator.state.value))
        for key, generator in _seed_generators(model).items()
    }


def assign_random_state(model, values: dict, where) -> None:
    generators = _seed_generators(model)
    for key, value in values.items():
        if key == "global" and key not in generators:
            from keras.src.random.seed_generator import global_seed_generator

            generators[key] = global_seed_generator()
        if key not in generators:
            warnings.warn(
                f"--resume: {where} holds the random state of {key!r}, which this model does not have",
                stacklevel=2,
            )
            continue
        generators[key].state.assign(value)


def continue_data(train_data, steps_per_epoch: int | None, initial_epoch: int):
    """``(stream, steps per epoch)``: the training data as ONE stream over all epochs, with
    the batches of the ``initial_epoch`` finished epochs skipped.

    A finite dataset is repeated, so each epoch is the next pass over it, and a pipeline that
    reshuffles per pass (``shuffle(..., reshuffle_each_iteration=True)``) reshuffles every
    epoch. A resumed run rebuilds the pipeline in a new process and skips the batches of the
    finished epochs (the data pipeline's work, no training), so the epoch after the backup
    sees the batches the uninterrupted run saw; without the skip it would see the first
    epoch's order again. Anything that is not a ``tf.data.Dataset`` (NumPy arrays) is
    returned as it is.
    """
    import tensorflow as tf

    if not isinstance(train_data, tf.data.Dataset):
        return train_data, steps_per_epoch
    cardinality = int(train_data.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        if steps_per_epoch is None:
            raise ValueError("The training dataset repeats forever: give steps_per_epoch")
        stream = train_data
    else:
        if cardinality == tf.data.UNKNOWN_CARDINALITY:
            # one pass to count the batches (a filter or a generator hides the count)
            cardinality = int(train_data.reduce(np.int64(0), lambda n, *_: n + 1))
        if cardinality == 0:
            raise ValueError("The training dataset is empty: no batch to train on")
        steps_per_epoch = steps_per_epoch or cardinality
        stream = train_data.repeat()
    return stream.skip(initial_epoch * steps_per_epoch), steps_per_epoch

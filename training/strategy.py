"""tf.distribute strategies for ``--strategy auto|one-device|mirrored|multi-worker``.

How a task uses them (two lines in its ``train()``)::

    strategy = make_strategy(args.strategy)   # first, before any other TensorFlow work
    with strategy.scope():                     # model, loss, optimizer and compile inside
        model = build_model(...)
        model.compile(optimizer=..., loss=..., metrics=...)
    fit_model(model, train_ds, val_ds, run_dir=run_dir, epochs=...)  # finds the strategy

``fit_model`` reads the strategy back from the model (Keras records the strategy a model was
created under), so its call does not change. The datasets stay as they are: each element is
one GLOBAL batch; the strategy splits it into ``global / num_replicas`` per replica.

Only the chief (worker 0, or the task of type "chief") writes the run directory; every
worker computes the same thing.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")

_CACHE: dict[str, object] = {}


def make_strategy(name: str = "auto"):
    """Return a ``tf.distribute.Strategy`` (the same object for the same name in one process).

    ``auto``: MirroredStrategy when several GPUs are visible, else the default strategy.
    ``one-device``: the first GPU, or the CPU. ``mirrored``: all local GPUs (or the logical
    CPU devices, for tests). ``multi-worker``: MultiWorkerMirroredStrategy configured by the
    ``TF_CONFIG`` environment variable; it must be created before any other TensorFlow op
    runs in the process (TensorFlow configures collective ops at start-up), so call this
    first in ``train()``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}; received {name!r}")
    if os.environ.get("TF_CONFIG"):
        _check_tf_config()  # parsed and reported when present; a malformed one is an error
    if name in _CACHE:
        return _CACHE[name]
    import tensorflow as tf

    if name == "multi-worker":
        _check_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        if os.environ.get("TF_CONFIG"):
            import sys

            print(
                f"warning: TF_CONFIG is set ({describe_tf_config()}) but --strategy is {name}: "
                "this process trains on its own; pass --strategy multi-worker to train across "
                "the cluster, or unset TF_CONFIG",
                file=sys.stderr,
                flush=True,
            )
        gpus = tf.config.list_logical_devices("GPU")
        if name == "auto":
            strategy = (
                tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
            )
        elif name == "one-device":
            strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
        elif gpus:
            strategy = tf.distribute.MirroredStrategy()
        else:
            cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=cpus)
    _CACHE[name] = strategy
    return strategy


@contextmanager
def strategy_scope(name: str = "auto"):
    """``with strategy_scope(args.strategy) as strategy:`` build and compile the model inside."""
    strategy = make_strategy(name)
    with strategy.scope():
        yield strategy


def describe_tf_config() -> str:
    """One phrase on what ``TF_CONFIG`` makes this process, e.g. "worker 1 of 2 workers,
    not the chief" (``TF_CONFIG`` must be valid: :func:`_check_tf_config`)."""
    config = json.loads(os.environ["TF_CONFIG"])
    cluster, task = config["cluster"], config["task"]
    sizes = ", ".join(f"{len(v)} {k}{'s' if len(v) != 1 else ''}" for k, v in cluster.items())
    chief = _chief_rule(cluster, task["type"], int(task["index"]))
    return f"{task['type']} {task['index']} of {sizes}, {'the chief' if chief else 'not the chief'}"


_REPORTED = [False]


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "--strategy multi-worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}; '
            "it is not set (see docs/distribute.md)"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task': {{'type', 'index'}}; "
            f"received {text!r} ({err})"
        ) from None
    if not isinstance(workers, dict) or not all(isinstance(v, list) for v in workers.values()):
        raise ValueError(f"TF_CONFIG 'cluster' must map task types to lists of host:port; received {workers!r}")
    if task["type"] not in workers or not 0 <= int(task["index"]) < len(workers[task["type"]]):
        raise ValueError(f"TF_CONFIG task {task} is not in its cluster {workers}")
    if not _REPORTED[0]:
        _REPORTED[0] = True
        print(f"TF_CONFIG: this process is {describe_tf_config()}", flush=True)


def chief_from_env() -> bool:
    """Whether ``TF_CONFIG`` (if any) makes this process the chief; True without TF_CONFIG.

    The same rule as TensorFlow's: the task of type "chief", or worker 0 when the cluster has
    no "chief" task. Reads only the environment, so a RunDir can decide before TF starts.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        return True
    _check_tf_config()  # a malformed TF_CONFIG is an error naming it, never ignored
    config = json.loads(text)
    return _chief_rule(config["cluster"], config["task"]["type"], int(config["task"]["index"]))


def _chief_rule(cluster: dict, task_type, task_id) -> bool:
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def is_chief(strategy) -> bool:
    """True on the worker that writes files (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return _chief_rule(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def describe(strategy, global_batch_size: int | None = None) -> dict:
    """What ``distribution.json`` records: strategy, replicas, workers, global/per-replica batch."""
    replicas = int(strategy.num_replicas_in_sync)
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) or 1
    info = {
        # MultiWorkerMirroredStrategy's class is called CollectiveAllReduceStrategy.
        "strategy": "MultiWorkerMirroredStrategy"
        if is_multi_worker(strategy)
        else type(strategy).__name__,
        "num_replicas": replicas,
        "num_workers": workers,
        "global_batch_size": global_batch_size,
        "per_replica_batch_size": None,
    }
    if global_batch_size:
        info["per_replica_batch_size"] = (
            global_batch_size / replicas
            if global_batch_size % replicas
            else global_batch_size // replicas
        )
    return info

"""tf.distribute strategies for ``--strategy auto|one-device|mirrored|multi-worker``."""

from __future__ import annotations

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")


def make_strategy(name: str = "auto"):
    """Return a ``tf.distribute.Strategy``.

    ``auto``: MirroredStrategy when several GPUs are visible, else the default strategy.
    ``one-device``: the first GPU, or the CPU. ``mirrored``: all local GPUs (or the logical
    CPU devices, for tests). ``multi-worker``: MultiWorkerMirroredStrategy configured by the
    ``TF_CONFIG`` environment variable.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}; received {name!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one-device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True on the worker that writes files (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )

"""``prepare_adaptive_glf``: compile a model for adaptive-GLF training and build its callbacks."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from keras_losses.adaptive.compiled import check_binary, with_state
from keras_losses.adaptive.deterministic import DeterministicGLFCallback
from keras_losses.adaptive.exploratory import ExploratoryGLFLogger, ExploratoryGLFModel
from keras_losses.adaptive.trajectory import TRAJECTORY_CSV

RULES = ("det", "exp", "exp-hybrid", "exp-first-order", "exp-naive")
_EXP_MODES = {
    "exp": "exact",
    "exp-hybrid": "hybrid",
    "exp-first-order": "first-order",
    "exp-naive": "naive",
}


def prepare_adaptive_glf(
    model: keras.Model,
    loss,
    rule: str,
    optimizer,
    metrics=None,
    run_dir=None,
    *,
    rule_options: dict | None = None,
    compile_options: dict | None = None,
):
    """Compile ``model`` for adaptive-GLF training; return ``(model, callbacks)``.

    Pass the callbacks to ``training.fit.fit_model(..., callbacks=callbacks)`` (or
    ``model.fit``). With ``run_dir`` the callbacks write ``glf_trajectory.csv`` and
    ``glf_state.json`` (coefficients per epoch, for ``--resume``) into it and TensorBoard
    scalars ``glf/*`` into ``run_dir/tensorboard/glf``; the three coefficients also go into
    the Keras logs as ``glf_alpha_p``/``glf_alpha_n``/``glf_beta2`` (so into History).

    Args:
        model: the network (e.g. ``architectures.unet.build_unet(...)``), or an
            :class:`ExploratoryGLFModel` reloaded from a checkpoint.
        loss: a :class:`~keras_losses.GeneralizedLoss`, usually starting at the Dice values
            (1, 1, 1). Under ``tf.distribute`` build it inside ``strategy.scope()``.
        rule: "det" (deterministic callback, Fig. 2b), "exp" (exploratory search, exact and
            fast), "exp-hybrid" (first-order ranking, top_k scored exactly), "exp-first-order"
            (first-order scores) or "exp-naive" (27-copy reference).
        optimizer: a Keras optimizer (instance or name).
        metrics: compile metrics.
        run_dir: a ``training.rundir.RunDir`` or a folder path; None writes no files.
        rule_options: keyword arguments of :class:`DeterministicGLFCallback` (det) or of
            :class:`ExploratoryGLFModel` (exp rules: ``step``, ``score_training``, ``bounds``,
            ``top_k``, ``tie_tolerance``).
        compile_options: extra ``model.compile`` arguments (e.g. ``jit_compile``).

    Returns:
        ``(model, callbacks)``: for "det" the same model compiled; for the exploratory rules an
        :class:`ExploratoryGLFModel` wrapping it (``.network`` is the plain network). Either saves
        as ``.keras`` and reloads with ``keras.saving.load_model`` after ``import keras_losses``.

    Example:
        >>> import keras, numpy as np, keras_losses
        >>> x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
        >>> y = (x > 0.7).astype("float32")  # shape: (8, 16, 16, 1)
        >>> model = keras.Sequential(
        ...     [keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")]
        ... )
        >>> loss = keras_losses.GeneralizedLoss()  # starts at the Dice values (1, 1, 1)
        >>> model, callbacks = prepare_adaptive_glf(model, loss, "exp", "adam", run_dir="run")
        >>> type(model).__name__, [type(c).__name__ for c in callbacks]
        ('ExploratoryGLFModel', ['ExploratoryGLFLogger'])
        >>> history = model.fit(x, y, batch_size=4, epochs=1, callbacks=callbacks, verbose=0)
        >>> sorted(k for k in history.history if k.startswith("glf_"))
        ['glf_alpha_n', 'glf_alpha_p', 'glf_beta2']
        >>> from pathlib import Path
        >>> sorted(p.name for p in Path("run").glob("glf_*"))  # trajectory; state for resume
        ['glf_state.json', 'glf_trajectory.csv']
    """
    from keras_losses.generalized import GeneralizedLoss

    if rule not in RULES:
        raise ValueError(f"prepare_adaptive_glf: `rule` must be one of {RULES}; received {rule!r}")
    if not isinstance(loss, GeneralizedLoss):
        raise ValueError(
            f"prepare_adaptive_glf: `loss` must be a keras_losses.GeneralizedLoss; received {type(loss).__name__}"
        )
    check_binary(loss, "prepare_adaptive_glf", model)
    _check_distribution(model, loss, rule)
    rule_options = dict(rule_options or {})
    compile_options = dict(compile_options or {})
    if compile_options.get("steps_per_execution", 1) != 1:
        raise ValueError(
            "prepare_adaptive_glf: the adaptive GLF updates its coefficients after every step; "
            f"received steps_per_execution={compile_options['steps_per_execution']}"
        )

    chief = getattr(run_dir, "chief", True)
    folder = None if run_dir is None or not chief else Path(os.fspath(run_dir))
    files = {}
    if folder is not None:
        files = {
            "csv_path": folder / TRAJECTORY_CSV,
            "tensorboard_dir": folder / "tensorboard" / "glf",
        }

    if rule == "det":
        # loss.state records the batch for the rule and carries the coefficients (GLFState)
        metrics = with_state(metrics, loss)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_options)
        return model, [DeterministicGLFCallback(loss, **rule_options, **files)]

    mode = _EXP_MODES[rule]
    if isinstance(model, ExploratoryGLFModel):
        if rule_options:
            raise ValueError(
                "prepare_adaptive_glf: `rule_options` cannot change a reloaded ExploratoryGLFModel"
            )
        wrapped = model
        wrapped.mode = mode
    else:
        wrapped = ExploratoryGLFModel(model, mode=mode, **rule_options)
    wrapped.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_options)
    return wrapped, [ExploratoryGLFLogger(loss, step=wrapped.step, **files)]


def _check_distribution(model, loss, rule) -> None:
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync <= 1:
        return
    if rule != "det":
        raise ValueError(
            f"prepare_adaptive_glf: rule {rule!r} runs on one replica only; the strategy has "
            f"{strategy.num_replicas_in_sync} replicas (use rule 'det' under tf.distribute)"
        )
    if not strategy.extended.variable_created_in_scope(loss.state.counts.value):
        raise ValueError(
            "prepare_adaptive_glf: build the GeneralizedLoss inside `strategy.scope()` (as the "
            "model): its counts must be a mirrored SUM variable so that the rule sees the counts "
            "of the global batch"
        )

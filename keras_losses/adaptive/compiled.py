"""Checks that an adaptive GLF rule is attached to the model that trains its loss."""

from __future__ import annotations

import keras


def loss_terms(obj) -> list:
    """Every ``keras.losses.Loss`` in a compiled loss: the loss itself, the items of lists,
    tuples and dicts, and the terms a loss holds as attributes (e.g. ``CombinedLoss``)."""
    found, seen = [], set()

    def walk(item):
        if id(item) in seen:
            return
        seen.add(id(item))
        if isinstance(item, keras.losses.Loss):
            found.append(item)
            for value in vars(item).values():
                if isinstance(value, (keras.losses.Loss, list, tuple, dict)):
                    walk(value)
        elif isinstance(item, (list, tuple)):
            for value in item:
                walk(value)
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)

    walk(obj)
    return found


def compiled_metrics(model) -> list:
    """The metric objects ``model.compile`` received (also before the first step builds them)."""
    found = list(model.metrics)
    # Keras builds the compiled metrics at the first step (TensorFlow) or at the start of fit
    # (JAX); before that they are only in the compile arguments.
    compiled = getattr(model, "_compile_metrics", None)
    for attr in ("_user_metrics", "_user_weighted_metrics"):
        found.extend(keras.tree.flatten(getattr(compiled, attr, None) or []))
    return found


def check_compiled(model, loss, who: str) -> None:
    """Raise a ValueError unless ``model`` is compiled with ``loss`` (or a loss that holds it)
    and with ``loss.state`` among its metrics (what records the batch and, under JAX, carries
    the coefficients through the compiled step)."""
    if not getattr(model, "compiled", False):
        raise ValueError(f"{who}: the model is not compiled; compile it with the rule's loss")
    compiled = getattr(model, "loss", None)
    if not any(term is loss for term in loss_terms(compiled)):
        raise ValueError(
            f"{who} adapts the coefficients of the GeneralizedLoss it was given, but the model "
            f"was compiled with loss={compiled!r}, which does not contain that loss object: the "
            "rule would adapt a loss nobody trains with, on counts nobody records. Compile the "
            "model with the rule's loss (alone or as a term of a combined loss), e.g. through "
            "keras_losses.adaptive.prepare_adaptive_glf"
        )
    if not any(metric is loss.state for metric in compiled_metrics(model)):
        raise ValueError(
            f"{who}: the loss's state (`loss.state`) is not among the model's compiled metrics, "
            "so the train step neither records the batch statistics the rule reads nor (under "
            "JAX) carries the coefficients it sets; compile with "
            "`metrics=[..., loss.state]` (prepare_adaptive_glf does this)"
        )

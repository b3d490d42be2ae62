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


def with_state(metrics, loss) -> list:
    """``metrics`` as a list with ``loss.state`` appended, and any other GLF state (one that a
    reloaded model's compile config brought back, detached from its loss) left out."""
    from keras_losses.generalized import GLFState

    if isinstance(metrics, dict):
        raise ValueError(
            "prepare_adaptive_glf: `metrics` must be a list for a one-output segmentation model; "
            f"received a dict with keys {sorted(metrics)}"
        )
    kept = [m for m in keras.tree.flatten(metrics or []) if not isinstance(m, GLFState)]
    return [*kept, loss.state]


def compiled_metrics(model) -> list:
    """The metric objects ``model.compile`` received (also before the first step builds them)."""
    found = list(model.metrics)
    # Keras builds the compiled metrics at the first step (TensorFlow) or at the start of fit
    # (JAX); before that they are only in the compile arguments.
    compiled = getattr(model, "_compile_metrics", None)
    for attr in ("_user_metrics", "_user_weighted_metrics"):
        found.extend(keras.tree.flatten(getattr(compiled, attr, None) or []))
    return found


def output_channels(model) -> int | None:
    """The size of the last axis of the model's (or a wrapped ``.network``'s) output, or None
    when the model has no symbolic output yet."""
    network = getattr(model, "network", model)
    try:
        outputs = network.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs:
        return None
    return outputs[0].shape[-1]


def check_binary(loss, who: str, model=None) -> None:
    """Raise a ValueError unless ``loss`` (and ``model``'s output, when known) is the binary
    GLF the adaptive rules adapt: one channel of probabilities, no ignore label.

    The rules read pooled soft counts of the network's output (``loss.state`` records them, and
    the exploratory search counts them itself); counts of logits, of several classes or of
    void pixels would drive the coefficients with wrong statistics.
    """
    if loss.from_logits:
        raise ValueError(
            f"{who}: the adaptive GLF rules read counts of probabilities; received a "
            "GeneralizedLoss with from_logits=True. End the network with a sigmoid and use "
            "from_logits=False"
        )
    if loss.ignore_class is not None:
        raise ValueError(
            f"{who}: the adaptive GLF rules count every pixel; received a GeneralizedLoss with "
            f"ignore_class={loss.ignore_class}. Use ignore_class=None"
        )
    channels = None if model is None else output_channels(model)
    if channels not in (1, None):
        raise ValueError(
            f"{who}: the adaptive GLF rules adapt the binary GLF (Seo et al.: one sigmoid "
            f"output channel); the model outputs {channels} channels. Train a multi-class "
            "model with a fixed GeneralizedLoss (per-class counts), or one output channel"
        )


def check_compiled(model, loss, who: str) -> None:
    """Raise a ValueError unless ``model`` is compiled with ``loss`` (or a loss that holds it)
    and with ``loss.state`` among its metrics (what records the batch and, under JAX, carries
    the coefficients through the compiled step), and that the loss and model are binary
    (:func:`check_binary`)."""
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
    check_binary(loss, who, model)

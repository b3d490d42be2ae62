"""Keras model files, saved and loaded atomically.

The atomic file helpers every layer uses (JSON, CSV, text, arrays, figures) are in
:mod:`core.io`; this module adds what needs Keras.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.io import atomic_path


def save_model(model, path) -> Path:
    """``model.save`` to a temporary ``.keras`` file, then rename it into place."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return Path(path)


def save_weights(model, path) -> Path:
    """``model.save_weights`` (model and optimizer variables) atomically; ``path`` ends in ``.weights.h5``."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return Path(path)


def load_model(path, compile: bool = True):
    """``keras.saving.load_model`` with ``safe_mode=True`` and errors that name the file.

    Importing :mod:`keras_losses` first registers every loss of this package, so models
    compiled with them load. Raises FileNotFoundError for a missing file and ValueError for
    a file that is not a readable ``.keras`` model (corrupt, truncated, or not a model).
    """
    import zipfile

    import keras

    import keras_losses  # noqa: F401  (registers the losses for deserialization)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix != ".keras":
        raise ValueError(
            f"{path}: expected a Keras model saved as .keras; received a {path.suffix or 'suffix-less'} file"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a readable .keras model (corrupt or truncated: not a zip archive)"
        )
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{path}: not a readable .keras model (corrupt or truncated?): {err}"
        ) from None
    except (ValueError, TypeError, AttributeError) as err:
        # safe_mode refusing a Lambda layer, an unknown class, a config that is not a model
        text = " ".join(str(err).split())
        raise UserError(f"{path}: cannot load model: {text}") from None


def check_model_input(model, sample_shape, model_file, flag: str = "") -> None:
    """Raise ``UserError`` if ``model`` cannot take inputs of ``sample_shape`` (no batch
    axis): the model file, what it expects and what the data gives."""
    expected = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if expected is None:
        return
    given = tuple(int(n) for n in sample_shape)
    if len(expected) != len(given) or any(e is not None and e != g for e, g in zip(expected, given, strict=True)):
        shape = "x".join("?" if e is None else str(e) for e in expected)
        hint = f"; {flag}" if flag else ""
        raise UserError(
            f"{model_file} expects inputs of {shape}; the data gives {'x'.join(map(str, given))}{hint}"
        )

"""Atomic file writes: a killed run never leaves a truncated file under its final name.

The bottom layer: ``data``, ``training``, ``evaluation`` and ``inference`` write through these
helpers, and this module imports nothing from the project outside ``core`` (Keras model files are saved and
loaded by :mod:`training.io`).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix (Keras checks ``.keras``/``.h5`` suffixes)
    and lives in the same folder, so the final ``os.replace`` is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial" + suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as model.save want to create the file themselves
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_folder(path: str | os.PathLike):
    """Yield a temporary folder beside ``path``; rename it onto ``path`` if the block succeeds.

    A killed build never leaves a half-filled folder under the final name. If ``path`` holds
    files by then (another process finished first), theirs is kept and ours dropped; an empty
    ``path`` is replaced.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj) -> Path:
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def write_csv(path, rows: Iterable[Mapping], fieldnames: list[str] | None = None) -> Path:
    rows = list(rows)
    fieldnames = fieldnames or (list(rows[0].keys()) if rows else [])
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def save_arrays(path, arrays: Mapping) -> Path:
    """Arrays as an ``.npz`` file, atomically (read back with :func:`load_arrays`)."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)


def load_arrays(path) -> dict:
    """An ``.npz``/``.npy`` file's arrays, never unpickling objects (``allow_pickle=False``)."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: array file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            if isinstance(data, np.ndarray):
                return {"arr_0": data}
            return {k: data[k] for k in data.files}
    except AttributeError:  # np.load returned a plain ndarray (.npy), which has no context manager
        return {"arr_0": np.load(path, allow_pickle=False)}
    except ValueError as err:
        raise ValueError(
            f"{path}: holds Python objects, which are never unpickled ({err})"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read arrays (corrupt or truncated?): {err}") from None


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def read_json(path, expect: type | None = None):
    """The JSON value in ``path``; a file that is not valid UTF-8 JSON (truncated, edited by
    hand) or, with ``expect`` (``dict``, ``list``), holds another kind of value raises
    :class:`core.errors.UserError` naming the file."""
    from core.errors import UserError

    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(
            f"{path}: not valid JSON (truncated or edited by hand?): {err}; restore or delete the file"
        ) from None
    if expect is not None and not isinstance(value, expect):
        kinds = {dict: "an object", list: "a list"}
        raise UserError(
            f"{path}: expected {kinds.get(expect, expect.__name__)} at the top level; "
            f"found {type(value).__name__}"
        )
    return value


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

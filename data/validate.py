"""The one validation layer of the data loaders and ``train.py --check-data``.

Every loader (:mod:`data.msd`, :mod:`data.ct`, :mod:`data.patches`, :mod:`data.slices`,
:mod:`data.hippocampus`, :mod:`data.dermoscopy`, :mod:`data.nodules`, :mod:`data.lidc`, ``inference``) checks
what it reads with these functions, so a training run and ``--check-data`` refuse the same
inputs with the same message. Every ``check_*`` function returns a list of problems, one
message per problem, each naming the file and saying what was expected and what was found; an
empty list means the data is fine. A loader stops at the first file with a problem
(:func:`raise_problems`); ``--check-data`` collects the messages of every file and prints
every one::

    from data import validate

    problems = validate.check_array(labels, path, labels=(0, 1, 2))
    problems += validate.check_shapes_match(image.shape, labels.shape, image_path, path)
    validate.raise_problems(problems)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.errors import UserError


class DataError(UserError):
    """A problem with the data source; the message names the file and what is wrong."""


def raise_problems(problems: Sequence[str]) -> None:
    """Raise :class:`DataError` for ``problems`` (no-op for an empty list).

    One problem is raised as its own message; several (e.g. a label volume of the wrong shape
    that also holds a wrong value) are counted and listed one per line.
    """
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{len(problems)} problems:\n{lines}")


# ---------------------------------------------------------------------------- arrays
def check_array(
    array, source, *, labels: Iterable[int] | None = None, what: str = "values"
) -> list[str]:
    """NaN/inf values, and (with ``labels``) values outside the allowed label set."""
    array = np.asarray(array)
    problems = []
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            problems.append(f"{source}: {int(bad.sum())} NaN or infinite {what} (of {array.size})")
            array = np.where(bad, 0, array)
    if labels is not None:
        allowed = sorted(int(v) for v in labels)
        unexpected = [v for v in np.unique(array) if v not in allowed]
        if unexpected:
            shown = [_fmt(v) for v in unexpected[:8]]
            problems.append(
                f"{source}: expected labels in {{{', '.join(map(str, allowed))}}}; found {shown}"
                + (" ..." if len(unexpected) > 8 else "")
            )
    return problems


# A label stored as float (LiTS, scaled NIfTI storage) may sit this close to a whole number;
# 0.5 is never rounded.
LABEL_ROUNDING = 0.1


def check_labels(array, source, labels: Iterable[int], what: str = "label values") -> list[str]:
    """Label values AS STORED, before any rounding or cast: NaN/inf, values that are not whole
    numbers (a 0.5 would round to a label, or away from one), values outside ``labels``.
    Convert afterwards with ``np.rint(array).astype(...)``."""
    array = np.asarray(array)
    problems = check_array(array, source, what=what)
    if problems:
        return problems
    if np.issubdtype(array.dtype, np.floating):
        off = np.abs(array - np.rint(array)) > LABEL_ROUNDING
        if off.any():
            shown = [float(v) for v in np.unique(array[off])[:5]]
            return [
                f"{source}: {int(off.sum())} {what} are not whole numbers (found {shown}); "
                "labels must be integers"
            ]
        array = np.rint(array)
    return check_array(array, source, labels=labels, what=what)


def check_unique(ids: Iterable, source, what: str) -> list[str]:
    """Ids listed more than once in an index file (``source``): one case in two places."""
    seen, repeated = set(), []
    for item in ids:
        if item in seen and item not in repeated:
            repeated.append(item)
        seen.add(item)
    if not repeated:
        return []
    shown = ", ".join(map(str, repeated[:5])) + (" ..." if len(repeated) > 5 else "")
    return [f"{source}: {len(repeated)} {what}(s) listed more than once: {shown}; each must appear once"]


def check_disjoint(split: dict, source) -> list[str]:
    """A split (``{"train": [...], "val": [...], "test": [...]}``) in which a case id lies in
    two parts or twice in one part."""
    problems = []
    owner: dict = {}
    for part, ids in split.items():
        if not isinstance(ids, list):
            problems.append(f"{source}: '{part}' must be a list of case ids; found {type(ids).__name__}")
            continue
        problems += check_unique(ids, source, f"'{part}' case id")
        for case in ids:
            if isinstance(case, (list, dict)):
                continue
            if case in owner and owner[case] != part:
                problems.append(f"{source}: case {case!r} is in both '{owner[case]}' and '{part}'")
            owner.setdefault(case, part)
    return problems


def check_fractions(source: str = "", **fractions: float) -> list[str]:
    """Split fractions (``val_fraction=0.2, test_fraction=0.2``): each in [0, 1), sum below 1
    (something must be left to train on). Named by their flags (``--val-fraction``)."""
    problems = []
    for name, value in fractions.items():
        flag = "--" + name.replace("_", "-")
        if not (isinstance(value, (int, float)) and 0 <= value < 1):
            problems.append(f"{source}{flag} must be in [0, 1); received {value}")
    values = [v for v in fractions.values() if isinstance(v, (int, float))]
    if not problems and sum(values) >= 1:
        flags = " + ".join("--" + n.replace("_", "-") for n in fractions)
        problems.append(
            f"{source}{flags} = {sum(values):g} leaves no case to train on; the sum must be below 1"
        )
    return problems


def check_foreground(count: int, total: int, source, what: str = "training") -> list[str]:
    """A segmentation data set whose ``what`` labels hold no foreground at all."""
    if total and count == 0:
        return [
            f"{source}: none of the {total} {what} labels holds any foreground; a segmentation "
            "model cannot learn from it (check the label files)"
        ]
    return []


def check_value(value, allowed, source, what: str) -> list[str]:
    """A table cell (``what`` of ``source``, e.g. a CSV row) whose value is not one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        return [f"{source}: expected {what} in {{{', '.join(map(str, allowed))}}}; found {value!r}"]
    return []


def _fmt(v):
    v = float(v)
    return int(v) if v == int(v) else v


def check_shapes_match(image_shape, label_shape, image_source, label_source) -> list[str]:
    """A label (mask) whose shape differs from its image's."""
    if tuple(image_shape) != tuple(label_shape):
        return [
            f"{label_source}: label shape {tuple(label_shape)} does not match image shape "
            f"{tuple(image_shape)} of {image_source}"
        ]
    return []


def check_ndim(shape, ndim: int, source, what: str = "volume") -> list[str]:
    """An array of the wrong number of dimensions (a 4-D NIfTI where a 3-D volume belongs)."""
    if len(shape) != ndim:
        return [f"{source}: expected a {ndim}D {what}; found shape {tuple(shape)}"]
    return []


def check_min_size(shape, min_size, source, *, what: str = "slice", hint: str = "") -> list[str]:
    """A ``what`` of spatial ``shape`` smaller than the model's input ``min_size`` (h, w[, d])."""
    shape, min_size = tuple(int(s) for s in shape), tuple(int(s) for s in min_size)
    if len(shape) < len(min_size) or any(
        s < m for s, m in zip(shape[: len(min_size)], min_size, strict=True)
    ):
        return [
            f"{source}: {what} size {_x(shape)} is smaller than the model input {_x(min_size)}"
            + (f"; {hint}" if hint else "")
        ]
    return []


def _x(shape) -> str:
    return "x".join(str(s) for s in shape)


def check_max_size(shape, max_size, source, *, what: str = "slice", hint: str = "") -> list[str]:
    """A ``what`` of spatial ``shape`` larger than the fixed size it is zero-padded to."""
    shape, max_size = tuple(int(s) for s in shape), tuple(int(s) for s in max_size)
    if any(s > m for s, m in zip(shape[: len(max_size)], max_size, strict=True)):
        return [
            f"{source}: {what} size {_x(shape)} exceeds the padded size {_x(max_size)}"
            + (f"; {hint}" if hint else "")
        ]
    return []


# ---------------------------------------------------------------------------- files
def check_exists(path, what: str = "file") -> list[str]:
    """A file that is not there."""
    path = Path(path)
    return [] if path.is_file() else [f"{path}: {what} not found"]


def check_image(path) -> list[str]:
    """A JPEG/PNG that decodes completely (a truncated file is reported, not half-read).

    PIL's full ``load()`` is stricter than OpenCV's ``imread``, which returns the decoded top
    of a truncated JPEG without an error.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        return [f"{path}: cannot decode image (corrupt or truncated?): {err}"]
    return []


# ---------------------------------------------------------------------------- CSV and paths
def inside(root, relative, source) -> Path:
    """``root / relative`` resolved; raises :class:`DataError` if it leaves ``root``."""
    root = Path(root).resolve()
    path = (root / str(relative)).resolve()
    if not path.is_relative_to(root):
        raise DataError(
            f"{source} names {str(relative)!r}, which lies outside the data folder {root}"
        )
    return path


def read_csv_rows(path, columns: Sequence[str] = ()) -> tuple[list[dict], list[str]]:
    """``(rows, problems)`` of a CSV; a missing or undecodable file or missing columns are problems."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}: CSV file not found"]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return [], [f"{path}: cannot read CSV: {err}"]
    missing = [c for c in columns if c not in header]
    if missing:
        return [], [f"{path}: expected columns {list(columns)}; missing {missing} (found {header})"]
    return rows, []

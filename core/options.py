"""``option``: a dataclass field that carries its own command-line help.

:func:`training.config.add_arguments` turns such fields into argparse flags and
:func:`training.config.from_args` builds the dataclass back; the field itself lives here, below
``data`` and ``training``, so data configurations (``data.ct.CTDataConfig``) can declare their
flags without importing the training layer.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def option(default: Any, help: str, *, choices=None, flag: str | None = None):
    """A dataclass field with a default, a help text, and optional argparse choices."""
    meta = {"help": help, "choices": choices, "flag": flag}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)

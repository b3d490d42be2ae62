"""A flag the command line cannot parse: :class:`UsageError`, a :class:`core.errors.UserError`.

Command lines (:mod:`training.cli`) print such an error as one ``error: ...`` line and exit
with status 2; anything else is a bug and keeps its traceback. It subclasses ``ValueError``
so that code (and tests) catching ``ValueError`` keep working.
"""

from __future__ import annotations

from core.errors import UserError


class UsageError(UserError):
    """A flag the command line cannot parse (argparse's own message)."""

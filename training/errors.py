"""User errors of the command lines: :class:`UserError` (from :mod:`core.errors`) and :class:`UsageError`.

Command lines (:mod:`training.cli`) print such an error as one ``error: ...`` line and exit
with status 2; anything else is a bug and keeps its traceback. It subclasses ``ValueError``
so that code (and tests) catching ``ValueError`` keep working.
"""

from __future__ import annotations

from core.errors import UserError  # re-exported: the base lives below data/, which raises it


class UsageError(UserError):
    """A flag the command line cannot parse (argparse's own message)."""

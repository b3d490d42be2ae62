"""The one base class for mistakes a user can fix (a flag, a file, a folder).

Command lines (:mod:`training.cli`) print such an error as one ``error: ...`` line and exit
with status 2; anything else is a bug and keeps its traceback. It subclasses ``ValueError``
so that code (and tests) catching ``ValueError`` keep working. It lives in ``core`` so that the
data layer (``data.validate``) can raise it without importing ``training``.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the flag or file, what was expected and what was received."""

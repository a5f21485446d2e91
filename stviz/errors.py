"""User-facing errors and warnings.

A `StvizError` is something the user caused and can fix (a missing file, a bad
option); the CLI prints its message as one line and exits with code 2. Any
other exception is a bug and exits with code 1.
"""

from __future__ import annotations

import warnings


class StvizError(Exception):
    """An error the user can fix; the message names the file and the fix."""


class StvizWarning(UserWarning):
    """Something the user should know about, but that does not stop the run."""


def warn(message: str) -> None:
    """Emit a one-line user warning (the CLI prints it as `warning: ...`)."""
    warnings.warn(message, StvizWarning, stacklevel=2)

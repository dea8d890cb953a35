"""How the CLI ends on an error: one line on stderr and a documented exit status.

Exit statuses: 0 success; 1 a check failed (e.g. ``tenfold deploy`` above its tolerance,
``tenfold lr-find`` diverged); 2 bad input or a run that cannot be built or written (recipe
key, value, file, ``--out`` finished / foreign / locked / read-only, full disk, TensorFlow
missing); 3 training stopped on a non-finite loss or weight (resumable from the last finite
checkpoint); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import NoReturn

import typer

BAD_INPUT = 2
CHECK_FAILED = 1
NON_FINITE = 3
INTERRUPTED = 130


def os_message(err: OSError, where: object) -> str:
    """One line for a failed write or read: the path (``where`` when the error names none)
    and the reason (its first line)."""
    path = err.filename or where
    reason = str(err.strerror or err).splitlines()[0] if str(err.strerror or err) else "I/O error"
    return f"cannot write {str(path)!r}: {reason.rstrip(' (:,')}."


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code`` (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)

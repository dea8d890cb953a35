"""How the CLI ends on an error: one line on stderr and a documented exit status.

Exit statuses: 0 success; 1 a check failed (e.g. ``tenfold deploy`` above its tolerance,
``tenfold lr-find`` diverged); 2 bad input (recipe key, value, file, ``--out``);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import NoReturn

import typer

BAD_INPUT = 2
CHECK_FAILED = 1
INTERRUPTED = 130


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code`` (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)

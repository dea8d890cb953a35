"""The run directory's rules: what may be written where, resume or refuse, one writer.

A run directory is the user's data. ``recipe.yaml`` (fully resolved) marks it as a tenfold
run; ``metrics.json``, written last, marks it finished. A finished run is never replaced
without ``force``; a directory that is not a tenfold run is never written into; an
unfinished run of the same recipe always resumes (also with ``force``), one of another
recipe is replaced only with ``force``.

:func:`check` decides without writing anything, so a run that fails while it is being
built leaves nothing on disk; :func:`claim` then creates the directory and holds the lock
file ``.lock`` (``fcntl.flock``, released by the kernel when the process dies, even by
SIGKILL) for as long as the run writes, so two ``tenfold train`` into one ``--out`` cannot
both write. The stages after training record their results in ``checkpoints/stages/``, so
an interrupted run resumes at the stage it was in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from tenfold.env import environment
from tenfold.train.files import write_json_atomic, write_text_atomic
from tenfold.train.recipe import Recipe, RecipeError

FINISHED_MARKER = "metrics.json"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
Action = Literal["fresh", "resume", "replace"]


class RunDirError(RecipeError):
    """The run directory cannot be used as asked (finished, foreign, other recipe, locked,
    not writable)."""


def _contents(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name != LOCK] if out.is_dir() else []


def check(out: Path, recipe: Recipe, *, force: bool) -> Action:
    """What a run of ``recipe`` would do with ``out``; raises RunDirError, writes nothing."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file, not a directory.")
    if not _contents(out):
        return "fresh"
    saved = out / "recipe.yaml"
    if not saved.exists():
        raise RunDirError(
            f"--out {str(out)!r} is a non-empty directory that is not a tenfold run; "
            "choose another directory (nothing was written)."
        )
    finished = (out / FINISHED_MARKER).exists()
    if not finished and saved.read_text(encoding="utf-8") == recipe.to_yaml():
        return "resume"  # with or without --force: an interrupted run never loses its checkpoint
    if force:
        return "replace"
    if finished:
        raise RunDirError(
            f"--out {str(out)!r} holds a finished run; pass --force to replace it, or "
            "choose another --out."
        )
    raise RunDirError(
        f"--out {str(out)!r} holds an unfinished run of a different recipe; resume it "
        "with the same recipe and --set values, or pass --force to start over."
    )


def _lock(out: Path) -> int:
    import fcntl

    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(
            f"--out {str(out)!r} is being written by another `tenfold train` (lock file "
            f"{str(out / LOCK)!r}); wait for it to end or choose another --out."
        ) from None
    return fd


@contextlib.contextmanager
def claim(out: Path, recipe: Recipe, *, force: bool) -> Iterator[Action]:
    """Create ``out``, hold its lock, replace or resume as :func:`check` decides (checked
    again under the lock) and write ``recipe.yaml``; yields the action taken."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = _lock(out)
    except OSError as err:  # read-only file system, no permission, disk full
        raise RunDirError(f"--out {str(out)!r} is not writable ({err.strerror}).") from None
    try:
        action = check(out, recipe, force=force)
        if action == "replace":
            for path in _contents(out):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        if action != "resume":
            write_text_atomic(out / "recipe.yaml", recipe.to_yaml())
        yield action
    finally:
        if (out / FINISHED_MARKER).exists():  # a finished run needs no lock file
            (out / LOCK).unlink(missing_ok=True)
        os.close(fd)  # releases the lock


def write_environment(out: Path, *, action: Action) -> None:
    """``env.json`` (versions, devices, CPU flags) of a fresh run; a resumed run keeps its own."""
    if action != "resume" or not (out / "env.json").exists():
        write_json_atomic(out / "env.json", environment())


def load_stage(out: Path, name: str) -> Any:
    """The recorded result of stage ``name`` of an interrupted run (None: not done)."""
    try:
        return json.loads((out / CHECKPOINTS / "stages" / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def save_stage(out: Path, name: str, value: Any) -> None:
    """Record that stage ``name`` is done, with its JSON-able result."""
    stages = out / CHECKPOINTS / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stages / f"{name}.json", value)


def mark_finished(out: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json``, last: from now on the run is finished; then drop the
    checkpoints, which are not needed any more."""
    write_json_atomic(out / FINISHED_MARKER, metrics)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)

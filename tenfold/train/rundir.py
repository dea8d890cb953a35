"""The run directory's rules: what may be written where, resume or refuse.

A run directory is the user's data. ``recipe.yaml`` (fully resolved) marks it as a tenfold
run; ``metrics.json``, written last, marks it finished. A finished run is never replaced
without ``force``; a directory that is not a tenfold run is never written into; an
unfinished run of the same recipe always resumes (also with ``force``), one of another
recipe is replaced only with ``force``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tenfold.env import environment
from tenfold.train.files import write_json_atomic, write_text_atomic
from tenfold.train.recipe import Recipe, RecipeError

FINISHED_MARKER = "metrics.json"


class RunDirError(RecipeError):
    """The run directory cannot be used as asked (finished, foreign, other recipe)."""


def checkpoint_epoch(checkpoints: Path) -> int | None:
    """The epoch the checkpoint in ``checkpoints`` resumes from (None: no checkpoint)."""
    meta = checkpoints / "training_metadata.json"
    if not meta.exists():
        return None
    try:
        return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"])
    except (ValueError, KeyError, OSError):
        return None


def prepare_run_dir(out: Path, recipe: Recipe, *, force: bool) -> int | None:
    """Check and create ``out``. Returns the epoch to resume from, or None for a fresh run."""
    recipe_yaml = recipe.to_yaml()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file, not a directory.")
    if out.exists() and any(out.iterdir()):
        saved = out / "recipe.yaml"
        if not saved.exists():
            raise RunDirError(
                f"--out {str(out)!r} is a non-empty directory that is not a tenfold run; "
                "choose another directory (nothing was written)."
            )
        finished = (out / FINISHED_MARKER).exists()
        same_recipe = saved.read_text(encoding="utf-8") == recipe_yaml
        if not finished and same_recipe:
            # resume, with or without --force: an interrupted run never loses its checkpoint
            return checkpoint_epoch(out / "checkpoints") or 0
        if not force:
            if finished:
                raise RunDirError(
                    f"--out {str(out)!r} holds a finished run; pass --force to replace it, or "
                    "choose another --out."
                )
            raise RunDirError(
                f"--out {str(out)!r} holds an unfinished run of a different recipe; resume it "
                "with the same recipe and --set values, or pass --force to start over."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "recipe.yaml", recipe_yaml)
    return None


def write_environment(out: Path, *, resume_epoch: int | None) -> None:
    """``env.json`` (versions, devices, CPU flags) of a fresh run; a resumed run keeps its own."""
    if resume_epoch is None or not (out / "env.json").exists():
        write_json_atomic(out / "env.json", environment())


def mark_finished(out: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json``, last: from now on the run is finished."""
    write_json_atomic(out / FINISHED_MARKER, metrics)

"""``tenfold train [RECIPE] [--set key=value ...] [--out DIR] [--force]``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tenfold.cli._errors import INTERRUPTED, fail
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run


def train_command(
    recipe: Optional[str] = typer.Argument(
        None, help="Recipe YAML file or bundled recipe name (default: the 'default' recipe)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a recipe key, e.g. --set train.epochs=5 (repeatable)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Run directory (default: runs/<recipe name>). Re-running resumes."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a finished run (or an unfinished run of another recipe) in --out. "
        "An unfinished run of the same recipe always resumes."),
) -> None:
    """Train a recipe and write a run directory with report, plots and models."""
    try:
        resolved = load_recipe(recipe, set_)
        run(resolved, out or Path("runs") / resolved.name, force=force)
    except RecipeError as err:
        fail(str(err))
    except KeyboardInterrupt:
        typer.echo(
            "\ninterrupted: the last finished epoch is checkpointed; run the same command "
            "again to resume.", err=True,
        )
        raise typer.Exit(INTERRUPTED) from None

"""``tenfold train [RECIPE] [--set key=value ...] [--out DIR] [--force]``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tenfold.cli._errors import INTERRUPTED, NON_FINITE, fail, os_message
from tenfold.train.callbacks import NonFiniteTraining
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
    target = out
    try:
        resolved = load_recipe(recipe, set_)
        target = out or Path("runs") / resolved.name
        run(resolved, target, force=force)
    except (RecipeError, ImportError) as err:  # ImportError: TensorFlow missing, says the extra
        fail(str(err))
    except OSError as err:  # read-only --out, full disk
        fail(os_message(err, target))
    except NonFiniteTraining as err:
        fail(str(err), NON_FINITE)
    except KeyboardInterrupt:
        typer.echo(
            "\ninterrupted: the last finished epoch is checkpointed; run the same command "
            "again to resume.", err=True,
        )
        raise typer.Exit(INTERRUPTED) from None

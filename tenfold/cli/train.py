"""``tenfold train [RECIPE] [--set key=value ...] [--out DIR] [--force] [--worker I --workers
host:port,...]``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from tenfold.cli._errors import INTERRUPTED, NON_FINITE, fail, os_message
from tenfold.train.callbacks import NonFiniteTraining
from tenfold.train.recipe import Recipe, RecipeError, load_recipe
from tenfold.train.run import run


def cluster(resolved: Recipe, recipe: Optional[str], set_: list[str], worker: Optional[int],
            workers: Optional[str]) -> Recipe:
    """``--worker I --workers host:port,...``: write ``TF_CONFIG`` for this process and train
    under ``distribute.strategy: multi_worker`` (set when the recipe says ``none``)."""
    if worker is None and workers is None:
        return resolved
    if worker is None or workers is None:
        given, missing = ("--worker", "--workers") if worker is not None else ("--workers", "--worker")
        raise RecipeError(f"{given} needs {missing} too: --worker I --workers host:port,host:port "
                          "(the same list on every worker, I its 0-based place in it).")
    from tenfold.train.distribute import tf_config  # imports TensorFlow lazily, devices untouched

    os.environ["TF_CONFIG"] = tf_config(worker, workers)
    strategy = resolved.distribute.strategy
    if strategy == "none":
        return load_recipe(recipe, [*set_, "distribute.strategy=multi_worker"])
    if strategy != "multi_worker":
        raise RecipeError(f"--worker/--workers start a multi_worker cluster; the recipe says "
                          f"distribute.strategy={strategy!r}. Drop the flags or set "
                          "distribute.strategy=multi_worker.")
    return resolved


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
    worker: Optional[int] = typer.Option(
        None, "--worker", help="This process's index in --workers (0: the chief, which writes --out)."),
    workers: Optional[str] = typer.Option(
        None, "--workers", help="host:port of every worker, comma-separated, the same on all of them: "
        "writes TF_CONFIG and trains with distribute.strategy=multi_worker."),
) -> None:
    """Train a recipe and write a run directory with report, plots and models."""
    target = out
    try:
        resolved = cluster(load_recipe(recipe, set_), recipe, set_, worker, workers)
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

"""The ``tenfold`` command line (Typer).

Commands: ``train``, ``bench``, ``recipes list|show``; techniques add theirs
(``lr-find``, ``deploy``) with ``app.command(...)`` in their own ``tenfold/cli`` module,
imported at the bottom of this file.

Bad input (unknown recipe key, wrong type, missing file, bad ``--set``) exits with status 2
and one message on stderr, no traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import typer  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tenfold: ten training techniques for Keras 3, real, composable and measured.",
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(no_args_is_help=True, help="List and show the bundled recipes.")
app.add_typer(recipes_app, name="recipes")


def fail(message: str, code: int = 2) -> None:
    """Print one error line to stderr and exit with ``code`` (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def train(
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
    from tenfold.train.recipe import RecipeError, load_recipe
    from tenfold.train.run import run

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
        raise typer.Exit(130) from None


@app.command()
def bench(
    names: list[str] = typer.Argument(None, help="Benchmarks to run (default: all)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller, faster versions."),
    out: Optional[Path] = typer.Option(
        None, "--out",
        help="Where results go (default: benchmarks/results; with --quick runs/bench-quick, "
        "so quick runs never replace the full results kept in the repo).",
    ),
    list_: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
) -> None:
    """Measure techniques against the plain Keras way, side by side, into RESULTS.md."""
    from tenfold import registry
    from tenfold.bench import load_all
    from tenfold.bench.run import run_benchmarks

    load_all()
    available = registry.list("benchmarks")
    if list_:
        for name in available:
            typer.echo(f"{name:20s} {registry.get('benchmarks', name).description}")
        return
    for name in names or []:
        if name not in available:
            fail(f"unknown benchmark {name!r}.{registry.suggest(name, available)} Accepted: {', '.join(available)}.")
    default = Path("runs/bench-quick/results") if quick else Path("benchmarks/results")
    run_benchmarks(names or available, quick=quick, out_dir=out or default)


@recipes_app.command("list")
def recipes_list() -> None:
    """The bundled recipes with their descriptions."""
    from tenfold.train.recipe import bundled, read_raw

    for name in bundled():
        raw, _ = read_raw(name)
        typer.echo(f"{name:24s} {raw.get('description', '')}")


@recipes_app.command("show")
def recipes_show(name: str = typer.Argument(..., help="Bundled recipe name or YAML file.")) -> None:
    """Print a recipe fully resolved (every default filled in)."""
    from tenfold.train.recipe import RecipeError, load_recipe

    try:
        typer.echo(load_recipe(name).to_yaml(), nl=False)
    except RecipeError as err:
        fail(str(err))


from tenfold.cli import deploy as _deploy  # noqa: E402,F401  (registers `tenfold deploy`)
from tenfold.cli import lr_find as _lr_find  # noqa: E402,F401  (registers `tenfold lr-find`)


def main() -> None:
    """Entry point of the ``tenfold`` script and ``python -m tenfold``."""
    app(prog_name="tenfold")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

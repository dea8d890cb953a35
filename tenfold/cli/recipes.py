"""``tenfold recipes list | show NAME``."""

from __future__ import annotations

import typer

from tenfold.cli._errors import fail
from tenfold.train.recipe import RecipeError, bundled, load_recipe, read_raw


def list_command() -> None:
    """The bundled recipes with their descriptions."""
    for name in bundled():
        raw, _ = read_raw(name)
        typer.echo(f"{name:24s} {raw.get('description', '')}")


def show_command(name: str = typer.Argument(..., help="Bundled recipe name or YAML file.")) -> None:
    """Print a recipe fully resolved (every default filled in)."""
    try:
        typer.echo(load_recipe(name).to_yaml(), nl=False)
    except RecipeError as err:
        fail(str(err))

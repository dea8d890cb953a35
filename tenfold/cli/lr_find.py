"""``tenfold lr-find [RECIPE]``: the LR range test for a recipe, with plot, CSV and suggestion.

Builds the recipe's data, model, optimizer and loss exactly as ``tenfold train`` does, sweeps
the learning rate (:func:`tenfold.lr_find`), prints the suggested bounds, writes
``lr_finder.png`` (log-x, suggestion marked), ``lr_finder.csv`` and ``lr_find.json`` and,
with ``--write-recipe``, a copy of the recipe whose ``schedule.bounds`` holds the bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tenfold.cli.app import app, fail


def with_bounds(recipe_yaml: str, low: float, high: float) -> str:
    """The recipe (resolved YAML) with ``schedule.bounds: [low, high]``; a schedule that is not
    cyclical becomes ``cyclical``."""
    import yaml

    raw = yaml.safe_load(recipe_yaml)
    schedule = raw.setdefault("schedule", {})
    if schedule.get("name") not in ("cyclical", "one_cycle"):
        schedule["name"] = "cyclical"
    schedule["bounds"] = [float(f"{low:.4g}"), float(f"{high:.4g}")]
    return yaml.safe_dump(raw, sort_keys=False)


@app.command("lr-find")
def lr_find_command(
    recipe: Optional[str] = typer.Argument(
        None, help="Recipe YAML file or bundled recipe name (default: the 'default' recipe)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key (repeatable)."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Where the plot and CSV go (default: runs/<recipe>-lr-find)."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps of the sweep (default: schedule.lr_find_steps)."),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help="First rate (default: schedule.lr_find_range[0])."),
    max_lr: Optional[float] = typer.Option(None, "--max-lr", help="Last rate (default: schedule.lr_find_range[1])."),
    write_recipe: Optional[Path] = typer.Option(
        None, "--write-recipe", help="Write a copy of the recipe with schedule.bounds set to the suggestion."
    ),
) -> None:
    """Run the LR range test for a recipe: plot, CSV and suggested cyclical bounds."""
    import keras

    from tenfold.train import builders
    from tenfold.train.cyclical import run_range_test, write_range_test
    from tenfold.train.recipe import RecipeError, load_recipe

    try:
        overrides = list(set_)
        if steps is not None:
            overrides.append(f"schedule.lr_find_steps={steps}")
        if min_lr is not None or max_lr is not None:
            base = load_recipe(recipe, list(set_)).schedule.lr_find_range
            low = min_lr if min_lr is not None else base[0]
            high = max_lr if max_lr is not None else base[1]
            overrides.append(f"schedule.lr_find_range=[{low!r}, {high!r}]")
        resolved = load_recipe(recipe, overrides)
        target = out or Path("runs") / f"{resolved.name}-lr-find"
        keras.utils.set_random_seed(resolved.seed)
        run_data = builders.build_data(resolved)
        model = builders.build_model(resolved, run_data)
        s = resolved.schedule
        typer.echo(
            f"tenfold lr-find: recipe {resolved.name!r}, {resolved.optimizer.name} on "
            f"{resolved.model.name}, sweeping {s.lr_find_range[0]:.3g} → {s.lr_find_range[1]:.3g} "
            f"over {s.lr_find_steps} steps"
        )
        result = run_range_test(resolved, run_data, model)
    except RecipeError as err:
        fail(str(err))
        return
    write_range_test(result, target, title=f"LR range test: {resolved.name}")
    summary = result.summary()
    if result.initial_learning_rate is None or result.maximal_learning_rate is None:
        fail("the loss diverged before enough steps were recorded; lower --min-lr / --max-lr.", 1)
        return
    typer.echo(
        f"steps recorded: {summary['steps']}{' (stopped: loss diverged)' if result.stopped_early else ''}\n"
        f"steepest descent:  {summary['steepest_learning_rate']:.3g}\n"
        f"minimum loss at:   {summary['minimum_learning_rate']:.3g}  (minimum/10 = "
        f"{summary['minimum_over_10']:.3g})\n"
        f"suggested bounds:  [{result.initial_learning_rate:.3g}, {result.maximal_learning_rate:.3g}]\n"
        f"plot: {target / 'lr_finder.png'}   curve: {target / 'lr_finder.csv'}"
    )
    if write_recipe is not None:
        write_recipe.parent.mkdir(parents=True, exist_ok=True)
        write_recipe.write_text(
            with_bounds(resolved.to_yaml(), result.initial_learning_rate, result.maximal_learning_rate),
            encoding="utf-8",
        )
        typer.echo(f"recipe with these bounds: {write_recipe}  (tenfold train {write_recipe})")

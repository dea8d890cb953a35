"""``tenfold lr-find [RECIPE]``: the LR range test for a recipe, with plot, CSV and suggestion.

Builds the run exactly as ``tenfold train`` does (:func:`tenfold.train.build.build`: the
recipe's precision policy, echoed input pipeline, model, optimizer and loss), sweeps the
learning rate (:func:`tenfold.lr_find`), prints the suggested bounds, writes
``lr_finder.png`` (log-x, suggestion marked), ``lr_finder.csv`` and ``lr_find.json`` and,
with ``--write-recipe``, a copy of the recipe whose ``schedule.bounds`` holds the bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from tenfold.callbacks.lr_finder import LRFinderResult
from tenfold.cli._errors import CHECK_FAILED, fail
from tenfold.train.build import Run, build
from tenfold.train.optimization import range_test, write_range_test
from tenfold.train.recipe import Recipe, RecipeError, load_recipe, with_values


def with_bounds(recipe_yaml: str, low: float, high: float) -> str:
    """The recipe (resolved YAML) with ``schedule.bounds: [low, high]``; a schedule that is not
    cyclical becomes ``cyclical``."""
    raw = yaml.safe_load(recipe_yaml)
    schedule = raw.setdefault("schedule", {})
    if schedule.get("name") not in ("cyclical", "one_cycle"):
        schedule["name"] = "cyclical"
    schedule["bounds"] = [float(f"{low:.4g}"), float(f"{high:.4g}")]
    return yaml.safe_dump(raw, sort_keys=False)


def sweep_recipe(
    recipe: Recipe, *, steps: int | None, min_lr: float | None, max_lr: float | None
) -> Recipe:
    """``recipe`` with the sweep options applied; bounds from the range test are not run
    twice (this command is the range test)."""
    s = recipe.schedule
    values: dict[str, Any] = {}
    if steps is not None:
        values["schedule.lr_find_steps"] = steps
    if min_lr is not None or max_lr is not None:
        values["schedule.lr_find_range"] = [
            s.lr_find_range[0] if min_lr is None else min_lr,
            s.lr_find_range[1] if max_lr is None else max_lr,
        ]
    if s.bounds == "from_lr_find":
        values["schedule.bounds"] = None
    return with_values(recipe, values, source="tenfold lr-find") if values else recipe


def range_test_run(recipe: Recipe, out: Path) -> tuple[Run, LRFinderResult]:
    """Build ``recipe`` as ``tenfold train`` does and run its LR range test."""
    built = build(recipe, out, log=typer.echo)
    s = recipe.schedule
    typer.echo(
        f"tenfold lr-find: recipe {recipe.name!r}, {recipe.optimizer.name} on "
        f"{recipe.model.name} ({built.precision.policy}), sweeping {s.lr_find_range[0]:.3g} → "
        f"{s.lr_find_range[1]:.3g} over {s.lr_find_steps} steps"
    )
    return built, range_test(recipe, built.model, built.train_data, built.data.class_counts)


def _print_result(result: LRFinderResult, target: Path) -> None:
    summary = result.summary()
    typer.echo(
        f"steps recorded: {summary['steps']}{' (stopped: loss diverged)' if result.stopped_early else ''}\n"
        f"steepest descent:  {summary['steepest_learning_rate']:.3g}\n"
        f"minimum loss at:   {summary['minimum_learning_rate']:.3g}  (minimum/10 = "
        f"{summary['minimum_over_10']:.3g})\n"
        f"suggested bounds:  [{result.initial_learning_rate:.3g}, {result.maximal_learning_rate:.3g}]\n"
        f"plot: {target / 'lr_finder.png'}   curve: {target / 'lr_finder.csv'}"
    )


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
    try:
        resolved = sweep_recipe(load_recipe(recipe, set_), steps=steps, min_lr=min_lr, max_lr=max_lr)
        target = out or Path("runs") / f"{resolved.name}-lr-find"
        _, result = range_test_run(resolved, target)
    except (RecipeError, ImportError) as err:
        fail(str(err))
    write_range_test(result, target, title=f"LR range test: {resolved.name}")
    low, high = result.initial_learning_rate, result.maximal_learning_rate
    if low is None or high is None:
        fail("the loss diverged before enough steps were recorded; lower --min-lr / --max-lr.",
             CHECK_FAILED)
    _print_result(result, target)
    if write_recipe is not None:
        write_recipe.parent.mkdir(parents=True, exist_ok=True)
        write_recipe.write_text(with_bounds(resolved.to_yaml(), low, high), encoding="utf-8")
        typer.echo(f"recipe with these bounds: {write_recipe}  (tenfold train {write_recipe})")

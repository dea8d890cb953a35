"""Trainer glue of the cyclical schedules and the LR range test (recipe ``schedule:``).

``schedule.name: cyclical`` → :class:`tenfold.schedules.CyclicalLearningRate`;
``schedule.name: one_cycle`` → :class:`tenfold.schedules.OneCycle`;
``schedule.bounds: from_lr_find`` runs :func:`tenfold.lr_find` on the built model first
(result cached in the run directory, so a resumed run uses the same bounds);
``schedule.cycle_momentum: true`` adds :class:`tenfold.callbacks.CycleMomentum`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from tenfold.callbacks import CycleMomentum
from tenfold.callbacks.cycle_momentum import innermost_optimizer
from tenfold.callbacks.lr_finder import LRFinderResult
from tenfold.lr_finder import lr_find
from tenfold.schedules import CyclicalLearningRate, OneCycle
from tenfold.train import builders
from tenfold.train.recipe import Recipe, RecipeError

CACHE = "lr_find.json"


def resolved_bounds(recipe: Recipe, found: tuple[float, float] | None) -> tuple[float, float]:
    """``(low, high)`` of a recipe: explicit, found by the range test, or ``[lr/4, lr]``."""
    s = recipe.schedule
    if isinstance(s.bounds, list):
        return float(s.bounds[0]), float(s.bounds[1])
    if s.bounds == "from_lr_find":
        if found is None:
            raise RecipeError("schedule.bounds: from_lr_find needs the range test to run first.")
        return found
    lr = recipe.optimizer.learning_rate
    return lr / 4.0, lr


def build_schedule(recipe: Recipe, steps: int, found: tuple[float, float] | None = None) -> Any:
    """The schedule of ``schedule.name`` cyclical / one_cycle (``steps`` per epoch)."""
    s = recipe.schedule
    low, high = resolved_bounds(recipe, found)
    total = steps * recipe.train.epochs
    if s.name == "cyclical":
        step_size = max(1, round(s.step_size_epochs * steps))
        return CyclicalLearningRate(low, high, step_size, mode=s.mode, gamma=s.gamma)
    if s.name == "one_cycle":
        div = high / low if isinstance(s.bounds, list) and low < high else 25.0
        return OneCycle(high, max(2, total), warmup_fraction=s.warmup_fraction,
                        div_factor=max(1.0, div))
    raise RecipeError(f"schedule.name: {s.name!r} is not a cyclical schedule.")


def run_range_test(
    recipe: Recipe, run_data: Any, model: keras.Model, *, verbose: int = 0
) -> LRFinderResult:
    """The LR range test on ``model`` with the recipe's optimizer, loss and training data.

    The model is compiled with the recipe's optimizer at a constant rate for the sweep;
    its weights are restored afterwards (compile it again for training).
    """
    s = recipe.schedule
    model.compile(
        optimizer=builders.build_optimizer(recipe, float(recipe.optimizer.learning_rate)),
        loss=builders.build_loss(recipe, run_data),
    )
    return lr_find(
        model, builders.train_dataset(recipe, run_data),
        min_learning_rate=float(s.lr_find_range[0]), max_learning_rate=float(s.lr_find_range[1]),
        num_steps=int(s.lr_find_steps), verbose=verbose,
    )


def write_range_test(result: LRFinderResult, out: Path, *, title: str = "LR range test") -> None:
    """``lr_finder.png``, ``lr_finder.csv`` and ``lr_find.json`` (the suggestion) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result.plot(out / "lr_finder.png", title=title)
    result.to_csv(out / "lr_finder.csv")
    (out / CACHE).write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")


def find_bounds(ctx: Any) -> tuple[float, float] | None:
    """For ``schedule.bounds: from_lr_find``: the suggested ``(low, high)``, else None.

    Runs the range test once per run directory (``plots/lr_find.json`` holds the result, so
    a resumed run keeps its schedule).
    """
    recipe = ctx.recipe
    if recipe.schedule.bounds != "from_lr_find":
        return None
    plots = Path(ctx.out) / "plots"
    cache = plots / CACHE
    if cache.exists():
        summary = json.loads(cache.read_text(encoding="utf-8"))
    else:
        ctx.log("schedule.bounds: from_lr_find — running the LR range test "
                f"({recipe.schedule.lr_find_steps} steps)")
        result = run_range_test(recipe, ctx.data, ctx.model)
        write_range_test(result, plots, title=f"LR range test: {recipe.name}")
        summary = result.summary()
    low, high = summary["initial_learning_rate"], summary["maximal_learning_rate"]
    if low is None or high is None:
        raise RecipeError(
            "schedule.bounds: from_lr_find: the range test diverged before recording enough "
            "steps; lower schedule.lr_find_range or set schedule.bounds: [low, high]."
        )
    ctx.notes.append(
        f"LR range test: steepest descent at {summary['steepest_learning_rate']:.3g}, "
        f"minimum loss at {summary['minimum_learning_rate']:.3g}; bounds "
        f"[{low:.3g}, {high:.3g}] (plots/lr_finder.png)."
    )
    ctx.log(f"LR range test: bounds [{low:.3g}, {high:.3g}]")
    return float(low), float(high)


def peak_rate(recipe: Recipe, found: tuple[float, float] | None) -> float:
    """The rate a constant/cosine schedule peaks at (the found maximum with from_lr_find)."""
    return found[1] if found is not None else recipe.optimizer.learning_rate


def add_callbacks(ctx: Any, log: Callable[[str], None] | None = None) -> None:
    """``schedule.cycle_momentum: true`` → a :class:`CycleMomentum` callback."""
    s = ctx.recipe.schedule
    if not s.cycle_momentum:
        return
    if s.name not in ("cyclical", "one_cycle"):
        raise RecipeError(
            f"schedule.cycle_momentum needs schedule.name cyclical or one_cycle, received {s.name!r}."
        )
    try:
        CycleMomentum.attribute(innermost_optimizer(ctx.model.optimizer))
    except ValueError as err:
        raise RecipeError(f"schedule.cycle_momentum: {err}") from None
    ctx.callbacks.append(CycleMomentum())


"""Stage "optimization": loss, learning-rate schedule, optimizer and AGC of a recipe.

Recipe keys: ``loss`` (cross-entropy or a long-tail loss, docs/long-tail.md; with
``callbacks.drw`` cross-entropy becomes ``LogitAdjustedLoss(tau=0)``, the same loss with
re-weightable classes), ``schedule`` (constant, cosine, cyclical, one_cycle;
``bounds: from_lr_find`` takes the bounds from an LR range test, docs/cyclical-learning-rates.md),
``optimizer`` (a Keras or a registered tenfold optimizer) and ``agc`` (the optimizer wrapped
in :class:`tenfold.optimizers.AGC`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from tenfold import registry
from tenfold.callbacks.lr_finder import LRFinderResult
from tenfold.lr_finder import lr_find
from tenfold.optimizers import AGC
from tenfold.schedules import CyclicalLearningRate, OneCycle
from tenfold.train.files import write_json_atomic
from tenfold.train.recipe import (
    AGCConfig,
    DRWConfig,
    LossConfig,
    OptimizerConfig,
    Recipe,
    RecipeError,
    ScheduleConfig,
    resolve_loss_name,
)

RANGE_TEST_FILE = "lr_find.json"


def build_loss(loss: LossConfig, drw: DRWConfig | None, class_counts: list[int]) -> keras.losses.Loss:
    """The loss of ``loss``; with ``drw`` plain cross-entropy becomes ``LogitAdjustedLoss(tau=0)``."""
    try:
        class_name = resolve_loss_name(loss.name)
    except ValueError as err:
        raise RecipeError(f"loss.name: {err}.") from err
    if class_name is None:
        if loss.options:
            raise RecipeError(f"loss.options: cross_entropy takes none, received {loss.options}.")
        if drw is None:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        class_name, options = "LogitAdjustedLoss", {"tau": 0.0}
    else:
        options = dict(loss.options)
    cls = registry.get("losses", class_name)
    try:
        return cls(class_counts, **options)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"loss: cannot build {loss.name!r} with {loss.options}: {err}") from err


def loss_notes(loss: LossConfig, drw: DRWConfig | None) -> list[str]:
    """What the report says about the loss actually trained."""
    if drw is not None and loss.name == "cross_entropy":
        return ["callbacks.drw with cross_entropy: trained with LogitAdjustedLoss(tau=0), the "
                "same loss with re-weightable classes."]
    return []


def resolved_bounds(
    s: ScheduleConfig, learning_rate: float, found: tuple[float, float] | None
) -> tuple[float, float]:
    """``(low, high)`` of a schedule: explicit, found by the range test, or ``[lr/4, lr]``."""
    if isinstance(s.bounds, list):
        return float(s.bounds[0]), float(s.bounds[1])
    if s.bounds == "from_lr_find":
        if found is None:
            raise RecipeError("schedule.bounds: from_lr_find needs the range test to run first.")
        return found
    return learning_rate / 4.0, learning_rate


def build_schedule(
    s: ScheduleConfig, learning_rate: float, *, epochs: int, steps: int,
    found: tuple[float, float] | None = None,
) -> Any:
    """The learning rate: a float or a Keras LearningRateSchedule (``steps`` per epoch).

    ``found``: the ``(low, high)`` rates of an LR range test (``schedule.bounds: from_lr_find``).
    """
    if s.name in ("cyclical", "one_cycle"):
        return _cyclical(s, learning_rate, epochs=epochs, steps=steps, found=found)
    lr = found[1] if found is not None else learning_rate
    total = steps * epochs
    if s.name == "constant":
        return lr
    warmup = int(round(s.warmup_epochs * steps))
    if warmup >= total:
        raise RecipeError(
            f"schedule.warmup_epochs: {s.warmup_epochs} epochs of warm-up leave no training "
            f"in train.epochs={epochs}."
        )
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, alpha=s.alpha, warmup_target=lr, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(lr, total, alpha=s.alpha)


def _cyclical(
    s: ScheduleConfig, learning_rate: float, *, epochs: int, steps: int,
    found: tuple[float, float] | None,
) -> Any:
    low, high = resolved_bounds(s, learning_rate, found)
    if s.name == "cyclical":
        step_size = max(1, round(s.step_size_epochs * steps))
        return CyclicalLearningRate(low, high, step_size, mode=s.mode, gamma=s.gamma)
    div = high / low if isinstance(s.bounds, list) and low < high else 25.0
    return OneCycle(high, max(2, steps * epochs), warmup_fraction=s.warmup_fraction,
                    div_factor=max(1.0, div))


def build_optimizer(
    o: OptimizerConfig, agc: AGCConfig, learning_rate: Any, *, model: keras.Model | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer of ``o`` at ``learning_rate`` (a float or a schedule), AGC-wrapped by ``agc``.

    ``model``: the model it will train (built); AGC takes its classifier and the unit axes of
    each weight from it (see :func:`wrap_agc`).
    """
    kwargs = dict(o.options)
    if o.weight_decay is not None:
        kwargs["weight_decay"] = o.weight_decay
    names = {n.lower(): n for n in registry.list("optimizers")}
    try:
        if o.name.lower() in names:
            cls = registry.get("optimizers", names[o.name.lower()])
            optimizer = cls(learning_rate=learning_rate, **kwargs)
        else:
            config = {"class_name": o.name, "config": {"learning_rate": learning_rate, **kwargs}}
            if not isinstance(learning_rate, (int, float)):
                config["config"]["learning_rate"] = keras.optimizers.schedules.serialize(learning_rate)
            optimizer = keras.optimizers.get(config)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"optimizer: cannot build {o.name!r} with {kwargs}: {err}") from err
    return wrap_agc(agc, optimizer, model)


def wrap_agc(
    a: AGCConfig, optimizer: keras.optimizers.Optimizer, model: keras.Model | None = None
) -> keras.optimizers.Optimizer:
    """``agc.clipping`` set → the optimizer wrapped in ``tenfold.optimizers.AGC``.

    ``exclude`` is ``["auto", *agc.exclude]``: with ``model``, :meth:`AGC.for_model` resolves
    ``"auto"`` to the exact paths of the model's classifier (the dense layers producing its
    output, found from the graph, whatever their names) and takes each weight's units from
    its layer type (Dense per output unit, ConvND all axes but the last, DepthwiseConv per
    channel); without a model (a sweep before any model exists), AGC's own fallback leaves
    out the last dense layer it is built with.
    """
    if a.clipping is None:
        return optimizer
    try:
        wrapped = AGC(optimizer, clipping=a.clipping, epsilon=a.epsilon, exclude=["auto", *a.exclude])
        return wrapped if model is None else wrapped.for_model(model)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"agc: {err}") from err


def agc_notes(optimizer: keras.optimizers.Optimizer) -> list[str]:
    """The report's line on AGC: λ, ε and the weights left unclipped (none when AGC is off)."""
    if not isinstance(optimizer, AGC):
        return []
    patterns = [optimizer.exclude] if isinstance(optimizer.exclude, str) else list(optimizer.exclude)
    shown = ", ".join(f"`{p}`" for p in patterns) or "none"
    return [f"AGC: clipping {optimizer.clipping:g}, epsilon {optimizer.epsilon:g}, units by layer "
            f"type; left unclipped (regexes on variable.path): {shown}."]


def range_test(
    recipe: Recipe, model: keras.Model, dataset: Any, class_counts: list[int], *, verbose: int = 0
) -> LRFinderResult:
    """The LR range test on ``model`` with the recipe's optimizer, loss and training ``dataset``.

    The model is compiled with the recipe's optimizer at a constant rate for the sweep;
    its weights are restored afterwards (compile it again for training).
    """
    s = recipe.schedule
    model.compile(
        optimizer=build_optimizer(recipe.optimizer, recipe.agc, float(recipe.optimizer.learning_rate),
                                  model=model),
        loss=build_loss(recipe.loss, recipe.callbacks.drw, class_counts),
    )
    return lr_find(
        model, dataset, min_learning_rate=float(s.lr_find_range[0]),
        max_learning_rate=float(s.lr_find_range[1]), num_steps=int(s.lr_find_steps),
        verbose=verbose,
    )


def write_range_test(result: LRFinderResult, out: Path, *, title: str = "LR range test") -> None:
    """``lr_finder.png``, ``lr_finder.csv`` and ``lr_find.json`` (the suggestion) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result.plot(out / "lr_finder.png", title=title)
    result.to_csv(out / "lr_finder.csv")
    write_json_atomic(out / RANGE_TEST_FILE, result.summary())


def found_bounds(
    recipe: Recipe, model: keras.Model, dataset: Callable[[], Any], class_counts: list[int],
    cached: Path | None, log: Callable[[str], None],
) -> tuple[tuple[float, float] | None, list[str], LRFinderResult | None]:
    """For ``schedule.bounds: from_lr_find``: the suggested ``(low, high)``, a note and the
    range test run (None when read from ``cached``); else ``(None, [], None)``.

    ``dataset`` makes a training dataset of its own for the sweep (so the training one
    starts fresh). ``cached``: the ``plots/`` folder of an interrupted run, whose
    ``lr_find.json`` a resumed run reuses (so it keeps its schedule).
    """
    if recipe.schedule.bounds != "from_lr_find":
        return None, [], None
    result = None
    if cached is not None and (cached / RANGE_TEST_FILE).exists():
        summary = json.loads((cached / RANGE_TEST_FILE).read_text(encoding="utf-8"))
    else:
        log(f"schedule.bounds: from_lr_find — running the LR range test "
            f"({recipe.schedule.lr_find_steps} steps)")
        result = range_test(recipe, model, dataset(), class_counts)
        summary = result.summary()
    low, high = summary["initial_learning_rate"], summary["maximal_learning_rate"]
    if low is None or high is None:
        raise RecipeError(
            "schedule.bounds: from_lr_find: the range test diverged before recording enough "
            "steps; lower schedule.lr_find_range or set schedule.bounds: [low, high]."
        )
    log(f"LR range test: bounds [{low:.3g}, {high:.3g}]")
    note = (f"LR range test: steepest descent at {summary['steepest_learning_rate']:.3g}, "
            f"minimum loss at {summary['minimum_learning_rate']:.3g}; bounds "
            f"[{low:.3g}, {high:.3g}] (plots/lr_finder.png).")
    return (float(low), float(high)), [note], result

"""Benchmark ``schedules``: a triangular CLR with bounds from ``lr_find`` vs the best fixed rate.

Smith 2017 (https://arxiv.org/abs/1506.01186, table 1) counts the iterations a cyclical
schedule needs to reach the accuracy of the best fixed learning rate (2.8× fewer on
CIFAR-10). Here, on digits with a small CNN and SGD + momentum 0.9, for seven seeds (the
issue asks for at least three; with three, the per-seed ratios' IQR straddled the goal):

* A: every rate of a small grid, fixed; the best one (highest median final accuracy)
  is the baseline;
* B: ``tenfold.lr_find`` on the same initial model, then a triangular
  ``CyclicalLearningRate`` between the suggested bounds (step sizes 2 and 4 epochs).

Test accuracy is measured every ``eval_every`` iterations. The target is the best fixed
rate's final accuracy minus half a point (Smith's "same accuracy" with room for evaluation
noise), the same for both. Counted as iterations, not seconds: the schedule costs nothing
per step.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    digits,
    figure,
    hline,
    line,
    ratio_row,
)
from tenfold.lr_finder import lr_find
from tenfold.schedules import CyclicalLearningRate

BATCH = 32
MOMENTUM = 0.9
# CLR half-cycle lengths in epochs: the low end of Smith's recommended 2-10, and 4
STEP_SIZES = (2, 4)
# seven seeds: with three, the interquartile range of the per-seed ratios (0.57-0.76)
# straddled the goal, so three could not decide it
SEEDS = 7


def _model(input_shape: tuple[int, ...], num_classes: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs)


def _compile(model: keras.Model, learning_rate: Any) -> None:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


class _Curve(keras.callbacks.Callback):
    """Test accuracy every ``every`` iterations (one Keras 'epoch' = ``every`` steps)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, every: int) -> None:
        super().__init__()
        self.x, self.y, self.every = x, y, every
        self.points: list[tuple[int, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # a direct call: model.predict costs ~0.3 s of set-up per call on this machine
        logits = keras.ops.convert_to_numpy(self.model(self.x, training=False))
        self.points.append(((epoch + 1) * self.every, float(np.mean(logits.argmax(-1) == self.y))))


def _train(splits: Any, seed: int, learning_rate: Any, iterations: int, every: int,
           model: keras.Model | None = None) -> list[tuple[int, float]]:
    tf = tensorflow("the schedules benchmark")
    if model is None:
        model = _model(splits.input_shape, splits.num_classes, seed)
    _compile(model, learning_rate)
    ds = tf.data.Dataset.from_tensor_slices((splits.x_train, splits.y_train.astype("int32")))
    ds = ds.shuffle(len(splits.y_train), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat().batch(BATCH)
    curve = _Curve(splits.x_test, splits.y_test, every)
    model.fit(ds, steps_per_epoch=every, epochs=iterations // every, callbacks=[curve],
              verbose=0, shuffle=False)
    return curve.points


def iterations_to(points: list[tuple[int, float]], target: float) -> float:
    """First iteration whose accuracy reaches ``target`` (inf when never)."""
    for iteration, accuracy in points:
        if accuracy >= target - 1e-12:
            return float(iteration)
    return float("inf")


def _final(points: list[tuple[int, float]], k: int = 3) -> float:
    """Final accuracy: mean of the last ``k`` evaluations (less noisy than the last one)."""
    return float(np.mean([a for _, a in points[-k:]]))


Runs = list[list[tuple[int, float]]]  # one accuracy curve per seed


def _plot(ctx: BenchContext, curves: dict[str, Runs], target: float) -> str:
    series = []
    for (label, runs), color in zip(curves.items(), ("C0", "C3", "C1", "C2")):
        for i, points in enumerate(runs):
            it, acc = zip(*points)
            series.append(line(it, acc, label if i == 0 else None, color=color,
                               alpha=0.9 if i == 0 else 0.45, lw=1.3))
    series.append(hline(target, f"target {target:.3f}", color="0.4", ls="--", lw=0.8))
    panel = Panel(series, title="digits, small CNN, SGD + momentum 0.9 (one line per seed)",
                  xlabel="iteration", ylabel="test accuracy", ylim=(max(0.5, target - 0.25), 1.0),
                  legend={"fontsize": 8, "loc": "lower right"})
    return figure(ctx.out_dir / "schedules.png", [panel], size=(7, 4.2))


def _seed_runs(ctx: BenchContext, seed: int, grid: list[float], iterations: int,
               every: int) -> tuple[dict[float, Any], dict[int, Any], tuple[float, float], int]:
    """One seed: a curve per fixed rate, lr_find's bounds, a CLR curve per step size."""
    splits = digits(seed)
    steps_per_epoch = int(np.ceil(len(splits.y_train) / BATCH))
    fixed = {}
    for lr in grid:
        ctx.log(f"schedules: seed {seed}, fixed lr {lr}")
        fixed[lr] = _train(splits, seed, float(lr), iterations, every)
    ctx.log(f"schedules: seed {seed}, lr_find + CLR")
    model = _model(splits.input_shape, splits.num_classes, seed)
    _compile(model, 0.01)
    found = lr_find(model, splits.x_train, splits.y_train.astype("int32"), batch_size=BATCH,
                    min_learning_rate=1e-5, max_learning_rate=10.0, num_steps=100)
    low, high = found.bounds
    initial = model.get_weights()  # lr_find restored them
    cyclic = {}
    for epochs_per_step in STEP_SIZES:
        schedule = CyclicalLearningRate(low, high, epochs_per_step * steps_per_epoch)
        # the same initial weights, a fresh optimizer
        fresh = _model(splits.input_shape, splits.num_classes, seed)
        fresh.set_weights(initial)
        cyclic[epochs_per_step] = _train(splits, seed, schedule, iterations, every, model=fresh)
    return fixed, cyclic, (low, high), steps_per_epoch


def _rows(fixed: dict[float, Runs], cyclic: dict[int, Runs], best: float, target: float) -> list[dict[str, Any]]:
    base = f"fixed lr {best:g}"
    a = [iterations_to(p, target) for p in fixed[best]]
    final_a = [_final(p) for p in fixed[best]]
    rows = []
    for k in STEP_SIZES:
        label = f"CLR, step {k} epochs"
        b = [iterations_to(p, target) for p in cyclic[k]]
        rows.append(ratio_row(
            f"iterations to test accuracy {target:.3f} (best fixed rate's final − 0.5 pt)",
            {base: a, label: b}, base, label, unit="it",
            goal="≤ 0.667 (≥ 1.5× fewer)", goal_met=lambda r: r <= 1 / 1.5, lower_is_better=True,
        ))
        rows.append(ratio_row(
            "final test accuracy (mean of last 3 evaluations)",
            {base: final_a, label: [_final(p) for p in cyclic[k]]}, base, label, unit="",
            goal="≥ 1.0", goal_met=lambda r: r >= 1.0 - 1e-9, lower_is_better=False,
        ))
    return rows


def _table(fixed: dict[float, Runs], cyclic: dict[int, Runs], finals: dict[float, float], best: float,
           target: float, found: list[tuple[float, float]]) -> str:
    lines = ["| learning rate | median final accuracy | iterations to target (per seed) |",
             "|---|---|---|"]
    for lr, runs in fixed.items():
        its = ", ".join(f"{iterations_to(p, target):.0f}" for p in runs)
        lines.append(f"| fixed {lr:g}{' (best)' if lr == best else ''} | {finals[lr]:.4f} | {its} |")
    bounds = ", ".join(f"{lo:.3g}–{hi:.3g}" for lo, hi in found)
    for k in STEP_SIZES:
        its = ", ".join(f"{iterations_to(p, target):.0f}" for p in cyclic[k])
        median_final = float(np.median([_final(p) for p in cyclic[k]]))
        lines.append(f"| CLR step {k} epochs [{bounds}] | {median_final:.4f} | {its} |")
    return "\n".join(lines)


def _notes(seeds: int, iterations: int, every: int, steps_per_epoch: int) -> list[str]:
    return [
        (
            f"{seeds} seed(s) (split, initial weights, batch order); {iterations} "
            f"iterations of batch {BATCH}; test accuracy every {every} iterations; CLR step "
            f"sizes {' and '.join(map(str, STEP_SIZES))} epochs (Smith recommends 2-10; one "
            f"epoch is {steps_per_epoch} iterations), bounds per seed from lr_find "
            "(100 steps, 1e-5 → 10) on the same initial weights. The ratio column is the "
            "median of the per-seed ratios."
        ),
        (
            "inf = never reached within the budget. Iterations, not time: the schedule adds "
            "no per-step cost; lr_find's 100 steps are not counted (add them to B to be "
            "strict)."
        ),
        (
            "The suggestion rule used here (upper bound = geometric middle of steepest "
            "descent and minimum/10) was chosen after a first full run with bounds "
            "[minimum/10, steepest], whose CLR diverged and never reached the target; "
            "docs/cyclical-learning-rates.md has that run's figures."
        ),
    ]


@benchmark(
    "schedules",
    "iterations to the best fixed rate's accuracy: triangular CLR with lr_find bounds vs the "
    "best fixed rate of a grid (goal ≥ 1.5× fewer)",
)
def run(ctx: BenchContext) -> BenchResult:
    if ctx.quick:
        seeds, grid, iterations, every = [0], [0.01, 0.1], 340, 17
    else:
        seeds, grid, iterations, every = list(range(SEEDS)), [0.003, 0.01, 0.03, 0.1, 0.3], 1360, 17
    fixed: dict[float, Runs] = {lr: [] for lr in grid}
    cyclic: dict[int, Runs] = {k: [] for k in STEP_SIZES}
    found: list[tuple[float, float]] = []
    for seed in seeds:
        fixed_seed, cyclic_seed, bounds, steps_per_epoch = _seed_runs(ctx, seed, grid, iterations, every)
        for lr in grid:
            fixed[lr].append(fixed_seed[lr])
        for k in STEP_SIZES:
            cyclic[k].append(cyclic_seed[k])
        found.append(bounds)
    # the best fixed rate: highest median final accuracy over the seeds
    finals = {lr: float(np.median([_final(p) for p in runs])) for lr, runs in fixed.items()}
    best = max(grid, key=lambda lr: finals[lr])
    target = finals[best] - 0.005
    plot = _plot(ctx, {f"fixed lr {best:g} (best of grid)": fixed[best],
                       **{f"triangular CLR, step {k} epochs": cyclic[k] for k in STEP_SIZES}}, target)
    return BenchResult(
        rows=_rows(fixed, cyclic, best, target), tables=[_table(fixed, cyclic, finals, best, target, found)],
        plots=[plot], notes=_notes(len(seeds), iterations, every, steps_per_epoch),
    )

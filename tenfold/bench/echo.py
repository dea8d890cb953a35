"""Benchmark ``echo``: data echoing when the input pipeline is R ≈ 4× slower than a step.

The upstream stage is a deliberate costly map (a sleep standing for reading and decoding,
so it does not take CPU from the training step) that makes one upstream batch cost about
R times a training step. Echoing after it repeats each example e times (with a shuffle
buffer); the goal (Choi et al. 2019) is steps/s ≥ 0.8·min(e, R) times the plain pipeline's,
and at an equal wall-clock budget a test accuracy no lower than the plain pipeline's
minus one point.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from tenfold import models
from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    bar,
    benchmark,
    digits,
    figure,
    interleave,
    line,
    ratio_row,
)
from tenfold.data import echo

R_TARGET = 4.0
FACTORS = (1, 2, 4)
BATCH = 64
SKIP = 10  # the first steps drain what the buffers gathered: not steady state


def _model(input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = models.small_resnet(input_shape, num_classes, width=16, blocks=(1, 1, 1))
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _pipeline(x: np.ndarray, y: np.ndarray, delay: float, factor: int, seed: int) -> Any:
    tf = tensorflow("the echo benchmark")

    def slow(xb: Any, yb: Any) -> Any:
        def wait(t: Any) -> Any:
            if delay:
                time.sleep(delay)
            return t

        xb = tf.py_function(wait, [xb], tf.float32)
        xb.set_shape([None, *x.shape[1:]])
        # light augmentation: a random sign-preserving brightness jitter
        xb = xb * tf.random.uniform([tf.shape(xb)[0], 1, 1, 1], 0.9, 1.1)
        return xb, yb

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).repeat()
    ds = ds.batch(BATCH).map(slow, num_parallel_calls=1).unbatch()
    if factor > 1:
        ds = ds.apply(echo(factor, shuffle_buffer=4 * BATCH, seed=seed))
    return ds.batch(BATCH).prefetch(2)


def _step_time(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    tf = tensorflow("the echo benchmark")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(BATCH).cache().prefetch(4)
    model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=30, epochs=1, verbose=0)
        times.append((time.perf_counter() - start) / 30)
    return float(np.median(times))


def _steps_per_second(model: Any, dataset: Any, steps: int) -> float:
    """Training steps per second on ``dataset`` after ``SKIP`` untimed steps."""
    it = iter(dataset)
    for i in range(SKIP + steps):
        if i == SKIP:
            begin = time.perf_counter()
        xb, yb = next(it)
        model.train_on_batch(xb, yb)
    return steps / (time.perf_counter() - begin)


def _speed(ctx: BenchContext, splits: Any, delay: float) -> tuple[list[dict[str, Any]], float]:
    """Rows of steps/s of each factor over the plain pipeline, and the measured R."""
    x, y, steps = splits.x_train, splits.y_train, 30 if ctx.quick else 60
    trained = {e: _model(splits.input_shape, splits.num_classes, ctx.seed) for e in FACTORS}
    # "no wait": the same loop without the wait, the speed of the step itself, so R is
    # measured in the same rounds (the machine's load changes during a run)
    variants = {"no wait": lambda: _steps_per_second(trained[1], _pipeline(x, y, 0.0, 1, ctx.seed), steps)}
    for e in FACTORS:
        variants[f"e={e}"] = lambda e=e: _steps_per_second(trained[e], _pipeline(x, y, delay, e, ctx.seed), steps)
    samples = interleave(variants, repeats=2 if ctx.quick else 4, warmup=1)
    r_measured = float(np.median(np.asarray(samples["no wait"]) / np.asarray(samples["e=1"])))
    rows = []
    for e in FACTORS[1:]:
        goal = 0.8 * min(e, r_measured)
        rows.append(ratio_row(
            f"steps/s, echo {e} vs 1 (R={r_measured:.1f})", samples, "e=1", f"e={e}", unit="steps/s",
            goal=f">= {goal:.2f}", goal_met=lambda v, g=goal: v >= g, lower_is_better=False,
        ))
    return rows, r_measured


class _Budget:
    """A Keras callback that stops training when the wall-clock budget is spent."""

    def __new__(cls, seconds: float) -> Any:
        class Budget(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.start = time.perf_counter()
                self.steps = 0

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self.steps += 1
                if self.steps == 1:  # the clock starts after tracing the train step
                    self.start = time.perf_counter()
                elif time.perf_counter() - self.start > seconds:
                    self.model.stop_training = True

        return Budget()


def _equal_budget(ctx: BenchContext, splits: Any, delay: float, budget: float) -> dict[int, tuple[int, int, float]]:
    """Per factor: steps, fresh examples read and test accuracy after ``budget`` seconds."""
    out = {}
    for e in FACTORS:
        model = _model(splits.input_shape, splits.num_classes, ctx.seed)
        echoing = echo(e, shuffle_buffer=4 * BATCH, seed=ctx.seed) if e > 1 else None
        ds = _pipeline(splits.x_train, splits.y_train, delay, 1, ctx.seed)
        if echoing is not None:
            ds = ds.unbatch().apply(echoing).batch(BATCH).prefetch(2)
        stopper = _Budget(budget)
        model.fit(ds, steps_per_epoch=100000, epochs=1, verbose=0, callbacks=[stopper])
        accuracy = float(model.evaluate(splits.x_test, splits.y_test, verbose=0)[1])
        fresh = echoing.fresh_examples if echoing is not None else stopper.steps * BATCH
        out[e] = (stopper.steps, fresh, accuracy)
    return out


def _budget_table(budget: float, used: dict[int, tuple[int, int, float]]) -> str:
    lines = [
        f"Equal wall-clock budget of {budget:.0f} s per factor, after the first step (digits, small ResNet, batch {BATCH}):",
        "",
        "| echo factor | steps | fresh examples read | test accuracy |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e} | {steps} | {fresh} | {100 * acc:.1f}% |" for e, (steps, fresh, acc) in used.items()]
    return "\n".join(lines)


def _notes(step: float, delay: float, r_measured: float, used: dict[int, tuple[int, int, float]]) -> list[str]:
    notes = [f"training step {step * 1e3:.1f} ms when calibrating; upstream batch {delay * 1e3:.1f} ms; "
             f"R measured in the timed rounds (steps/s without the wait ÷ with it, echo 1) = {r_measured:.2f}"]
    plain = used[1][2]
    for e in FACTORS[1:]:
        acc = used[e][2]
        notes.append(f"echo {e}: accuracy {100 * acc:.1f}% vs {100 * plain:.1f}% at e=1 "
                     f"(goal ≥ e=1 − 1 point: {'met' if acc >= plain - 0.01 else 'not met'})")
    return notes


def _plot(ctx: BenchContext, ratios: list[float], accuracies: list[float], r: float) -> str:
    factors = list(FACTORS)
    speed = Panel([line(factors, ratios, "measured", marker="o"),
                   line(factors, [min(e, r) for e in factors], "ideal min(e, R)", color="k", ls="--"),
                   line(factors, [0.8 * min(e, r) for e in factors], "goal 0.8·min(e, R)", color="grey", ls=":")],
                  title=f"training speed, pipeline R ≈ {r:.1f}", xlabel="echo factor e",
                  ylabel="steps/s ÷ steps/s at e = 1")
    percent = [100 * v for v in accuracies]
    accuracy = Panel([bar([str(e) for e in factors], percent, color="tab:green")],
                     title="equal wall-clock budget", xlabel="echo factor e", ylabel="test accuracy (%)",
                     ylim=(min(percent) - 5, 100))
    return figure(ctx.out_dir / "echo.png", [speed, accuracy], size=(9, 3.6))


@benchmark("echo", "Data echoing: steps/s and accuracy at equal wall time when the input pipeline is ~4x slower than a step")
def run(ctx: BenchContext) -> BenchResult:
    splits = digits(ctx.seed)
    step = _step_time(_model(splits.input_shape, splits.num_classes, ctx.seed), splits.x_train, splits.y_train)
    delay = R_TARGET * step  # one upstream batch costs R steps
    ctx.log(f"echo: training step {step * 1e3:.1f} ms, upstream batch {delay * 1e3:.1f} ms")
    rows, r_measured = _speed(ctx, splits, delay)
    budget = 10.0 if ctx.quick else 40.0
    used = _equal_budget(ctx, splits, delay, budget)
    ratios = [1.0] + [r["ratio"] for r in rows]
    plot = _plot(ctx, ratios, [used[e][2] for e in FACTORS], r_measured)
    return BenchResult(
        description=(
            "Data echoing (Choi et al. 2019) after a deliberately slow upstream stage "
            f"(R ≈ {R_TARGET:.0f}× a training step). A = the plain pipeline (echo factor 1), "
            "B = `tenfold.data.echo(e, shuffle_buffer=256)`."
        ),
        rows=rows, tables=[_budget_table(budget, used)], plots=[plot],
        notes=_notes(step, delay, r_measured, used),
    )

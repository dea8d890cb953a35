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
from pathlib import Path
from typing import Any

import numpy as np

from tenfold._plot import pyplot, save_figure
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row

R_TARGET = 4.0
FACTORS = (1, 2, 4)
BATCH = 64


def _model(input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
    import keras

    import tenfold

    keras.utils.set_random_seed(seed)
    model = tenfold.models.small_resnet(input_shape, num_classes, width=16, blocks=(1, 1, 1))
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _pipeline(x: np.ndarray, y: np.ndarray, delay: float, factor: int, seed: int) -> Any:
    import tensorflow as tf

    import tenfold

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
        ds = ds.apply(tenfold.data.echo(factor, shuffle_buffer=4 * BATCH, seed=seed))
    return ds.batch(BATCH).prefetch(2)


def _step_time(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(BATCH).cache().prefetch(4)
    model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=30, epochs=1, verbose=0)
        times.append((time.perf_counter() - start) / 30)
    return float(np.median(times))


class _Budget:
    """A Keras callback that stops training when the wall-clock budget is spent."""

    def __new__(cls, seconds: float) -> Any:
        import keras

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


def _plot(path: Path, factors: list[int], ratios: list[float], accuracies: list[float], r: float) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot(factors, ratios, "o-", label="measured")
    a.plot(factors, [min(e, r) for e in factors], "k--", label="ideal min(e, R)")
    a.plot(factors, [0.8 * min(e, r) for e in factors], ":", color="grey", label="goal 0.8·min(e, R)")
    a.set_xlabel("echo factor e")
    a.set_ylabel("steps/s ÷ steps/s at e = 1")
    a.set_title(f"training speed, pipeline R ≈ {r:.1f}")
    a.legend()
    b.bar([str(e) for e in factors], [100 * v for v in accuracies], color="tab:green")
    b.set_ylim(min(100 * v for v in accuracies) - 5, 100)
    b.set_xlabel("echo factor e")
    b.set_ylabel("test accuracy (%)")
    b.set_title("equal wall-clock budget")
    save_figure(fig, path)


@benchmark("echo", "Data echoing: steps/s and accuracy at equal wall time when the input pipeline is ~4x slower than a step")
def run(ctx: BenchContext) -> BenchResult:
    import tenfold
    from tenfold.env import environment

    start_all = time.perf_counter()
    splits = tenfold.data.load("digits", seed=ctx.seed)
    x, y = splits.x_train, splits.y_train
    model0 = _model(splits.input_shape, splits.num_classes, ctx.seed)
    step = _step_time(model0, x, y)
    delay = R_TARGET * step  # one upstream batch costs R steps
    ctx.log(f"echo: training step {step * 1e3:.1f} ms, upstream batch {delay * 1e3:.1f} ms")
    steps = 30 if ctx.quick else 60
    skip = 10  # the first steps drain what the buffers gathered: not steady state
    models = {e: _model(splits.input_shape, splits.num_classes, ctx.seed) for e in FACTORS}

    def runner(e: int) -> Any:
        def go() -> float:
            model = models[e]
            it = iter(_pipeline(x, y, delay, e, ctx.seed))
            for i in range(skip + steps):
                if i == skip:
                    begin = time.perf_counter()
                xb, yb = next(it)
                model.train_on_batch(xb, yb)
            return steps / (time.perf_counter() - begin)

        return go

    def unbound() -> float:
        # the same loop on a pipeline without the wait: the speed of the step itself, so R
        # is measured in the same rounds (the machine's load changes during a run)
        model = models[1]
        it = iter(_pipeline(x, y, 0.0, 1, ctx.seed))
        for i in range(skip + steps):
            if i == skip:
                begin = time.perf_counter()
            xb, yb = next(it)
            model.train_on_batch(xb, yb)
        return steps / (time.perf_counter() - begin)

    variants = {"no wait": unbound, **{f"e={e}": runner(e) for e in FACTORS}}
    samples = interleave(variants, repeats=2 if ctx.quick else 4, warmup=1)
    # the measured R: the step's own speed over the plain pipeline's, per round
    r_measured = float(np.median(np.asarray(samples["no wait"]) / np.asarray(samples["e=1"])))
    rows = []
    for e in FACTORS[1:]:
        goal = 0.8 * min(e, r_measured)
        rows.append(ratio_row(
            f"steps/s, echo {e} vs 1 (R={r_measured:.1f})", samples, "e=1", f"e={e}", unit="steps/s",
            goal=f">= {goal:.2f}", goal_met=lambda v, g=goal: v >= g, lower_is_better=False,
        ))

    # equal wall-clock budget: train each for the same seconds, compare test accuracy
    budget = 10.0 if ctx.quick else 40.0
    accuracy: dict[int, float] = {}
    used: dict[int, tuple[int, int]] = {}
    for e in FACTORS:
        model = _model(splits.input_shape, splits.num_classes, ctx.seed)
        echo = tenfold.data.echo(e, shuffle_buffer=4 * BATCH, seed=ctx.seed) if e > 1 else None
        ds = _pipeline(x, y, delay, 1, ctx.seed)
        if echo is not None:
            ds = ds.unbatch().apply(echo).batch(BATCH).prefetch(2)
        stopper = _Budget(budget)
        model.fit(ds, steps_per_epoch=100000, epochs=1, verbose=0, callbacks=[stopper])
        accuracy[e] = float(model.evaluate(splits.x_test, splits.y_test, verbose=0)[1])
        used[e] = (stopper.steps, echo.fresh_examples if echo is not None else stopper.steps * BATCH)
    table = [
        f"Equal wall-clock budget of {budget:.0f} s per factor, after the first step (digits, small ResNet, batch {BATCH}):",
        "",
        "| echo factor | steps | fresh examples read | test accuracy |",
        "|---|---|---|---|",
    ]
    for e in FACTORS:
        table.append(f"| {e} | {used[e][0]} | {used[e][1]} | {100 * accuracy[e]:.1f}% |")
    acc_rows = []
    for e in FACTORS[1:]:
        met = accuracy[e] >= accuracy[1] - 0.01
        acc_rows.append(f"echo {e}: accuracy {100 * accuracy[e]:.1f}% vs {100 * accuracy[1]:.1f}% at e=1 "
                        f"(goal ≥ e=1 − 1 point: {'met' if met else 'not met'})")
    ratios = [1.0] + [r["ratio"] for r in rows]
    plot = ctx.out_dir / "echo.png"
    _plot(plot, list(FACTORS), ratios, [accuracy[e] for e in FACTORS], r_measured)
    return BenchResult(
        name="echo",
        description=(
            "Data echoing (Choi et al. 2019) after a deliberately slow upstream stage "
            f"(R ≈ {R_TARGET:.0f}× a training step). A = the plain pipeline (echo factor 1), "
            "B = `tenfold.data.echo(e, shuffle_buffer=256)`."
        ),
        rows=rows,
        tables=["\n".join(table)],
        plots=[str(plot)],
        notes=[
            f"training step {step * 1e3:.1f} ms when calibrating; upstream batch {delay * 1e3:.1f} ms; "
            f"R measured in the timed rounds (steps/s without the wait ÷ with it, echo 1) = {r_measured:.2f}",
            *acc_rows,
        ],
        env=environment(),
        quick=ctx.quick,
        seconds=time.perf_counter() - start_all,
    )

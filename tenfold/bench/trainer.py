"""Benchmark of the trainer itself: its loop overhead against a hand-written ``model.fit``.

It and the ``xla`` benchmark (``tenfold/bench/xla.py``, which uses this module's helpers) build the run with :func:`tenfold.train.build.build`, the one ``build`` of
``tenfold train`` and ``tenfold lr-find``, so they measure the model, optimizer and input
pipeline the trainer really uses.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from tenfold._tf import tensorflow
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row
from tenfold.train.build import Run, build
from tenfold.train.fit import fit
from tenfold.train.optimization import build_optimizer, build_schedule
from tenfold.train.recipe import Recipe, load_recipe


def quiet(line: str) -> None:
    """A log that drops the trainer's lines (the benchmark prints its own)."""


def balanced_recipe(epochs: int) -> Recipe:
    # balanced digits, no augmentation: the same data a hand-written loop would use
    return load_recipe("default", [
        "data.imbalance_factor=null", "data.augment.random_translation=0",
        f"train.epochs={epochs}", "train.verbose=0",
    ])


def plain_fit(built: Run, *, jit_compile: Any = "auto") -> Callable[[], float]:
    """A hand-written Keras loop on the built model: same optimizer and batches, plain
    cross-entropy, no callbacks; returns steps/s."""
    tf = tensorflow("the trainer benchmark")
    recipe, steps, s = built.recipe, built.steps_per_epoch, built.data.splits
    schedule = build_schedule(recipe.schedule, recipe.optimizer.learning_rate,
                              epochs=recipe.train.epochs, steps=steps)
    built.model.compile(
        optimizer=build_optimizer(recipe.optimizer, recipe.agc, schedule, model=built.model),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=jit_compile,
    )
    ds = tf.data.Dataset.from_tensor_slices((s.x_train, s.y_train.astype("int32")))
    ds = ds.shuffle(len(s.y_train), seed=recipe.seed).batch(recipe.data.batch_size).prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((s.x_val, s.y_val.astype("int32"))).batch(256)

    def go() -> float:
        start = time.perf_counter()
        built.model.fit(ds, validation_data=val, epochs=recipe.train.epochs, verbose=0)
        return recipe.train.epochs * steps / (time.perf_counter() - start)

    return go


def sizes(ctx: BenchContext) -> tuple[int, int]:
    """(epochs per repetition, repetitions)."""
    return (2, 3) if ctx.quick else (3, 7)


@benchmark("trainer-overhead", "steps/s of tenfold train's loop vs a hand-written model.fit (goal ≥ 0.95)")
def run(ctx: BenchContext) -> BenchResult:
    epochs, repeats = sizes(ctx)
    recipe = balanced_recipe(epochs)
    tmp = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    trained = build(recipe, tmp / "run", log=quiet)
    trained.out.mkdir(parents=True, exist_ok=True)

    def trainer() -> float:
        start = time.perf_counter()
        fit(trained, resume_epoch=None, log=quiet)
        return recipe.train.epochs * trained.steps_per_epoch / (time.perf_counter() - start)

    plain = plain_fit(build(recipe, tmp / "plain", log=quiet))
    samples = interleave({"model.fit": plain, "tenfold train": trainer}, repeats=repeats, warmup=1)
    row = ratio_row(
        "training steps/s (default model, balanced digits)", samples, "model.fit", "tenfold train",
        unit="steps/s", goal="≥ 0.95", goal_met=lambda r: r >= 0.95, lower_is_better=False,
    )
    return BenchResult(rows=[row], notes=[
        f"{epochs} epochs of {trained.steps_per_epoch} steps per repetition, {repeats} "
        "repetitions after one warm-up, interleaved; the trainer's loop includes its "
        "per-epoch checkpoint, history CSV and TensorBoard logging.",
    ])

"""Benchmarks of the trainer itself: its loop overhead, and XLA on the default model."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from tenfold._tf import tensorflow
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row
from tenfold.train import builders, run
from tenfold.train.recipe import Recipe, load_recipe


def _balanced_recipe(epochs: int) -> Recipe:
    # balanced digits, no augmentation: the same data a hand-written loop would use
    return load_recipe("default", [
        "data.imbalance_factor=null", "data.augment.random_translation=0",
        f"train.epochs={epochs}", "train.verbose=0",
    ])


def _plain_fit(recipe: Recipe, run_data: builders.RunData, *, jit_compile: Any = "auto") -> Callable[[], float]:
    """A hand-written Keras loop: same model, optimizer, loss and batches; returns steps/s."""
    tf = tensorflow("the trainer benchmark")
    model = builders.build_model(recipe, run_data)
    steps = builders.steps_per_epoch(recipe, run_data)
    model.compile(
        optimizer=builders.build_optimizer(recipe, builders.build_schedule(recipe, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=jit_compile,
    )
    s = run_data.splits
    ds = tf.data.Dataset.from_tensor_slices((s.x_train, s.y_train.astype("int32")))
    ds = ds.shuffle(len(s.y_train), seed=recipe.seed).batch(recipe.data.batch_size).prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((s.x_val, s.y_val.astype("int32"))).batch(256)

    def go() -> float:
        start = time.perf_counter()
        model.fit(ds, validation_data=val, epochs=recipe.train.epochs, verbose=0)
        return recipe.train.epochs * steps / (time.perf_counter() - start)

    return go


@benchmark("trainer-overhead", "steps/s of tenfold train's loop vs a hand-written model.fit (goal ≥ 0.95)")
def trainer_overhead(ctx: BenchContext) -> BenchResult:
    epochs, repeats = (2, 3) if ctx.quick else (3, 7)
    recipe = _balanced_recipe(epochs)
    tmp = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    context = run.build_context(recipe, tmp / "run", log=lambda s: None)
    context.out.mkdir(parents=True, exist_ok=True)

    def trainer() -> float:
        start = time.perf_counter()
        run.fit(context, resume_epoch=None)
        return recipe.train.epochs * context.steps_per_epoch / (time.perf_counter() - start)

    samples = interleave(
        {"model.fit": _plain_fit(recipe, context.data), "tenfold train": trainer},
        repeats=repeats, warmup=1,
    )
    row = ratio_row(
        "training steps/s (default model, balanced digits)", samples, "model.fit", "tenfold train",
        unit="steps/s", goal="≥ 0.95", goal_met=lambda r: r >= 0.95, lower_is_better=False,
    )
    return BenchResult(
        "trainer-overhead", trainer_overhead.description, rows=[row],
        notes=[
            f"{epochs} epochs of {context.steps_per_epoch} steps per repetition, {repeats} "
            "repetitions after one warm-up, interleaved; the trainer's loop includes its "
            "per-epoch checkpoint (BackupAndRestore), history CSV and TensorBoard logging.",
        ],
    )


@benchmark("xla", "jit_compile on vs off for the default model (report only)")
def xla(ctx: BenchContext) -> BenchResult:
    epochs, repeats = (2, 3) if ctx.quick else (3, 7)
    recipe = _balanced_recipe(epochs)
    run_data = builders.build_data(recipe)
    samples = interleave(
        {
            "jit_compile=False": _plain_fit(recipe, run_data, jit_compile=False),
            "jit_compile=True": _plain_fit(recipe, run_data, jit_compile=True),
        },
        repeats=repeats, warmup=1,
    )
    row = ratio_row(
        "training steps/s (default model)", samples, "jit_compile=False", "jit_compile=True",
        unit="steps/s", lower_is_better=False,
    )
    return BenchResult(
        "xla", xla.description, rows=[row],
        notes=["Keras' jit_compile='auto' turns XLA off on CPUs; this forces it on to show what it would give."],
    )

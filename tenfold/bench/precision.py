"""Benchmark ``precision``: training throughput of mixed precision and XLA against float32.

Variants, each a fresh model from the same initial weights, timed in turns:
``float32`` (A), ``mixed_bfloat16`` (Keras policy), ``grappler`` (TensorFlow's oneDNN
bfloat16 rewrite of the float32 graph on a CPU, ``auto_mixed_precision`` on a GPU), and the
float32 / mixed_bfloat16 steps compiled with XLA. Goal on CPUs with avx512_bf16: ≥ 1.5×
the float32 throughput, with the final training loss within 2 % of float32's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tenfold import models, precision
from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    figure,
    grouped_bars,
    hline,
    interleave,
    ratio_row,
    synthetic,
)
from tenfold.env import cpu_flags

VARIANTS = {
    # name: (configure policy, jit_compile)
    "float32": ("float32", False),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "grappler": ("grappler", False),
    "float32+XLA": ("float32", True),
    "mixed_bfloat16+XLA": ("mixed_bfloat16", True),
}


def _resnet(norm: str = "bn") -> Callable[[], Any]:
    """A builder of the default model (small ResNet, 32×32×3, width 32) with ``norm``."""
    return lambda: models.small_resnet((32, 32, 3), 10, width=32, blocks=(1, 1, 1), norm=norm)


def _models(quick: bool) -> dict[str, tuple[Callable[[], Any], tuple[int, ...], int]]:
    def mlp() -> Any:
        return models.mlp((32, 32, 3), 10, hidden=(1024, 1024, 1024))

    return {
        "default model (small ResNet, 32×32×3, width 32)": (_resnet(), (32, 32, 3), 64 if quick else 128),
        "MLP 3072-1024-1024-1024-10": (mlp, (32, 32, 3), 256 if quick else 512),
    }


class _Variant:
    """One model compiled under one precision setting; switches the global state on call."""

    def __init__(self, name: str, make: Callable[[], Any], weights: list[np.ndarray], seed: int) -> None:
        self.name = name
        self.policy, self.jit = VARIANTS[name]
        self.report = precision.configure(self.policy, jit_compile=self.jit)
        keras.utils.set_random_seed(seed)
        self.model = make()
        self.model.set_weights(weights)
        self.model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=self.report.jit_compile,
        )
        precision.configure("float32", jit_compile=False)

    def __enter__(self) -> _Variant:
        precision.configure(self.policy, jit_compile=self.jit)
        return self

    def __exit__(self, *exc: Any) -> None:
        precision.configure("float32", jit_compile=False)

    def steps(self, x: Any, y: Any, count: int) -> float:
        """Examples per second over ``count`` steps (after one untimed step)."""
        with self:
            self.model.train_on_batch(x, y)
            start = time.perf_counter()
            for _ in range(count):
                loss = self.model.train_on_batch(x, y)
            float(np.asarray(loss).ravel()[0])
            return count * len(x) / (time.perf_counter() - start)

    def train_loss(self, x: np.ndarray, y: np.ndarray, epochs: int, batch: int) -> float:
        with self:
            history = self.model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])


def _batch_norm_rows(ctx: BenchContext) -> tuple[list[dict[str, Any]], str]:
    """The default model with Keras' BatchNormalization vs tenfold's fused one, both precisions."""
    tf = tensorflow("the precision benchmark")
    keras.utils.set_random_seed(ctx.seed)
    weights = _resnet("bn")().get_weights()  # the same variables in the same order for both
    batch = 64 if ctx.quick else 128
    x, y = synthetic((32, 32, 3), batch, ctx.seed)
    xt, yt = tf.constant(x), tf.constant(y)
    settings = {
        f"{policy}, {label}": _Variant(policy, _resnet(norm), weights, ctx.seed)
        for policy in ("float32", "mixed_bfloat16")
        for norm, label in (("keras_bn", "Keras BN"), ("bn", "fused BN"))
    }
    count = 3 if ctx.quick else 10
    samples = interleave({n: (lambda v=v: v.steps(xt, yt, count)) for n, v in settings.items()},
                         repeats=2 if ctx.quick else 4, warmup=1)
    rows = [
        ratio_row("ResNet float32: examples/s, fused vs Keras BatchNormalization", samples,
                  "float32, Keras BN", "float32, fused BN", unit="ex/s", lower_is_better=False),
        ratio_row("ResNet mixed_bfloat16: examples/s, fused vs Keras BatchNormalization", samples,
                  "mixed_bfloat16, Keras BN", "mixed_bfloat16, fused BN", unit="ex/s",
                  lower_is_better=False),
        ratio_row("ResNet with Keras BatchNormalization: examples/s, bf16 vs float32", samples,
                  "float32, Keras BN", "mixed_bfloat16, Keras BN", unit="ex/s", lower_is_better=False),
    ]
    note = ("The default model builds `tenfold.layers.FusedBatchNormalization` (the `bn` switch); "
            "the last three rows compare it with Keras' own `BatchNormalization` (`norm=\"keras_bn\"`) "
            "in the same run: Keras 3 computes batch norm from separate float32 ops, with casts "
            "of the activations under mixed precision.")
    return rows, note




def _throughput(ctx: BenchContext, make: Callable[[], Any], shape: tuple[int, ...], batch: int,
                weights: list[np.ndarray], names: list[str]) -> dict[str, list[float]]:
    """Examples/s of each variant, interleaved."""
    tf = tensorflow("the precision benchmark")
    variants = {name: _Variant(name, make, weights, ctx.seed) for name in names}
    x, y = synthetic(shape, batch, ctx.seed)
    xt, yt = tf.constant(x), tf.constant(y)
    count = 3 if ctx.quick else 10
    return interleave({name: (lambda v=v: v.steps(xt, yt, count)) for name, v in variants.items()},
                      repeats=2 if ctx.quick else 4, warmup=1)


def _throughput_rows(label: str, samples: dict[str, list[float]], bf16_cpu: bool) -> list[dict[str, Any]]:
    rows = []
    for name in samples:
        if name == "float32":
            continue
        # the goal is for bf16 without XLA; XLA on/off is reported only
        is_bf16 = ("bfloat16" in name or name == "grappler") and not VARIANTS[name][1]
        goal = ">= 1.5" if (is_bf16 and bf16_cpu) else None
        rows.append(ratio_row(
            f"{label}: examples/s", samples, "float32", name, unit="ex/s",
            goal=goal, goal_met=(lambda r: r >= 1.5) if goal else None, lower_is_better=False,
        ))
    return rows


def _final_losses(ctx: BenchContext, make: Callable[[], Any], shape: tuple[int, ...], batch: int,
                  weights: list[np.ndarray], names: list[str]) -> dict[str, float]:
    """Final training loss of each variant: same data, same steps, fresh copies of ``weights``."""
    xl, yl = synthetic(shape, 4 * batch, ctx.seed + 1)
    epochs = 1 if ctx.quick else 3
    return {name: _Variant(name, make, weights, ctx.seed).train_loss(xl, yl, epochs, batch // 2)
            for name in names}


def _loss_line(label: str, losses: dict[str, float]) -> str:
    base = losses["float32"]
    cells = [
        "–" if n not in losses else f"{base:.4f}" if n == "float32"
        else f"{losses[n]:.4f} ({100 * (losses[n] / base - 1):+.1f}%)"
        for n in VARIANTS
    ]
    return f"| {label} | " + " | ".join(cells) + " |"


def _loss_note(label: str, losses: dict[str, float]) -> str:
    worst = max(abs(losses[n] / losses["float32"] - 1) for n in losses)
    return (f"{label}: largest final-loss difference to float32 {100 * worst:.2f}% "
            f"(goal ≤ 2%: {'met' if worst <= 0.02 else 'not met'})")


def _plot(ctx: BenchContext, rows: list[dict[str, Any]]) -> str:
    names = list(VARIANTS)
    by_model: dict[str, list[float]] = {}
    for row in rows:
        label = row["metric"].removesuffix(": examples/s")
        by_model.setdefault(label, [np.nan] * len(names))[names.index(row["b"])] = row["ratio"]
    panel = Panel(grouped_bars(by_model) + [hline(1.0, color="k", lw=0.8),
                                            hline(1.5, "goal 1.5×", color="grey", ls=":")],
                  title="training throughput by precision (median of interleaved rounds)",
                  ylabel="throughput ÷ float32", xticks=(np.arange(len(names)), names, {"rotation": 10}),
                  legend={"fontsize": 8})
    return figure(ctx.out_dir / "precision.png", [panel], size=(9, 3.6))


@benchmark("precision", "Mixed precision (Keras bfloat16, Grappler oneDNN rewrite) and XLA vs float32: training throughput and final loss")
def run(ctx: BenchContext) -> BenchResult:
    auto = precision.configure("auto")
    precision.configure("float32", jit_compile=False)
    bf16_cpu = bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))
    rows: list[dict[str, Any]] = []
    loss_lines = ["Final training loss after the same steps from the same initial weights:", "",
                  "| model | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
    notes = [f"`precision.configure('auto')` here chooses **{auto.policy}**: {auto.reason}; XLA: {auto.xla_reason}"]
    # quick mode leaves out the XLA variants: compiling them takes minutes on a CPU
    names = [n for n in VARIANTS if not (ctx.quick and n.endswith("XLA"))]
    for label, (make, shape, batch) in _models(ctx.quick).items():
        keras.utils.set_random_seed(ctx.seed)
        weights = make().get_weights()
        rows += _throughput_rows(label, _throughput(ctx, make, shape, batch, weights, names), bf16_cpu)
        losses = _final_losses(ctx, make, shape, batch, weights, names)
        loss_lines.append(_loss_line(label, losses))
        notes.append(_loss_note(label, losses))
    plot = _plot(ctx, rows)
    norm_rows, norm_note = _batch_norm_rows(ctx)
    precision.configure("float32", jit_compile=False)
    return BenchResult(
        description=(
            "Training throughput (examples/s of `train_on_batch`) of each precision setting over "
            "float32 (A). Settings come from `tenfold.precision.configure(policy, jit_compile=...)`."
        ),
        rows=rows + norm_rows, tables=["\n".join(loss_lines)], plots=[plot], notes=notes + [norm_note],
    )

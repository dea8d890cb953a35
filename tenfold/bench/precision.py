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
from pathlib import Path
from typing import Any

import numpy as np

from tenfold._plot import pyplot, save_figure
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row

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
    import tenfold

    return lambda: tenfold.models.small_resnet((32, 32, 3), 10, width=32, blocks=(1, 1, 1), norm=norm)


def _models(quick: bool) -> dict[str, tuple[Callable[[], Any], tuple[int, ...], int]]:
    import tenfold

    def mlp() -> Any:
        return tenfold.models.mlp((32, 32, 3), 10, hidden=(1024, 1024, 1024))

    return {
        "default model (small ResNet, 32×32×3, width 32)": (_resnet(), (32, 32, 3), 64 if quick else 128),
        "MLP 3072-1024-1024-1024-10": (mlp, (32, 32, 3), 256 if quick else 512),
    }


def _data(shape: tuple[int, ...], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # learnable synthetic labels: the arg-max of a fixed random projection of the input
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    w = rng.normal(size=(int(np.prod(shape)), 10))
    y = np.argmax(x.reshape(n, -1) @ w, axis=1).astype("int32")
    return x, y


class _Variant:
    """One model compiled under one precision setting; switches the global state on call."""

    def __init__(self, name: str, make: Callable[[], Any], weights: list[np.ndarray], seed: int) -> None:
        import keras

        from tenfold import precision

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
        from tenfold import precision

        precision.configure(self.policy, jit_compile=self.jit)
        return self

    def __exit__(self, *exc: Any) -> None:
        from tenfold import precision

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


def _plot(path: Path, table: dict[str, dict[str, float]]) -> None:
    plt = pyplot()
    names = list(VARIANTS)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(table)
    for i, (model, ratios) in enumerate(table.items()):
        ax.bar(np.arange(len(names)) + i * width, [ratios.get(n, np.nan) for n in names], width, label=model)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(1.5, color="grey", ls=":", label="goal 1.5×")
    ax.set_xticks(np.arange(len(names)) + width * (len(table) - 1) / 2, names, rotation=10)
    ax.set_ylabel("throughput ÷ float32")
    ax.set_title("training throughput by precision (median of interleaved rounds)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _batch_norm_rows(ctx: BenchContext) -> tuple[list[dict[str, Any]], str]:
    """The default model with Keras' BatchNormalization vs tenfold's fused one, both precisions."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(ctx.seed)
    weights = _resnet("bn")().get_weights()  # the same variables in the same order for both
    batch = 64 if ctx.quick else 128
    x, y = _data((32, 32, 3), batch, ctx.seed)
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


@benchmark("precision", "Mixed precision (Keras bfloat16, Grappler oneDNN rewrite) and XLA vs float32: training throughput and final loss")
def run(ctx: BenchContext) -> BenchResult:
    import tensorflow as tf

    from tenfold import precision
    from tenfold.env import cpu_flags, environment

    start_all = time.perf_counter()
    auto = precision.configure("auto")
    precision.configure("float32", jit_compile=False)
    bf16_cpu = bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))
    rows: list[dict[str, Any]] = []
    loss_lines = [
        "Final training loss after the same steps from the same initial weights:",
        "",
        "| model | " + " | ".join(VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    plot_data: dict[str, dict[str, float]] = {}
    notes = [f"`precision.configure('auto')` here chooses **{auto.policy}**: {auto.reason}; XLA: {auto.xla_reason}"]
    for label, (make, shape, batch) in _models(ctx.quick).items():
        import keras

        keras.utils.set_random_seed(ctx.seed)
        weights = make().get_weights()
        # quick mode leaves out the XLA variants: compiling them takes minutes on a CPU
        names = [n for n in VARIANTS if not (ctx.quick and n.endswith("XLA"))]
        variants = {name: _Variant(name, make, weights, ctx.seed) for name in names}
        x, y = _data(shape, batch, ctx.seed)
        xt, yt = tf.constant(x), tf.constant(y)
        count = 3 if ctx.quick else 10
        samples = interleave(
            {name: (lambda v=v: v.steps(xt, yt, count)) for name, v in variants.items()},
            repeats=2 if ctx.quick else 4, warmup=1,
        )
        plot_data[label] = {}
        for name in names:
            if name == "float32":
                continue
            # the goal is for bf16 without XLA; XLA on/off is reported only
            is_bf16 = ("bfloat16" in name or name == "grappler") and not VARIANTS[name][1]
            goal = ">= 1.5" if (is_bf16 and bf16_cpu) else None
            row = ratio_row(
                f"{label}: examples/s", samples, "float32", name, unit="ex/s",
                goal=goal, goal_met=(lambda r: r >= 1.5) if goal else None, lower_is_better=False,
            )
            rows.append(row)
            plot_data[label][name] = row["ratio"]
        # final loss: same data, same steps, fresh copies of the initial weights
        n_train = 4 * batch
        xl, yl = _data(shape, n_train, ctx.seed + 1)
        epochs = 1 if ctx.quick else 3
        losses = {}
        for name in names:
            fresh = _Variant(name, make, weights, ctx.seed)
            losses[name] = fresh.train_loss(xl, yl, epochs, batch // 2)
        base = losses["float32"]
        cells = [
            "–" if n not in losses else f"{base:.4f}" if n == "float32"
            else f"{losses[n]:.4f} ({100 * (losses[n] / base - 1):+.1f}%)"
            for n in VARIANTS
        ]
        loss_lines.append(f"| {label} | " + " | ".join(cells) + " |")
        worst = max(abs(losses[n] / base - 1) for n in losses)
        notes.append(f"{label}: largest final-loss difference to float32 {100 * worst:.2f}% "
                     f"(goal ≤ 2%: {'met' if worst <= 0.02 else 'not met'})")
    norm_rows, norm_note = _batch_norm_rows(ctx)
    rows += norm_rows
    notes.append(norm_note)
    plot = ctx.out_dir / "precision.png"
    _plot(plot, plot_data)
    precision.configure("float32", jit_compile=False)
    return BenchResult(
        name="precision",
        description=(
            "Training throughput (examples/s of `train_on_batch`) of each precision setting over "
            "float32 (A). Settings come from `tenfold.precision.configure(policy, jit_compile=...)`."
        ),
        rows=rows,
        tables=["\n".join(loss_lines)],
        plots=[str(plot)],
        notes=notes,
        env=environment(),
        quick=ctx.quick,
        seconds=time.perf_counter() - start_all,
    )

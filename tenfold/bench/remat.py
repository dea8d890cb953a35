"""Benchmark ``remat``: peak memory and step time with and without gradient recomputation.

A deep MLP and a deep residual CNN, trained with a plain step (A) and with
``tenfold.remat.apply(model, k)`` for several segment counts k (B; ``"sqrt"`` ≈ √n). Peak
memory is the allocator's peak during one training step (``tenfold.remat.peak_memory``),
in graph mode. The activation bytes are the batch-proportional part of the plain step's
peak, ``2 × (peak at batch B − peak at batch B/2)`` (weights, gradients and optimizer state
do not grow with the batch; :func:`activation_bytes` gives the shape-based estimate). Goal
(Chen et al. 2016): memory saved ≥ 50 % of the activation bytes, step time ≤ 1.4×.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tenfold import models, remat
from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    figure,
    hline,
    interleave,
    line,
    ratio_row,
    train_step,
    value_row,
)

MIB = 2**20


def _cases(quick: bool) -> dict[str, dict[str, Any]]:
    depth = 16 if quick else 36
    blocks = (3, 3, 3) if quick else (4, 4, 4, 4)
    return {
        f"MLP {depth}×256": {
            "make": lambda: models.mlp((256,), 10, hidden=(256,) * depth),
            "shape": (256,),
            "batch": 2048 if quick else 4096,
            "blocks": depth,
        },
        f"ResNet {sum(blocks)} blocks": {
            "make": lambda: models.small_resnet((32, 32, 3), 10, width=16, blocks=blocks),
            "shape": (32, 32, 3),
            "batch": 32 if quick else 64,
            "blocks": sum(blocks),
        },
    }


def activation_bytes(model: Any, batch: int) -> int:
    """Bytes of the activations a plain backward pass keeps, estimated from shapes: one
    float32 tensor per top-level layer output (a Dense with its activation counts once;
    reshaping and pooling layers not at all), and for a ``ResidualBlock`` one per
    convolution, normalization and activation inside it."""
    skip = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)
    total = 0
    shape: Any = model.inputs[0].shape
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out = layer.compute_output_shape(shape)
        size = int(np.prod([int(d) for d in out[1:]])) * batch * 4
        if isinstance(layer, models.ResidualBlock):
            parts = [layer.conv1, layer.norm1, layer.conv2, layer.norm2, layer.shortcut_conv, layer.shortcut_norm]
            total += size * (sum(p is not None for p in parts) + 2)
        elif not isinstance(layer, skip):
            total += size
        shape = out
    return total


def _peak(step: Callable[[Any, Any], Any], x: Any, y: Any) -> int:
    """Median peak bytes of two training steps (traced outside the measured window)."""
    step(x, y)
    return int(np.median([remat.peak_memory(lambda: step(x, y)) for _ in range(2)]))


def _measure(case: dict[str, Any], ctx: BenchContext) -> dict[str, Any]:
    """Peak memory and interleaved step times of the plain model and of each k."""
    tf = tensorflow("the remat benchmark")
    n, batch = case["blocks"], case["batch"]
    root = int(round(math.sqrt(n)))
    counts = sorted({1, 2, root, min(n, 2 * root), n} - {0})
    rng = np.random.default_rng(ctx.seed)
    x = tf.constant(rng.normal(size=(batch, *case["shape"])).astype("float32"))
    y = tf.constant((np.arange(batch) % 10).astype("int32"))
    keras.utils.set_random_seed(ctx.seed)
    plain = case["make"]()
    steps = {"plain": train_step(plain, keras.optimizers.SGD(0.01))}
    for k in counts:
        keras.utils.set_random_seed(ctx.seed)
        steps[f"k={k}"] = train_step(remat.apply(case["make"](), k), keras.optimizers.SGD(0.01))
    memory = {name: _peak(step, x, y) for name, step in steps.items()}
    half = batch // 2
    # the batch-proportional part of the plain step's peak (weights, gradients and
    # optimizer state do not grow with the batch)
    act = 2 * (memory["plain"] - _peak(steps["plain"], x[:half], y[:half]))
    timed = interleave({name: (lambda s=step: s(x, y).numpy()) for name, step in steps.items()},
                       repeats=3 if ctx.quick else 11, warmup=1)
    return {"n": n, "batch": batch, "half": half, "root": root, "counts": counts, "memory": memory,
            "act": act, "timed": timed, "estimate": activation_bytes(plain, batch)}


def _rows(label: str, m: dict[str, Any]) -> list[dict[str, Any]]:
    root, memory = m["root"], m["memory"]
    plain, sqrt = memory["plain"], memory[f"k={root}"]
    return [
        value_row(f"{label}: peak memory, sqrt policy (k={root})", "plain", plain / MIB,
                  "remat sqrt", sqrt / MIB, unit="MiB", repeats=2, goal="saved >= 50% of activations",
                  goal_met=lambda r: (1 - r) * plain / m["act"] >= 0.5),
        ratio_row(f"{label}: step time, sqrt policy (k={root})", m["timed"], "plain", f"k={root}",
                  unit="s", goal="<= 1.4", goal_met=lambda r: r <= 1.4, lower_is_better=True),
    ]


def _curve(m: dict[str, Any]) -> dict[str, list[float]]:
    """Peak memory and step time ÷ plain by segment count (0 = plain)."""
    timed, memory = m["timed"], m["memory"]
    curve = {"segments": [0], "memory": [1.0], "time": [1.0]}
    for k in m["counts"]:
        curve["segments"].append(k)
        curve["memory"].append(memory[f"k={k}"] / memory["plain"])
        curve["time"].append(float(np.median(np.asarray(timed[f"k={k}"]) / np.asarray(timed["plain"]))))
    return curve


def _table_lines(label: str, m: dict[str, Any], curve: dict[str, list[float]]) -> list[str]:
    memory, timed = m["memory"], m["timed"]
    lines = [f"| {label} | – (plain) | {memory['plain'] / MIB:.1f} | 1 | – | "
             f"{float(np.median(timed['plain'])):.3f} | 1 |"]
    for k, mem, t in zip(curve["segments"][1:], curve["memory"][1:], curve["time"][1:]):
        name = f"k={k}"
        lines.append(
            f"| {label} | {k}{' (√n)' if k == m['root'] else ''} | {memory[name] / MIB:.1f} | {mem:.2f} | "
            f"{(memory['plain'] - memory[name]) / m['act']:.2f} | {np.median(timed[name]):.3f} | {t:.2f} |"
        )
    return lines


def _note(label: str, m: dict[str, Any]) -> str:
    saved = m["memory"]["plain"] - m["memory"][f"k={m['root']}"]
    return (
        f"{label}: {m['n']} blocks, batch {m['batch']}; activation bytes {m['act'] / MIB:.1f} MiB "
        f"(measured: 2 × (plain peak at batch {m['batch']} − at batch {m['half']}); the sum of the "
        f"layer outputs would be {m['estimate'] / MIB:.1f} MiB); the √n policy saves "
        f"{saved / MIB:.1f} MiB = {100 * saved / m['act']:.0f}% of them"
    )


def _plot(ctx: BenchContext, curves: dict[str, dict[str, list[float]]]) -> str:
    xlabel = "segments k (0 = no recomputation)"
    memory = Panel([line(c["segments"], c["memory"], label, marker="o") for label, c in curves.items()]
                   + [hline(1.0, color="k", lw=0.8)],
                   title="peak memory of a training step", xlabel=xlabel, ylabel="peak memory ÷ plain",
                   legend={"fontsize": 8})
    time_ = Panel([line(c["segments"], c["time"], label, marker="o") for label, c in curves.items()]
                  + [hline(1.4, "goal ≤ 1.4×", color="grey", ls=":")],
                  title="step time", xlabel=xlabel, ylabel="step time ÷ plain", legend={"fontsize": 8})
    return figure(ctx.out_dir / "remat.png", [memory, time_], size=(9, 3.6))


@benchmark("remat", "Gradient recomputation: peak memory and step time of deep MLP/ResNet vs the number of segments")
def run(ctx: BenchContext) -> BenchResult:
    rows: list[dict[str, Any]] = []
    table = [
        "| model | segments k | peak memory (MiB) | ÷ plain | saved ÷ activation bytes | step time (s) | ÷ plain |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    curves: dict[str, dict[str, list[float]]] = {}
    for label, case in _cases(ctx.quick).items():
        measured = _measure(case, ctx)
        curves[label] = _curve(measured)
        rows += _rows(label, measured)
        table += _table_lines(label, measured, curves[label])
        notes.append(_note(label, measured))
    return BenchResult(
        description=(
            "Gradient recomputation (Chen et al. 2016). A = plain training step, B = "
            "`tenfold.remat.apply(model, k)`; graph mode on this machine's allocator "
            "(`tenfold.remat.peak_memory`)."
        ),
        rows=rows, tables=["\n".join(table)], plots=[_plot(ctx, curves)], notes=notes,
    )

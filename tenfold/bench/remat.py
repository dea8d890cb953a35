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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tenfold._plot import pyplot, save_figure
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row


def _cases(quick: bool) -> dict[str, dict[str, Any]]:
    import tenfold

    depth = 16 if quick else 36
    blocks = (3, 3, 3) if quick else (4, 4, 4, 4)
    return {
        f"MLP {depth}×256": {
            "make": lambda: tenfold.models.mlp((256,), 10, hidden=(256,) * depth),
            "shape": (256,),
            "batch": 2048 if quick else 4096,
            "blocks": depth,
        },
        f"ResNet {sum(blocks)} blocks": {
            "make": lambda: tenfold.models.small_resnet((32, 32, 3), 10, width=16, blocks=blocks),
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
    import keras

    from tenfold.models import ResidualBlock

    skip = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)
    total = 0
    shape: Any = model.inputs[0].shape
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out = layer.compute_output_shape(shape)
        size = int(np.prod([int(d) for d in out[1:]])) * batch * 4
        if isinstance(layer, ResidualBlock):
            parts = [layer.conv1, layer.norm1, layer.conv2, layer.norm2, layer.shortcut_conv, layer.shortcut_norm]
            total += size * (sum(p is not None for p in parts) + 2)
        elif not isinstance(layer, skip):
            total += size
        shape = out
    return total


def _step_fn(model: Any) -> Callable[[Any, Any], Any]:
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def _plot(path: Path, curves: dict[str, dict[str, list[float]]]) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for label, c in curves.items():
        a.plot(c["segments"], c["memory"], "o-", label=label)
        b.plot(c["segments"], c["time"], "o-", label=label)
    a.set_xlabel("segments k (0 = no recomputation)")
    a.set_ylabel("peak memory ÷ plain")
    a.axhline(1.0, color="k", lw=0.8)
    b.set_xlabel("segments k (0 = no recomputation)")
    b.set_ylabel("step time ÷ plain")
    b.axhline(1.4, color="grey", ls=":", label="goal ≤ 1.4×")
    for ax in (a, b):
        ax.legend(fontsize=8)
    a.set_title("peak memory of a training step")
    b.set_title("step time")
    save_figure(fig, path)


@benchmark("remat", "Gradient recomputation: peak memory and step time of deep MLP/ResNet vs the number of segments")
def run(ctx: BenchContext) -> BenchResult:
    import keras
    import tensorflow as tf

    from tenfold import remat
    from tenfold.env import environment

    start_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    table = [
        "| model | segments k | peak memory (MiB) | ÷ plain | saved ÷ activation bytes | step time (s) | ÷ plain |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    curves: dict[str, dict[str, list[float]]] = {}
    for label, case in _cases(ctx.quick).items():
        n = case["blocks"]
        root = int(round(math.sqrt(n)))
        counts = sorted({1, 2, root, min(n, 2 * root), n} - {0})
        rng = np.random.default_rng(ctx.seed)
        x = tf.constant(rng.normal(size=(case["batch"], *case["shape"])).astype("float32"))
        y = tf.constant((np.arange(case["batch"]) % 10).astype("int32"))
        keras.utils.set_random_seed(ctx.seed)
        plain = case["make"]()
        estimate = activation_bytes(plain, case["batch"])
        steps: dict[str, Callable[[], Any]] = {"plain": _step_fn(plain)}
        for k in counts:
            keras.utils.set_random_seed(ctx.seed)
            steps[f"k={k}"] = _step_fn(remat.apply(case["make"](), k))
        memory: dict[str, int] = {}
        for name, step in steps.items():
            step(x, y)  # trace outside the measured window
            memory[name] = int(np.median([remat.peak_memory(lambda s=step: s(x, y)) for _ in range(2)]))
        # measured activation bytes: the batch-proportional part of the plain step's peak
        # (weights, gradients and optimizer state do not grow with the batch)
        half = case["batch"] // 2
        steps["plain"](x[:half], y[:half])
        peak_half = int(np.median([remat.peak_memory(lambda: steps["plain"](x[:half], y[:half])) for _ in range(2)]))
        act = 2 * (memory["plain"] - peak_half)
        timed = interleave(
            {name: (lambda s=step: s(x, y).numpy()) for name, step in steps.items()},
            repeats=3 if ctx.quick else 11, warmup=1,
        )
        sqrt_name = f"k={root}"
        saved = memory["plain"] - memory[sqrt_name]
        share = saved / act
        rows.append({
            "metric": f"{label}: peak memory, sqrt policy (k={root})",
            "a": "plain", "b": "remat sqrt", "a_median": memory["plain"] / 2**20,
            "b_median": memory[sqrt_name] / 2**20, "unit": "MiB",
            "ratio": memory[sqrt_name] / memory["plain"], "ratio_q25": memory[sqrt_name] / memory["plain"],
            "ratio_q75": memory[sqrt_name] / memory["plain"], "repeats": 2, "lower_is_better": True,
            "goal": "saved >= 50% of activations", "goal_met": bool(share >= 0.5),
        })
        rows.append(ratio_row(
            f"{label}: step time, sqrt policy (k={root})", timed, "plain", sqrt_name, unit="s",
            goal="<= 1.4", goal_met=lambda r: r <= 1.4, lower_is_better=True,
        ))
        t_plain = float(np.median(timed["plain"]))
        curves[label] = {"segments": [0], "memory": [1.0], "time": [1.0]}
        table.append(f"| {label} | – (plain) | {memory['plain'] / 2**20:.1f} | 1 | – | {t_plain:.3f} | 1 |")
        for k in counts:
            name = f"k={k}"
            t = float(np.median(np.asarray(timed[name]) / np.asarray(timed["plain"])))
            m = memory[name] / memory["plain"]
            table.append(
                f"| {label} | {k}{' (√n)' if k == root else ''} | {memory[name] / 2**20:.1f} | {m:.2f} | "
                f"{(memory['plain'] - memory[name]) / act:.2f} | {np.median(timed[name]):.3f} | {t:.2f} |"
            )
            curves[label]["segments"].append(k)
            curves[label]["memory"].append(m)
            curves[label]["time"].append(t)
        notes.append(
            f"{label}: {n} blocks, batch {case['batch']}; activation bytes {act / 2**20:.1f} MiB "
            f"(measured: 2 × (plain peak at batch {case['batch']} − at batch {half}); the sum of the "
            f"layer outputs would be {estimate / 2**20:.1f} MiB); the √n policy saves "
            f"{saved / 2**20:.1f} MiB = {100 * share:.0f}% of them"
        )
    plot = ctx.out_dir / "remat.png"
    _plot(plot, curves)
    return BenchResult(
        name="remat",
        description=(
            "Gradient recomputation (Chen et al. 2016). A = plain training step, B = "
            "`tenfold.remat.apply(model, k)`; graph mode on this machine's allocator "
            "(`tenfold.remat.peak_memory`)."
        ),
        rows=rows,
        tables=["\n".join(table)],
        plots=[str(plot)],
        notes=notes,
        env=environment(),
        quick=ctx.quick,
        seconds=time.perf_counter() - start_all,
    )

"""Benchmark ``layers``: ACNet deployment, weight-standardization cost, EBN at small batches.

* **ACNet** — a small ResNet whose 3×3 convs are ACBlocks (random BN statistics), fused
  with ``tenfold.reparam.deploy``: inference time of the fused model against the same ResNet
  built from plain ``Conv2D`` and deployed the same way (goal 0.95–1.05: the fused model *is*
  a plain conv net), inference time unfused / fused (report), and the largest
  fused-vs-unfused difference relative to the output scale (goal ≤ 1e-5).
* **WS** — training step time of the ResNet with ``WSConv2D`` against ``Conv2D`` (goal
  ≤ 1.15).
* **EBN** — test accuracy on the bundled digits of the ResNet with BatchNormalization,
  ExtendedBatchNormalization and GroupNormalization at batch sizes 2, 4, 16 and 128, two
  seeds, more epochs for larger batches so that the numbers of updates are comparable
  (report; the paper claims EBN ≥ BN at small batches).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from tenfold import models, reparam
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    digits,
    figure,
    interleave,
    line,
    ratio_row,
    scatter,
)
from tenfold.testing import randomize_norms

NORMS = {"bn": "BatchNormalization", "ebn": "ExtendedBatchNormalization", "gn": "GroupNormalization"}


def _predictor(model: keras.Model, x: np.ndarray, calls: int) -> Any:
    def run() -> None:
        for _ in range(calls):
            model.predict_on_batch(x)

    return run


def _acnet(ctx: BenchContext) -> tuple[list[dict[str, Any]], str]:
    """Rows of deployed-ACNet inference time, and the fusion check table."""
    shape, batch = ((16, 16, 3), 32) if ctx.quick else ((32, 32, 3), 64)
    width, calls, repeats = (8, 3, 9) if ctx.quick else (16, 4, 41)
    x = np.random.default_rng(ctx.seed).normal(size=(batch, *shape)).astype("float32")
    keras.utils.set_random_seed(ctx.seed)
    acnet = models.small_resnet(shape, 10, width=width, conv="acnet")
    randomize_norms(acnet, ctx.seed, shift=0.2)
    fused = reparam.deploy(acnet)
    plain = reparam.deploy(models.small_resnet(shape, 10, width=width, conv="plain"))
    # short samples, many rounds: the per-round ratio is robust to bursts of load on a
    # shared machine; the two comparisons are timed separately
    ctx.log("  ACNet: timing plain-deployed / ACNet-deployed inference")
    samples = interleave(
        {
            "plain Conv2D ResNet (deployed)": _predictor(plain, x, calls),
            "ACNet ResNet, deployed": _predictor(fused, x, calls),
        },
        repeats=repeats, warmup=3,
    )
    rows = [ratio_row(
        "ACNet inference time, deployed vs plain conv net", samples,
        "plain Conv2D ResNet (deployed)", "ACNet ResNet, deployed",
        goal="0.95–1.05", goal_met=lambda r: 0.95 <= r <= 1.05,
    )]
    ctx.log("  ACNet: timing ACNet-deployed / ACNet-unfused inference")
    samples = interleave(
        {
            "ACNet ResNet, deployed": _predictor(fused, x, calls),
            "ACNet ResNet, unfused": _predictor(acnet, x, calls),
        },
        repeats=max(5, repeats // 2), warmup=2,
    )
    rows.append(ratio_row(
        "ACNet inference time, unfused vs deployed", samples,
        "ACNet ResNet, deployed", "ACNet ResNet, unfused",
    ))
    diff = reparam.max_difference(acnet, fused, x)
    scale = float(np.max(np.abs(acnet.predict(x, verbose=0))))
    relative = diff / scale
    return rows, (
        "| ACNet fusion check | value |\n|---|---|\n"
        f"| parameters unfused → deployed | {reparam.parameter_count(acnet):,} → "
        f"{reparam.parameter_count(fused):,} (plain conv net: {reparam.parameter_count(plain):,}) |\n"
        f"| max abs difference fused vs unfused ({batch} random inputs {shape}) | {diff:.3g} |\n"
        f"| relative to the largest output ({scale:.3g}) | {relative:.3g} "
        f"(goal ≤ 1e-5: {'met' if relative <= 1e-5 else 'NOT met'}) |"
    )


def _ws(ctx: BenchContext) -> dict[str, Any]:
    """The row of WSConv2D's training step time over Conv2D's."""
    shape, batch = ((16, 16, 3), 32) if ctx.quick else ((32, 32, 3), 64)
    width, steps, repeats = (8, 2, 9) if ctx.quick else (16, 2, 41)
    rng = np.random.default_rng(ctx.seed)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=batch)
    variants = {}
    for conv, label in (("plain", "Conv2D"), ("ws", "WSConv2D")):
        keras.utils.set_random_seed(ctx.seed)
        model = models.small_resnet(shape, 10, width=width, conv=conv)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

        def step(model: keras.Model = model) -> None:
            for _ in range(steps):
                model.train_on_batch(x, y)

        variants[f"ResNet with {label}"] = step
    ctx.log("  WS: timing training steps Conv2D / WSConv2D")
    samples = interleave(variants, repeats=repeats, warmup=3)
    return ratio_row(
        "WS training step time", samples, "ResNet with Conv2D", "ResNet with WSConv2D",
        goal="≤ 1.15", goal_met=lambda r: r <= 1.15,
    )


def _ebn_accuracy(ctx: BenchContext, batch_sizes: tuple[int, ...], seeds: tuple[int, ...],
                  epochs: dict[int, int]) -> dict[str, dict[int, list[float]]]:
    """Test accuracy of each norm at each batch size, one value per seed."""
    accuracy: dict[str, dict[int, list[float]]] = {n: {b: [] for b in batch_sizes} for n in NORMS}
    for seed in seeds:
        splits = digits(seed)
        for batch in batch_sizes:
            for norm in NORMS:
                keras.utils.set_random_seed(seed)
                model = models.small_resnet(splits.input_shape, 10, width=8, norm=norm)
                model.compile(
                    optimizer=keras.optimizers.Adam(2e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    steps_per_execution=16,  # small batches: keep Python overhead out of the way
                )
                start = time.perf_counter()
                model.fit(splits.x_train, splits.y_train, batch_size=batch, epochs=epochs[batch], verbose=0)
                logits = model.predict(splits.x_test, batch_size=256, verbose=0)
                acc = float(np.mean(np.argmax(logits, -1) == splits.y_test))
                accuracy[norm][batch].append(acc)
                ctx.log(f"  EBN: seed {seed} batch {batch:>3} {norm:>3}: test accuracy {acc:.3f} "
                        f"({time.perf_counter() - start:.0f} s)")
    return accuracy


def _ebn(ctx: BenchContext) -> tuple[str, str]:
    """The table of test accuracy by norm and batch size, and its plot."""
    batch_sizes = (4, 128) if ctx.quick else (2, 4, 16, 128)
    seeds = (0,) if ctx.quick else (0, 1)
    # more epochs for larger batches, so that every batch size gets a comparable number of
    # updates (1078 training examples: about 540, 540, 340 and 140 steps)
    epochs = {2: 1, 4: 2, 16: 5, 128: 16}
    if ctx.quick:
        epochs = {b: max(1, e // 2) for b, e in epochs.items()}
    accuracy = _ebn_accuracy(ctx, batch_sizes, seeds, epochs)
    header = "| batch size (epochs) | " + " | ".join(NORMS[n] for n in NORMS) + " |"
    lines = [header, "|---|" + "---|" * len(NORMS)]
    for batch in batch_sizes:
        cells = []
        for norm in NORMS:
            values = accuracy[norm][batch]
            cells.append(f"{np.mean(values):.3f} (" + ", ".join(f"{v:.3f}" for v in values) + ")")
        lines.append(f"| {batch} ({epochs[batch]} epoch{'s' if epochs[batch] > 1 else ''}) | " + " | ".join(cells) + " |")
    table = (
        "Test accuracy on digits (inference with the moving statistics), Adam 2e-3, small "
        f"ResNet width 8; mean (per seed {', '.join(map(str, seeds))}):\n\n" + "\n".join(lines)
    )
    return table, _plot_ebn(ctx, batch_sizes, accuracy)


def _plot_ebn(ctx: BenchContext, batch_sizes: tuple[int, ...], accuracy: dict[str, dict[int, list[float]]]) -> str:
    series = []
    for i, (norm, label) in enumerate(NORMS.items()):
        color = f"C{i}"
        series.append(line(batch_sizes, [np.mean(accuracy[norm][b]) for b in batch_sizes], label,
                           marker="o", color=color))
        for b in batch_sizes:
            series.append(scatter([b] * len(accuracy[norm][b]), accuracy[norm][b], s=10, alpha=0.4, color=color))
    panel = Panel(series, title="digits, small ResNet: normalization vs batch size", xlabel="batch size",
                  ylabel="test accuracy", xscale={"value": "log", "base": 2},
                  xticks=(batch_sizes, [str(b) for b in batch_sizes]), grid={"alpha": 0.3})
    return figure(ctx.out_dir / "layers_ebn.png", [panel], size=(6, 4))


@benchmark("layers", "ACNet deploy (fused vs plain conv, unfused vs fused), WSConv2D step cost, EBN vs BN vs GN by batch size")
def run(ctx: BenchContext) -> BenchResult:
    acnet_rows, acnet_table = _acnet(ctx)
    ws_row = _ws(ctx)
    ebn_table, ebn_plot = _ebn(ctx)
    return BenchResult(
        description=(
            "ACNet: inference time of the deployed ACNet ResNet / the same ResNet built from "
            "plain Conv2D (also deployed, BN folded), unfused / deployed, and the fusion error; "
            "WS: training step time WSConv2D / Conv2D; EBN: test accuracy by batch size."
        ),
        rows=[*acnet_rows, ws_row], tables=[acnet_table, ebn_table], plots=[ebn_plot],
        notes=[
            "Timings are medians of interleaved rounds (A, B, A, B, ...) after warm-up on a shared "
            "machine; EBN accuracies are single short runs per seed, so differences of a few points "
            "at one batch size are within noise."
        ],
    )

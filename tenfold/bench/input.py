"""Benchmark ``input``: the streaming image pipeline, and data echoing where it matters.

A generated image folder (``train/`` and ``test/`` layout; bundled digits drawn at random
colour, scale and position with noise into ``SOURCE``-pixel JPEG files, test files from
digits never used for training) is written once into the cache directory
(``$TENFOLD_CACHE`` or ``~/.cache/tenfold``, ``bench-input-<size>-<files>``). Training reads
it through :func:`tenfold.data.image_pipeline` (decode, random-resized crop to 64×64, flip)
into tenfold's default model (``tenfold.models.small_resnet``). Measured, in one process on
the machine's shared cores:

* R: a training step from the pipeline against the same step from batches in memory;
* steps/s with echo factors 1, 2, 4 placed after decoding and after augmentation, and the
  fresh examples per second they read; the goal (Choi et al. 2019) is a speed-up of at
  least ``0.8·min(e, R)``;
* test accuracy after an equal wall-clock budget per echo factor (goal: within 1 point
  of e = 1);
* peak resident memory (``ru_maxrss`` of a subprocess) of one epoch over 5,000 and
  20,000 files (goal: at most 1.1×);
* images/s of the pipeline against ``keras.utils.image_dataset_from_directory`` reading
  the same folder (decode + resize, no augmentation; goal: at least 0.9×).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
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
    digit_images,
    figure,
    interleave,
    line,
    ratio_row,
    value_row,
)
from tenfold.data.files import folder_splits
from tenfold.data.stream import image_pipeline

SOURCE = 768  # pixels of the generated JPEG files: decoding them is the slow stage
IMAGE = 64
BATCH = 32
FACTORS = (1, 2, 4)
PLACES = ("decode", "augment")
CROP_SCALE = (0.35, 1.0)  # the digit stays in view
FILES = {False: 20_000, True: 1_200}
MEMORY_FILES = {False: (5_000, 20_000), True: (400, 1_200)}
TEST_SHARE = 0.15
BUDGET = {False: 90.0, True: 8.0}  # seconds of training per echo factor at equal wall-clock
SKIP = 6  # steps that drain what the buffers gathered before the clock starts


def cache_dir() -> Path:
    """``$TENFOLD_CACHE`` or ``~/.cache/tenfold``."""
    return Path(os.environ.get("TENFOLD_CACHE") or Path.home() / ".cache" / "tenfold")


def _draw(rng: np.random.Generator, digit: np.ndarray) -> np.ndarray:
    """One ``SOURCE``² RGB image: a coloured, scaled, placed digit on a noisy background."""
    from PIL import Image

    bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    while np.abs(bg - fg).sum() < 200:
        fg = rng.integers(0, 256, 3)
    side = int(SOURCE * rng.uniform(0.45, 0.9))
    mask = np.asarray(Image.fromarray((digit * 255).astype("uint8")).resize((side, side), Image.BILINEAR))
    canvas = np.empty((SOURCE, SOURCE, 3), np.int16)
    canvas[:] = bg
    oy, ox = rng.integers(0, SOURCE - side + 1, 2)
    m = mask[..., None].astype(np.int16)
    canvas[oy:oy + side, ox:ox + side] = (bg * (255 - m) + fg * m) // 255
    canvas += rng.integers(-6, 7, (SOURCE, SOURCE, 1), dtype=np.int16)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def generated_folder(n_files: int, seed: int = 0, log: Any = print) -> Path:
    """The bench folder of ``n_files`` JPEG files, written once (a marker file when complete)."""
    from PIL import Image

    root = cache_dir() / f"bench-input-{SOURCE}-{n_files}"
    if (root / "complete.json").is_file():
        return root
    x, y = digit_images()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    held_out = set(order[: int(TEST_SHARE * len(x))].tolist())  # test digits never trained on
    pools = {"test": sorted(held_out), "train": sorted(set(range(len(x))) - held_out)}
    n_test = int(round(TEST_SHARE * n_files))
    log(f"input: writing {n_files} JPEG files of {SOURCE}x{SOURCE} into {root} (once)")
    start = time.perf_counter()
    for split, count in (("test", n_test), ("train", n_files - n_test)):
        for i in range(count):
            k = int(rng.choice(pools[split]))
            folder = root / split / str(int(y[k]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_draw(rng, x[k])).save(folder / f"{i:06d}.jpg", quality=85)
    size = sum(f.stat().st_size for f in root.rglob("*.jpg"))
    record = {"files": n_files, "bytes": size, "seconds": time.perf_counter() - start}
    (root / "complete.json").write_text(json.dumps(record), encoding="utf-8")
    return root


def _model(seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = models.small_resnet((IMAGE, IMAGE, 3), 10)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _pipeline(splits: Any, seed: int, factor: int = 1, place: str = "decode") -> Any:
    return image_pipeline(
        splits.paths("train"), splits.y_train, image_size=IMAGE, batch_size=BATCH, training=True,
        echo=factor if factor > 1 else None, echo_at=place, seed=seed, crop_scale=CROP_SCALE,
    )


def _release(it: Any) -> None:
    """Stop an iterator's background readers now, so they take no CPU from the next variant."""
    del it
    gc.collect()
    time.sleep(0.2)  # let cancelled reads finish


def _steps_per_second(model: Any, dataset: Any, steps: int) -> float:
    """Training steps per second on ``dataset`` after ``SKIP`` untimed steps."""
    it = iter(dataset.repeat())
    for i in range(SKIP + steps):
        if i == SKIP:
            begin = time.perf_counter()
        xb, yb = next(it)
        model.train_on_batch(xb, yb)
    rate = steps / (time.perf_counter() - begin)
    _release(it)
    return rate


def _steps_from_memory(model: Any, held: list[tuple[Any, Any]], steps: int) -> float:
    """Training steps per second on batches already in memory (the step alone)."""
    for i in range(SKIP + steps):
        if i == SKIP:
            begin = time.perf_counter()
        model.train_on_batch(*held[i % len(held)])
    return steps / (time.perf_counter() - begin)


def _speed(ctx: BenchContext, splits: Any) -> tuple[dict[str, list[float]], float]:
    """steps/s samples of every variant and R (steps/s from memory ÷ from the pipeline at e=1)."""
    tf = tensorflow("the input benchmark")
    model, steps = _model(ctx.seed), 8 if ctx.quick else 40
    held = [(tf.constant(x.numpy()), tf.constant(y.numpy())) for x, y in _pipeline(splits, ctx.seed).dataset.take(4)]
    gc.collect()
    variants = {"memory": lambda: _steps_from_memory(model, held, steps)}
    variants["e=1"] = lambda: _steps_per_second(model, _pipeline(splits, ctx.seed).dataset, steps)
    for place in PLACES:
        for e in FACTORS[1:]:
            variants[f"{place} e={e}"] = lambda e=e, p=place: _steps_per_second(
                model, _pipeline(splits, ctx.seed, e, p).dataset, steps)
    samples = interleave(variants, repeats=3 if ctx.quick else 5, warmup=0 if ctx.quick else 1)
    r = float(np.median(np.asarray(samples["memory"]) / np.asarray(samples["e=1"])))
    return samples, r


def _speed_rows(samples: dict[str, list[float]], r: float) -> list[dict[str, Any]]:
    rows = []
    for place in PLACES:
        for e in FACTORS[1:]:
            goal = 0.8 * min(e, r)
            rows.append(ratio_row(
                f"steps/s, echo {e} after {place} vs no echo (R={r:.2f})", samples, "e=1", f"{place} e={e}",
                unit="steps/s", goal=f">= {goal:.2f}", goal_met=lambda v, g=goal: v >= g, lower_is_better=False,
            ))
    return rows


def _r_row(samples: dict[str, list[float]]) -> dict[str, Any]:
    """R as a row: the issue sizes the pipeline so that it is the bottleneck (R ≥ 2); below
    that, echo has little to win and its speed-up goal 0.8·min(e, R) says little."""
    med = {k: float(np.median(s)) for k, s in samples.items()}
    return value_row("R: steps/s from batches in memory vs from the pipeline without echo", "pipeline e=1",
                     med["e=1"], "in memory", med["memory"], unit="steps/s", goal=">= 2",
                     goal_met=lambda v: v >= 2, lower_is_better=False)


def _budget_rows(used: dict[int, tuple[int, int, float]], num_classes: int) -> list[dict[str, Any]]:
    """Test accuracy at equal wall-clock per echo factor against e = 1. The comparison only
    means something when e = 1 learned: its accuracy must be at least twice chance."""
    plain, chance = used[1][2], 1.0 / num_classes
    learned = plain >= 2 * chance
    return [value_row(f"test accuracy at equal wall-clock, echo {e} after decode vs no echo "
                      f"(e=1 {'learned' if learned else 'at chance: not meaningful'})",
                      "e=1", plain, f"e={e}", used[e][2], unit="accuracy",
                      goal=f">= e=1 − 1 point, e=1 ≥ {2 * chance:.0%}",
                      goal_met=lambda v, ok=learned: ok and v * plain >= plain - 0.01, lower_is_better=False)
            for e in FACTORS[1:]]


def _fresh_table(samples: dict[str, list[float]]) -> str:
    lines = ["Fresh examples per second (steps/s × batch ÷ echo factor, medians):", "",
             "| pipeline | steps/s | fresh examples/s |", "|---|---|---|"]
    med = {k: float(np.median(s)) for k, s in samples.items()}
    lines.append(f"| batches in memory (no input) | {med['memory']:.2f} | – |")
    lines.append(f"| no echo | {med['e=1']:.2f} | {med['e=1'] * BATCH:.0f} |")
    for place in PLACES:
        for e in FACTORS[1:]:
            k = f"{place} e={e}"
            lines.append(f"| echo {e} after {place} | {med[k]:.2f} | {med[k] * BATCH / e:.0f} |")
    return "\n".join(lines)


class _Budget(keras.callbacks.Callback):
    """Stops training when ``seconds`` have passed since the end of the first step."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.steps, self.start = seconds, 0, 0.0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps += 1
        if self.steps == 1:  # the clock starts after tracing the train step
            self.start = time.perf_counter()
        elif time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def _equal_budget(ctx: BenchContext, splits: Any, budget: float) -> dict[int, tuple[int, int, float]]:
    """Per echo factor (after decoding): steps, fresh examples and test accuracy after ``budget`` s."""
    test = image_pipeline(splits.paths("test"), splits.y_test, image_size=IMAGE, batch_size=BATCH, training=False)
    out = {}
    for e in FACTORS:
        model, pipe = _model(ctx.seed), _pipeline(splits, ctx.seed, e, "decode")
        stopper = _Budget(budget)
        model.fit(pipe.dataset.repeat(), steps_per_epoch=10**6, epochs=1, verbose=0, callbacks=[stopper])
        accuracy = float(model.evaluate(test.dataset, verbose=0)[1])
        out[e] = (stopper.steps, stopper.steps * BATCH // e, accuracy)
        ctx.log(f"input: equal budget, echo {e}: {stopper.steps} steps, test accuracy {100 * accuracy:.1f}%")
    return out


_PROBE = """
import json, resource, sys
from tenfold.data.files import folder_splits
from tenfold.data.stream import image_pipeline
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = folder_splits(root, image_size={image}, validation_fraction=0.0, check_files=False)
paths, labels = (s.paths("train") + s.paths("test"))[:n], (s.y_train + s.y_test)[:n]
if len(paths) < n:
    raise SystemExit(f"the folder has {{len(paths)}} files, fewer than {{n}}")
pipe = image_pipeline(paths, labels, image_size={image}, batch_size={batch}, training=True, seed=seed,
                      crop_scale={crop})
seen = sum(int(x.shape[0]) for x, _ in pipe.dataset)
print(json.dumps({{"examples": seen, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _peak_memory(root: Path, n_files: int, seed: int) -> tuple[float, int]:
    """Peak resident MiB of a fresh process streaming one epoch over ``n_files`` files."""
    code = _PROBE.format(image=IMAGE, batch=BATCH, crop=CROP_SCALE)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code, os.fspath(root), str(n_files), str(seed)],
                         capture_output=True, text=True, env=env, check=False, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"the memory probe over {n_files} files failed:\n{out.stderr[-2000:]}")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    return record["maxrss_kib"] / 1024.0, record["examples"]


def _keras_reader(root: Path, seed: int) -> Any:
    tf = tensorflow("the input benchmark")
    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(IMAGE, IMAGE), batch_size=BATCH, shuffle=False, seed=seed, verbose=False,
    )
    return ds.map(lambda x, y: (x / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _images_per_second(dataset: Any, batches: int) -> float:
    it = iter(dataset.repeat())
    for _ in range(3):
        next(it)
    begin = time.perf_counter()
    n = sum(int(next(it)[0].shape[0]) for _ in range(batches))
    rate = n / (time.perf_counter() - begin)
    _release(it)
    return rate


def _throughput(ctx: BenchContext, root: Path, splits: Any) -> dict[str, Any]:
    batches = 10 if ctx.quick else 60
    ours = lambda: _images_per_second(image_pipeline(  # noqa: E731
        splits.paths("train"), splits.y_train, image_size=IMAGE, batch_size=BATCH, training=False).dataset, batches)
    theirs = lambda: _images_per_second(_keras_reader(root / "train", ctx.seed), batches)  # noqa: E731
    samples = interleave({"tenfold": ours, "keras reader": theirs}, repeats=3 if ctx.quick else 6, warmup=1)
    return ratio_row(
        "images/s, tenfold.data.image_pipeline vs keras.utils.image_dataset_from_directory (decode + resize)",
        samples, "keras reader", "tenfold", unit="images/s", goal=">= 0.90", goal_met=lambda v: v >= 0.9,
        lower_is_better=False,
    )


def _budget_table(budget: float, used: dict[int, tuple[int, int, float]]) -> str:
    lines = [f"Equal wall-clock budget of {budget:.0f} s per factor (echo after decoding), after the first step:",
             "", "| echo factor | steps | fresh examples read | test accuracy |", "|---|---|---|---|"]
    lines += [f"| {e} | {steps} | {fresh} | {100 * acc:.1f}% |" for e, (steps, fresh, acc) in used.items()]
    return "\n".join(lines)


def _notes(root: Path, r: float, samples: dict[str, list[float]], used: dict[int, tuple[int, int, float]],
           memory: dict[int, tuple[float, int]]) -> list[str]:
    record = json.loads((root / "complete.json").read_text(encoding="utf-8"))
    med = {k: float(np.median(s)) for k, s in samples.items()}
    notes = [
        f"cache: {record['files']} JPEG files of {SOURCE}x{SOURCE}, {record['bytes'] / 2**20:.0f} MiB "
        f"(limit 2048 MiB: {'met' if record['bytes'] < 2**31 else 'NOT met'}), written once in "
        f"{record['seconds']:.0f} s, under {root}",
        f"R = steps/s from batches in memory ({med['memory']:.2f}) ÷ steps/s from the pipeline without echo "
        f"({med['e=1']:.2f}) = {r:.2f}, measured in the same interleaved rounds; on a CPU the pipeline and "
        "the step share the cores: if they took turns, echo's speed-up would be (1 + u)/(1 + u/e) with "
        "u = R − 1, below min(e, R)",
    ]
    plain = used[1][2]
    for e in FACTORS[1:]:
        acc = used[e][2]
        notes.append(f"echo {e} after decoding: test accuracy {100 * acc:.1f}% vs {100 * plain:.1f}% without echo "
                     f"at equal wall-clock (goal ≥ −1 point: {'met' if acc >= plain - 0.01 else 'NOT met'})")
    (a_mib, a_n), (b_mib, b_n) = (memory[n] for n in sorted(memory))
    notes.append(f"peak resident memory of one streamed epoch: {a_mib:.0f} MiB over {a_n} files, {b_mib:.0f} MiB "
                 f"over {b_n} files (files ×{b_n / a_n:.1f}, memory ×{b_mib / a_mib:.2f})")
    return notes


def _plot(ctx: BenchContext, samples: dict[str, list[float]], r: float,
          used: dict[int, tuple[int, int, float]], memory: dict[int, tuple[float, int]]) -> str:
    base = np.asarray(samples["e=1"])

    def ratio(key: str) -> float:  # the rows' statistic: the median of the per-round ratios
        return float(np.median(np.asarray(samples[key])[: len(base)] / base[: len(samples[key])]))

    speed = [line(list(FACTORS), [1.0] + [ratio(f"{p} e={e}") for e in FACTORS[1:]], f"echo after {p}", marker="o")
             for p in PLACES]
    speed += [line(list(FACTORS), [min(e, r) for e in FACTORS], "min(e, R)", color="k", ls="--"),
              line(list(FACTORS), [0.8 * min(e, r) for e in FACTORS], "goal 0.8·min(e, R)", color="grey", ls=":")]
    percent = [100 * used[e][2] for e in FACTORS]
    panels = [
        Panel(speed, title=f"steps/s ÷ no echo, R = {r:.2f}", xlabel="echo factor e", ylabel="speed-up"),
        Panel([bar([str(e) for e in FACTORS], percent, color="tab:green")], title="equal wall-clock budget",
              xlabel="echo factor e (after decoding)", ylabel="test accuracy (%)", ylim=(max(0, min(percent) - 10), 100)),
        Panel([bar([f"{memory[n][1]} files" for n in sorted(memory)], [memory[n][0] for n in sorted(memory)],
                   color="tab:purple")], title="peak resident memory, one epoch", ylabel="MiB"),
    ]
    return figure(ctx.out_dir / "input.png", panels, size=(13, 3.8))


@benchmark("input", "Streaming image folders: R, echo after decode/augment, equal-time accuracy, memory, vs Keras' reader")
def run(ctx: BenchContext) -> BenchResult:
    root = generated_folder(FILES[ctx.quick], ctx.seed, ctx.log)
    splits = folder_splits(root, image_size=IMAGE, validation_fraction=0.05, seed=ctx.seed, check_files=False)
    ctx.log(f"input: {len(splits.train_files)} training files, {len(splits.test_files)} test files")
    reader = _throughput(ctx, root, splits)  # first, in a process that has run nothing else yet
    samples, r = _speed(ctx, splits)
    rows = [_r_row(samples), *_speed_rows(samples, r)]
    used = _equal_budget(ctx, splits, BUDGET[ctx.quick])
    rows += _budget_rows(used, splits.num_classes)
    memory = {n: _peak_memory(root, n, ctx.seed) for n in MEMORY_FILES[ctx.quick]}
    (a_mib, _), (b_mib, _) = (memory[n] for n in sorted(memory))
    small, large = sorted(memory)
    rows.append(value_row(f"peak resident MiB, one epoch over {large} vs {small} files", f"{small} files", a_mib,
                          f"{large} files", b_mib, unit="MiB", goal="<= 1.10", goal_met=lambda v: v <= 1.1))
    rows.append(reader)
    return BenchResult(
        description=(
            f"Streaming an image folder of {SOURCE}×{SOURCE} JPEG files through `tenfold.data.image_pipeline` "
            f"(decode, random-resized crop to {IMAGE}×{IMAGE}, flip) into `tenfold.models.small_resnet`, batch "
            f"{BATCH}. A = no echo, B = `echo=e` after decoding or after augmentation; memory and Keras' reader "
            "compared on the same folder."
        ),
        rows=rows, tables=[_fresh_table(samples), _budget_table(BUDGET[ctx.quick], used)],
        plots=[_plot(ctx, samples, r, used, memory)], notes=_notes(root, r, samples, used, memory),
    )

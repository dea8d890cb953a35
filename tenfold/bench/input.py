"""Benchmark ``input``: the streaming image pipeline, and data echoing where it matters.

A generated image folder (``train/`` and ``test/`` layout; bundled digits drawn light on a
darker ground at random colour, scale and position with noise into ``SOURCE``-pixel JPEG
files, test files from digits never used for training) is written once into the cache
directory (``$TENFOLD_CACHE`` or ``~/.cache/tenfold``, ``bench-input-<size>-<files>-t<task>``).
Training reads it through :func:`tenfold.data.image_pipeline` (decode, random-resized crop
to 32×32, flip)
into tenfold's default model (``tenfold.models.small_resnet``, width 8, at 32×32: lighter
than the input, so that the input is the bottleneck). The training runs in a fresh process
whose step has one core (``STEP_THREADS``) while the pipeline's readers have the other
(``INPUT_THREADS``), as an accelerator and its host would: on shared cores the two take
turns and no echo factor could reach the goal below. Measured:

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

SOURCE = 1280  # pixels of the generated JPEG files: decoding them is the slow stage
TASK = 3  # the generated task's version, part of the cache folder's name
IMAGE = 32
WIDTH = 8  # tenfold's default model (small_resnet), narrower: the step is lighter than the input
BATCH = 32
# the training step gets one core and the input pipeline the other, as an accelerator and
# its host would be: on shared cores they take turns, and echo's ideal speed-up is
# R / (1 + (R - 1)/e), below 0.8·min(e, R) for every R < 12 at e = 4
STEP_THREADS = 1
INPUT_THREADS = 1
FACTORS = (1, 2, 4)
PLACES = ("decode", "augment")
CROP_SCALE = (0.5, 1.0)  # the digit stays in view
FILES = {False: 20_000, True: 1_200}
MEMORY_FILES = {False: (5_000, 20_000), True: (400, 1_200)}
TEST_SHARE = 0.15
BUDGET = {False: 90.0, True: 8.0}  # seconds of training per echo factor at equal wall-clock
SKIP = 6  # steps that drain what the buffers gathered before the clock starts


def cache_dir() -> Path:
    """``$TENFOLD_CACHE`` or ``~/.cache/tenfold``."""
    return Path(os.environ.get("TENFOLD_CACHE") or Path.home() / ".cache" / "tenfold")


MIN_CONTRAST = 80  # luminance (0-255) of the digit above its background
NOISE = 3  # +- grey levels of noise on every pixel
QUALITY = 80  # JPEG quality of the generated files


def _luminance(rgb: np.ndarray) -> float:
    """ITU-R BT.601 luma of an RGB colour."""
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _draw(rng: np.random.Generator, digit: np.ndarray) -> np.ndarray:
    """One ``SOURCE``² RGB image: a coloured, scaled, placed digit on a noisy background.

    The digit is at least :data:`MIN_CONTRAST` brighter (luma) than its background: with
    random polarity as well as random colours (task 1), tenfold's default model stayed at
    chance after 420 steps (14 % on 10 classes), and the accuracy goal compared nothing.
    """
    from PIL import Image

    bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    while _luminance(fg) - _luminance(bg) < MIN_CONTRAST:  # a light digit on a darker ground
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    side = int(SOURCE * rng.uniform(0.6, 0.9))
    mask = np.asarray(Image.fromarray((digit * 255).astype("uint8")).resize((side, side), Image.BILINEAR))
    canvas = np.empty((SOURCE, SOURCE, 3), np.int16)
    canvas[:] = bg
    oy, ox = rng.integers(0, SOURCE - side + 1, 2)
    m = mask[..., None].astype(np.int16)
    canvas[oy:oy + side, ox:ox + side] = (bg * (255 - m) + fg * m) // 255
    canvas += rng.integers(-NOISE, NOISE + 1, (SOURCE, SOURCE, 1), dtype=np.int16)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def generated_folder(n_files: int, seed: int = 0, log: Any = print) -> Path:
    """The bench folder of ``n_files`` JPEG files, written once (a marker file when complete),
    by one process per core; file ``i`` is drawn from its own generator ``(seed, i)``."""
    root = cache_dir() / f"bench-input-{SOURCE}-{n_files}-t{TASK}"
    if (root / "complete.json").is_file():
        return root
    _, y = digit_images()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    held_out = set(order[: int(TEST_SHARE * len(y))].tolist())  # test digits never trained on
    pools = {"test": sorted(held_out), "train": sorted(set(range(len(y))) - held_out)}
    n_test = int(round(TEST_SHARE * n_files))
    jobs = []
    for split, count in (("test", n_test), ("train", n_files - n_test)):
        for i in range(count):
            k = int(rng.choice(pools[split]))
            jobs.append((len(jobs), k, os.fspath(root / split / str(int(y[k])) / f"{i:06d}.jpg")))
    for folder in {Path(path).parent for _, _, path in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(os.cpu_count() or 1, 8))
    log(f"input: writing {n_files} JPEG files of {SOURCE}x{SOURCE} into {root} (once, {workers} processes)")
    start = time.perf_counter()
    chunks = [(seed, jobs[w::workers]) for w in range(workers)]
    if workers == 1:
        _write_files(chunks[0])
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_files, chunks))
    size = sum(f.stat().st_size for f in root.rglob("*.jpg"))
    record = {"files": n_files, "bytes": size, "seconds": time.perf_counter() - start}
    (root / "complete.json").write_text(json.dumps(record), encoding="utf-8")
    return root


def _write_files(chunk: tuple[int, list[tuple[int, int, str]]]) -> None:
    """Draw and save ``(index, digit, path)`` files, each from the generator ``(seed, index)``."""
    from PIL import Image

    seed, jobs = chunk
    x, _ = digit_images()
    for index, k, path in jobs:
        Image.fromarray(_draw(np.random.default_rng([seed, index]), x[k])).save(path, quality=QUALITY)


def _model(seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = models.small_resnet((IMAGE, IMAGE, 3), 10, width=WIDTH)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _pipeline(splits: Any, seed: int, factor: int = 1, place: str = "decode") -> Any:
    """The training pipeline, its readers on a private pool of :data:`INPUT_THREADS` threads."""
    tf = tensorflow("the input benchmark")
    pipe = image_pipeline(
        splits.paths("train"), splits.y_train, image_size=IMAGE, batch_size=BATCH, training=True,
        echo=factor if factor > 1 else None, echo_at=place, seed=seed, crop_scale=CROP_SCALE,
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = INPUT_THREADS
    pipe.dataset = pipe.dataset.with_options(options)
    return pipe


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
        f"({med['e=1']:.2f}) = {r:.2f}, measured in the same interleaved rounds, the step on {STEP_THREADS} "
        f"core and the input on {INPUT_THREADS}: on shared cores they would take turns, and echo's speed-up "
        "would be R/(1 + (R − 1)/e), below 0.8·min(e, R) at e = 4 for every R < 12",
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


def _split_cores(seed: int, root: str, quick: bool) -> None:
    """Run in a fresh process (``python -c``): R, echo's steps/s and the equal-time accuracy,
    the training step on :data:`STEP_THREADS` threads; prints them as JSON on the last line."""
    tf = tensorflow("the input benchmark")
    tf.config.threading.set_intra_op_parallelism_threads(STEP_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(STEP_THREADS)
    ctx = BenchContext(quick=quick, seed=seed, log=lambda line: print(line, file=sys.stderr, flush=True))
    splits = _splits(Path(root), seed)
    samples, r = _speed(ctx, splits)
    used = _equal_budget(ctx, splits, BUDGET[quick])
    print(json.dumps({"samples": samples, "r": r, "used": {str(e): list(u) for e, u in used.items()}}))


def _measure_split(ctx: BenchContext, root: Path) -> tuple[dict[str, list[float]], float, dict[int, Any]]:
    code = f"from tenfold.bench.input import _split_cores; _split_cores({ctx.seed}, {os.fspath(root)!r}, {ctx.quick})"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, check=False,
                         timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"the input benchmark's training process failed (exit {out.returncode}); see above")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    used = {int(e): (int(u[0]), int(u[1]), float(u[2])) for e, u in record["used"].items()}
    return record["samples"], float(record["r"]), used


def _splits(root: Path, seed: int) -> Any:
    return folder_splits(root, image_size=IMAGE, validation_fraction=0.05, seed=seed, check_files=False)


@benchmark("input", "Streaming image folders: R, echo after decode/augment, equal-time accuracy, memory, vs Keras' reader")
def run(ctx: BenchContext) -> BenchResult:
    root = generated_folder(FILES[ctx.quick], ctx.seed, ctx.log)
    splits = _splits(root, ctx.seed)
    ctx.log(f"input: {len(splits.train_files)} training files, {len(splits.test_files)} test files")
    reader = _throughput(ctx, root, splits)  # first, in a process that has run nothing else yet
    ctx.log(f"input: training, the step on {STEP_THREADS} core and the input on {INPUT_THREADS} (a fresh process)")
    samples, r, used = _measure_split(ctx, root)
    rows = [_r_row(samples), *_speed_rows(samples, r)]
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
            f"(decode, random-resized crop to {IMAGE}×{IMAGE}, flip) into `tenfold.models.small_resnet` (width "
            f"{WIDTH}), batch {BATCH}, the training step on {STEP_THREADS} core and the pipeline's readers on "
            f"{INPUT_THREADS} (as an accelerator and its host). A = no echo, B = `echo=e` after decoding or after "
            "augmentation; memory and Keras' reader (both on every core) compared on the same folder."
        ),
        rows=rows, tables=[_fresh_table(samples), _budget_table(BUDGET[ctx.quick], used)],
        plots=[_plot(ctx, samples, r, used, memory)], notes=_notes(root, r, samples, used, memory),
    )

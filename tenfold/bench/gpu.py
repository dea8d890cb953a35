"""The GPU run (issue 16, item 5): precision, remat and optimizers measured under JAX.

A machine with one NVIDIA GPU here has JAX and PyTorch but no TensorFlow, so this module
imports only ``keras`` (on ``KERAS_BACKEND=jax``), ``jax`` and the backend-neutral parts of
tenfold. ``benchmarks/gpu/run.sh`` installs the wheels the machine lacks and runs
``python -m tenfold.bench.gpu --out $OUT``; what it measures, each model trained by one
jitted pure training step (``model.stateless_call``, ``jax.grad``,
``optimizer.stateless_apply``; state donated), ``steps`` steps per timed sample, variants
interleaved after a warm-up (:func:`tenfold.bench.harness.interleave`), medians:

* **precision** — training throughput of ``float32``, ``mixed_bfloat16`` and
  ``mixed_float16`` (Adam inside ``keras.optimizers.LossScaleOptimizer``) on
  ``keras.applications.ResNet50`` (224×224, batch 64, ``weights=None``) and the 6-block
  ``MultiHeadAttention`` encoder of the models benchmark (:func:`tenfold.bench.models.encoder`,
  batch 64, sequence 512). Goal: ``mixed_bfloat16`` ≥ 2× float32 on ResNet50.
* **remat** — ``tenfold.remat.apply(model, "sqrt")`` against the plain model: peak memory
  (``tenfold.remat.peak_memory``: XLA's compiled memory analysis of the step on JAX) and
  step time. Goal: ``sqrt`` peak ≤ 0.5× on the encoder.
* **optimizers** — Adam, ``tenfold.optimizers.Adafactor`` and ``tenfold.optimizers.SM3`` on
  the encoder: ``tenfold.optimizers.state_bytes`` and step time.
* **configure** — what ``tenfold.precision.configure("auto", model=..., sample=...)``
  chooses on ResNet50 (falling back to ``configure("auto")`` where that signature is not
  there, which the result records), and the rule's choice without a model.

The whole run keeps to a time budget (``--budget`` seconds): sections run in order of what
the goals need, a section whose expected cost (from the compile and run times seen so far)
does not fit is skipped and named, and ``gpu.json`` is rewritten after every section, so
the file is complete up to the last section even when the run is killed.
``--tiny`` (32×32 images on :func:`mini_resnet` instead of ResNet50, batch 4, sequence 16,
2 blocks, 2 steps) is the CPU check of the test suite. ``--render`` rebuilds ``benchmarks/RESULTS.md`` from ``benchmarks/results``
(where a measured ``gpu.json`` is committed) without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import _validate, optimizers, precision, remat
from tenfold.bench.harness import interleave, ratio_row, value_row
from tenfold.bench.harness.report import write_results_md
from tenfold.bench.harness.result import RESULTS_DIR
from tenfold.bench.models import encoder

NAME = "gpu"
TITLE = "GPU"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BF16_GOAL = 2.0  # mixed_bfloat16 / float32 training throughput on ResNet50
REMAT_GOAL = 0.5  # remat "sqrt" / plain peak memory on the encoder
BUDGET_S = 420.0
MIB = 2**20
COMMAND = "bash benchmarks/gpu/run.sh"  # through the device tool: see benchmarks/gpu/README.md
DESCRIPTION = (
    "Precision, recompute and optimizers on one GPU through Keras' JAX backend (the GPU machine "
    "has no TensorFlow): each model trained by one jitted pure training step, variants "
    "interleaved, medians. A = float32 / the plain model / Adam, B = the technique."
)


@dataclass(frozen=True)
class Sizes:
    """Model and timing sizes of a run."""

    image: int = 224
    batch: int = 64
    seq: int = 512
    layers: int = 6
    d: int = 256
    heads: int = 8
    steps: int = 10  # training steps in one timed sample
    repeats: int = 5  # interleaved rounds
    warmup: int = 1  # untimed rounds after the compile
    image_model: str = "ResNet50"  # a keras.applications name, or "mini" (:func:`mini_resnet`)
    dropout: float = 0.1  # the encoder's


FULL = Sizes()
# the CPU check: a keras.applications ResNet50 training step takes minutes to compile on two
# CPU cores, so the tiny run trains the small residual network of mini_resnet instead, and
# without dropout (its random bits double the compile time of the encoder on a CPU)
TINY = Sizes(image=32, batch=4, seq=16, layers=2, d=32, heads=2, steps=2, repeats=2, warmup=1,
             image_model="mini", dropout=0.0)


def _jax() -> Any:
    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"tenfold.bench.gpu measures on Keras' JAX backend; the backend is "
            f"{keras.backend.backend()!r}. Run it with KERAS_BACKEND=jax."
        )
    import jax

    return jax


class Budget:
    """Seconds left of the run's budget, and whether a section expected to take ``s`` fits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = _validate.number("budget", seconds, low=0)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def fits(self, expected: float) -> bool:
        return self.left() >= expected


class Trainer:
    """One model and optimizer as a jitted pure training step, its state on the device.

    ``state`` is ``(trainable, non_trainable, optimizer variables)`` as JAX arrays (copies:
    the Keras variables keep their own buffers, as the step donates ``state``). The loss is
    sparse cross-entropy on the logits cast to float32, scaled by the optimizer
    (``LossScaleOptimizer`` under ``mixed_float16``) inside a ``StatelessScope`` as Keras'
    own JAX trainer does.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Any, y: Any) -> None:
        jax = _jax()
        self.model, self.optimizer = model, optimizer
        optimizer.build(model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.x, self.y = jax.device_put(x), jax.device_put(y)
        self.state = tuple([jax.numpy.array(v.value, copy=True) for v in group]
                           for group in (model.trainable_variables, model.non_trainable_variables,
                                         optimizer.variables))
        self.jitted = jax.jit(self._step, donate_argnums=0)
        self.compiled: Any = None
        self.compile_s = 0.0

    def _step(self, state: Any, x: Any, y: Any) -> tuple[Any, Any]:
        jax = _jax()
        trainable, non_trainable, opt_vars = state

        def loss(trainable: Any) -> tuple[Any, tuple[Any, Any]]:
            logits, new_non_trainable = self.model.stateless_call(trainable, non_trainable, x, training=True)
            value = self.loss_fn(y, ops.cast(logits, "float32"))
            with keras.StatelessScope(state_mapping=list(zip(self.optimizer.variables, opt_vars))):
                scaled = self.optimizer.scale_loss(value)
            return scaled, (value, new_non_trainable)

        grads, (value, new_non_trainable) = jax.grad(loss, has_aux=True)(trainable)
        new_trainable, new_opt_vars = self.optimizer.stateless_apply(opt_vars, grads, trainable)
        return (new_trainable, new_non_trainable, new_opt_vars), value

    def compile(self) -> float:
        """Compile the step ahead of time; returns (and keeps) the seconds it took."""
        start = time.perf_counter()
        self.compiled = self.jitted.lower(self.state, self.x, self.y).compile()
        self.compile_s = time.perf_counter() - start
        return self.compile_s

    def run(self, steps: int) -> float:
        """Seconds of ``steps`` training steps, waited for on the device."""
        if self.compiled is None:
            self.compile()
        start = time.perf_counter()
        value = None
        for _ in range(steps):
            self.state, value = self.compiled(self.state, self.x, self.y)
        _jax().block_until_ready((self.state, value))
        return time.perf_counter() - start

    def loss(self) -> float:
        """The loss of one more step (finite when training works)."""
        self.state, value = self.compiled(self.state, self.x, self.y)
        return float(value)

    def peak_bytes(self) -> int:
        """``tenfold.remat.peak_memory`` of the step (XLA's compiled memory analysis on JAX)."""
        return remat.peak_memory(self.jitted, self.state, self.x, self.y)


# ---------------------------------------------------------------- the cases


@dataclass
class Case:
    """A model family: ``make()`` builds one under the dtype policy in force; one batch."""

    key: str
    label: str
    make: Callable[[], keras.Model]
    x: np.ndarray
    y: np.ndarray
    unit: str  # throughput unit
    per_step: int  # images or tokens in one step


def mini_resnet(size: int, classes: int = 10) -> keras.Model:
    """A two-block residual CNN with BatchNormalization: the image model of ``--tiny``."""
    inputs = keras.Input((size, size, 3))
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(16, 3, padding="same")(h)))
    for filters in (16, 32):
        shortcut = keras.layers.Conv2D(filters, 1, strides=2)(h)
        h = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(h)
        h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
        h = keras.layers.BatchNormalization()(keras.layers.Conv2D(filters, 3, padding="same")(h))
        h = keras.layers.ReLU()(h + shortcut)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(classes, name="classifier")(pooled), name="mini_resnet")


def cases(sizes: Sizes, seed: int = 0) -> dict[str, Case]:
    """The image model (``keras.applications`` with ``weights=None``, 10 classes, logits) and
    the MHA encoder at ``sizes``."""
    rng = np.random.default_rng(seed)
    s, b = sizes.image, sizes.batch
    images = rng.uniform(0, 255, size=(b, s, s, 3)).astype("float32")
    tokens = rng.integers(0, 1000, size=(b, sizes.seq)).astype("int32")
    labels = (np.arange(b) % 10).astype("int32")

    def image_model() -> keras.Model:
        if sizes.image_model == "mini":
            return mini_resnet(s)
        constructor = getattr(keras.applications, sizes.image_model)
        return constructor(weights=None, input_shape=(s, s, 3), classes=10, classifier_activation=None)

    def mha() -> keras.Model:
        return encoder(sizes.layers, sizes.d, heads=sizes.heads, seq=sizes.seq, dropout=sizes.dropout)

    return {
        "image": Case("image", f"{sizes.image_model} {s}×{s} batch {b}", image_model, images, labels,
                      "images/s", b),
        "encoder": Case("encoder", f"encoder ({sizes.layers}×MHA, d={sizes.d}, sequence {sizes.seq}) batch {b}",
                        mha, tokens, labels, "tokens/s", b * sizes.seq),
    }


def build(case: Case, policy: str = "float32", seed: int = 0) -> keras.Model:
    """``case.make()`` under the Keras dtype ``policy``; the global policy is restored."""
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        return case.make()
    finally:
        keras.config.set_dtype_policy(before)


def adam(policy: str = "float32") -> keras.optimizers.Optimizer:
    """Adam(1e-4), inside ``LossScaleOptimizer`` under ``mixed_float16``."""
    opt = keras.optimizers.Adam(1e-4)
    return keras.optimizers.LossScaleOptimizer(opt) if policy == "mixed_float16" else opt


# ---------------------------------------------------------------- the run


class Run:
    """The sections of a GPU run, their trainers and the result written after each."""

    def __init__(self, sizes: Sizes, out: Path, budget: Budget, *, tiny: bool, seed: int = 0,
                 log: Callable[[str], None] = print) -> None:
        self.sizes, self.out, self.budget, self.tiny, self.seed, self.log = sizes, out, budget, tiny, seed, log
        self.cases = cases(sizes, seed)
        self.trainers: dict[tuple[str, str], Trainer] = {}
        self.rows: list[dict[str, Any]] = []
        self.tables: list[str] = []
        self.notes: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []
        self.sections: dict[str, float] = {}
        self.extra: dict[str, Any] = {"compile_s": {}, "losses": {}, "parameters": {}}

    # ---- helpers
    def trainer(self, case: Case, variant: str, make: Callable[[], Trainer]) -> Trainer:
        key = (case.key, variant)
        if key not in self.trainers:
            t = make()
            t.compile()
            self.extra["compile_s"][f"{case.key} {variant}"] = round(t.compile_s, 2)
            self.extra["parameters"][case.key] = int(sum(np.prod(v.shape) for v in t.model.trainable_variables))
            self.log(f"    compiled {case.key} {variant} in {t.compile_s:.1f} s")
            self.trainers[key] = t
        return self.trainers[key]

    def precision_trainer(self, case: Case, policy: str) -> Trainer:
        return self.trainer(case, policy, lambda: Trainer(build(case, policy, self.seed), adam(policy),
                                                          case.x, case.y))

    def expected(self, key: str, compiles: float) -> float:
        """Expected seconds of a section of model ``key`` that compiles ``compiles`` steps:
        1.3× the longest compile seen of ``key`` (of any model when none of ``key`` was seen
        yet; 60 s before any) a step, plus 10 s of timed steps."""
        seen = [s for name, s in self.extra["compile_s"].items() if name.startswith(key + " ")]
        seen = seen or list(self.extra["compile_s"].values()) or [60.0]
        return 1.3 * max(seen) * compiles + 10.0

    def missing(self, key: str, *variants: str) -> int:
        """How many of ``variants`` of model ``key`` are not compiled yet."""
        return sum((key, v) not in self.trainers for v in variants)

    def time(self, trainers: dict[str, Trainer], *, per_step: int | None = None) -> dict[str, list[float]]:
        """Interleaved samples: throughput (``per_step`` units a step) or seconds a step."""
        steps = self.sizes.steps

        def sample(t: Trainer) -> Callable[[], float]:
            if per_step is None:
                return lambda: t.run(steps) / steps
            return lambda: per_step * steps / t.run(steps)

        return interleave({name: sample(t) for name, t in trainers.items()},
                          repeats=self.sizes.repeats, warmup=self.sizes.warmup)

    def record_losses(self, case: Case, trainers: dict[str, Trainer]) -> None:
        for name, t in trainers.items():
            self.extra["losses"][f"{case.key} {name}"] = t.loss()

    # ---- sections
    def precision_section(self, key: str) -> None:
        case = self.cases[key]
        trainers = {}
        for policy in PRECISIONS:
            try:
                trainers[policy] = self.precision_trainer(case, policy)
            except Exception as err:  # e.g. XLA:CPU has no float16 dot with float32 accumulation
                if policy == "float32":
                    raise
                self.notes.append(f"{case.label}, {policy}: no training step ({type(err).__name__}: {err}).")
                self.log(f"    {case.key} {policy}: {type(err).__name__}: {err}")
        samples = self.time(trainers, per_step=case.per_step)
        self.record_losses(case, trainers)
        for policy in [p for p in PRECISIONS[1:] if p in trainers]:
            goal = (dict(goal=f">= {BF16_GOAL:g}", goal_met=lambda r: r >= BF16_GOAL)
                    if key == "image" and policy == "mixed_bfloat16" else {})
            scaled = " (loss-scaled Adam)" if policy == "mixed_float16" else ""
            self.rows.append(ratio_row(f"{case.label}: training throughput, {policy}{scaled} vs float32",
                                       samples, "float32", policy, unit=case.unit, lower_is_better=False, **goal))

    def remat_section(self, key: str) -> None:
        case = self.cases[key]
        plain = self.precision_trainer(case, "float32")

        def make() -> Trainer:
            wrapped = remat.apply(build(case, "float32", self.seed), "sqrt")
            self.extra[f"{key} remat segments"] = sum(isinstance(layer, remat.Recompute)
                                                      for layer in wrapped.layers)
            return Trainer(wrapped, adam(), case.x, case.y)

        sqrt = self.trainer(case, "remat sqrt", make)
        memory = {"plain": plain.peak_bytes(), "sqrt": sqrt.peak_bytes()}
        samples = self.time({"plain": plain, "sqrt": sqrt})
        self.record_losses(case, {"remat sqrt": sqrt})
        goal = dict(goal=f"<= {REMAT_GOAL:g}", goal_met=lambda r: r <= REMAT_GOAL) if key == "encoder" else {}
        segments = self.extra[f"{key} remat segments"]
        self.rows.append(value_row(f"{case.label}: peak memory (compiled), remat sqrt ({segments} segments)",
                                   "plain", memory["plain"] / MIB, "remat sqrt", memory["sqrt"] / MIB,
                                   unit="MiB", **goal))
        self.rows.append(ratio_row(f"{case.label}: step time, remat sqrt", samples, "plain", "sqrt", unit="s"))

    def optimizers_section(self) -> None:
        case = self.cases["encoder"]
        trainers = {"Adam": self.precision_trainer(case, "float32")}
        made = {"Adafactor": lambda: optimizers.Adafactor(),
                "SM3": lambda: optimizers.SM3(0.1)}
        for name, make_opt in made.items():
            trainers[name] = self.trainer(case, name, lambda m=make_opt: Trainer(build(case, "float32", self.seed),
                                                                                m(), case.x, case.y))
        state = {name: optimizers.state_bytes(t.optimizer) for name, t in trainers.items()}
        self.extra["optimizer_state_bytes"] = state
        samples = self.time(trainers)
        self.record_losses(case, {n: t for n, t in trainers.items() if n != "Adam"})
        for name in made:
            self.rows.append(value_row(f"{case.label}: optimizer state, {name} vs Adam", "Adam",
                                       state["Adam"] / MIB, name, state[name] / MIB, unit="MiB"))
            self.rows.append(ratio_row(f"{case.label}: step time, {name} vs Adam", samples, "Adam", name, unit="s"))

    def configure_section(self) -> None:
        case = self.cases["image"]
        rule = precision.configure("auto")
        info: dict[str, Any] = {"rule": {"policy": rule.policy, "reason": rule.reason, "device": rule.device}}
        model = build(case, "float32", self.seed)
        try:
            report = precision.configure("auto", model=model, sample=(case.x, case.y))
            info["call"] = f'configure("auto", model={case.label}, sample=(x, y))'
        except TypeError as err:  # configure without the model/sample signature
            report = precision.configure("auto")
            info["call"] = 'configure("auto")'
            info["fallback_because"] = str(err)
        finally:
            keras.config.set_dtype_policy("float32")
        info["report"] = report.to_dict() if hasattr(report, "to_dict") else str(report)
        self.extra["configure"] = info
        lines = ["| call | policy | XLA | reason |", "|---|---|---|---|",
                 f"| `configure(\"auto\")` (rule, no model) | {rule.policy} | {rule.xla} | {rule.reason} |",
                 f"| `{info['call']}` | {report.policy} | {report.xla} | {report.reason} |"]
        probe = info["report"].get("probe") if isinstance(info["report"], dict) else None
        for c in probe or []:  # the candidates configure timed, when it reports them
            ratio = f"{c['ratio']:.3f}" if isinstance(c.get("ratio"), (int, float)) else "–"
            lines.append(f"| probe candidate {c.get('name', '?')} | {c.get('policy', '?')} | {c.get('xla', '?')} | "
                         f"{ratio}× float32 throughput; {c.get('why', '')} |")
        self.tables.append("\n".join(lines))
        if "fallback_because" in info:
            self.notes.append("configure(\"auto\", model=..., sample=...) is not there yet "
                              f"(TypeError: {info['fallback_because']}); configure(\"auto\") used.")

    def plan(self) -> list[tuple[str, Callable[[], None], Callable[[], float]]]:
        """(name, section, expected seconds), in the order the goals need them. A remat
        step counts 1.5 compiles, a memory analysis 0.25 (a read of the compilation cache)."""
        return [
            ("image-precision", lambda: self.precision_section("image"), lambda: 0.0),
            ("encoder-remat", lambda: self.remat_section("encoder"),
             lambda: self.expected("encoder", self.missing("encoder", "float32") + 2.0)),
            ("encoder-precision", lambda: self.precision_section("encoder"),
             lambda: self.expected("encoder", self.missing("encoder", *PRECISIONS))),
            ("image-remat", lambda: self.remat_section("image"), lambda: self.expected("image", 2.0)),
            ("optimizers", self.optimizers_section,
             lambda: self.expected("encoder", self.missing("encoder", "float32", "Adafactor", "SM3"))),
            ("configure", self.configure_section, lambda: self.expected("image", 4.0)),
        ]

    def execute(self, only: Sequence[str] | None = None) -> Path:
        """Run the sections (``only`` those named, in plan order), saving after each."""
        names = [name for name, _, _ in self.plan()]
        for name in only or []:
            _validate.choice("only", name, names)
        self.save(complete=False)
        for name, section, expected in self.plan():
            if only and name not in only:
                continue
            need = expected()
            if not self.budget.fits(need):
                self.skipped.append(name)
                self.notes.append(f"{name}: skipped by the time budget ({self.budget.left():.0f} s left of "
                                  f"{self.budget.seconds:.0f}, about {need:.0f} s expected).")
                self.log(f"[skip] {name}: {self.budget.left():.0f} s left, {need:.0f} s expected")
                continue
            self.log(f"[{self.budget.elapsed():.0f} s] {name}")
            start = time.perf_counter()
            try:
                section()
            except Exception as err:  # one broken section must not lose the others
                self.failed.append(name)
                self.notes.append(f"{name}: failed with {type(err).__name__}: {err}")
                self.log(f"[fail] {name}: {type(err).__name__}: {err}")
            self.sections[name] = round(time.perf_counter() - start, 1)
            self.save(complete=False)
        return self.save(complete=True)

    # ---- the result
    def result(self, complete: bool) -> dict[str, Any]:
        from tenfold.env import environment

        jax = _jax()
        device = jax.devices()[0]
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        env = environment()
        env["device_kind"] = device.device_kind
        env["device_platform"] = device.platform
        env["default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
        if stats:
            env["peak_bytes_in_use"] = int(stats.get("peak_bytes_in_use", 0))
        compile_table = ["| model, variant | compile s |", "|---|---|"] + [
            f"| {name} | {s:.1f} |" for name, s in self.extra["compile_s"].items()]
        s = self.sizes
        notes = [
            f"Sizes: images {s.image}×{s.image}, batch {s.batch}; encoder {s.layers} blocks, d={s.d}, "
            f"{s.heads} heads, sequence {s.seq}; {s.steps} steps a sample, {s.repeats} interleaved rounds "
            f"after {s.warmup} warm-up round(s).",
            "Peak memory is XLA's compiled memory analysis of the whole jitted step (temporaries + outputs "
            "− donated aliases), as tenfold.remat.peak_memory measures on JAX.",
            *self.notes,
        ]
        if not complete:
            notes.append("Incomplete: the run stopped before its last section.")
        return {
            "name": NAME, "title": TITLE, "description": DESCRIPTION, "device": device.device_kind,
            "rows": self.rows, "tables": [*self.tables, "\n".join(compile_table)], "plots": [], "notes": notes,
            "env": env, "command": "python -m tenfold.bench.gpu --tiny" if self.tiny else COMMAND, "quick": self.tiny,
            "seconds": round(self.budget.elapsed(), 1), "complete": complete, "skipped": self.skipped,
            "failed": self.failed,
            "sections_s": self.sections, "sizes": asdict(self.sizes), "budget_s": self.budget.seconds,
            **{k: v for k, v in self.extra.items()},
        }

    def save(self, complete: bool) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{NAME}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.result(complete), indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def _compilation_cache() -> None:
    """A persistent compilation cache for this process: ``peak_memory`` compiles the step
    again (``jit(f).lower().compile()`` does not share the executable of ``compiled``), and
    the cache makes that a read."""
    jax = _jax()
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or tempfile.mkdtemp(prefix="tenfold-jax-cache-")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenfold.bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu"), help="folder for gpu.json")
    parser.add_argument("--tiny", action="store_true", help="CPU check sizes (32×32, batch 4, sequence 16)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds before measuring stops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated sections to run (default: all): "
                        "image-precision, encoder-remat, encoder-precision, image-remat, optimizers, configure")
    parser.add_argument("--render", action="store_true",
                        help=f"only rebuild RESULTS.md from {RESULTS_DIR} (where gpu.json is committed)")
    args = parser.parse_args(argv)
    if args.render:
        print(write_results_md(RESULTS_DIR))
        return 0
    budget = Budget(args.budget)
    jax = _jax()
    _compilation_cache()
    print(f"tenfold.bench.gpu on {jax.devices()[0].device_kind} ({jax.devices()[0].platform}), "
          f"budget {args.budget:.0f} s", flush=True)
    run = Run(TINY if args.tiny else FULL, args.out, budget, tiny=args.tiny, seed=args.seed,
              log=lambda m: print(m, flush=True))
    path = run.execute([n for n in args.only.split(",") if n] or None)
    for row in run.rows:
        met = "" if row.get("goal_met") is None else f"  goal {row['goal']}: {'met' if row['goal_met'] else 'NOT met'}"
        print(f"  {row['metric']}: B/A = {row['ratio']:.3f}{met}", flush=True)
    print(f"wrote {path} in {budget.elapsed():.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure, instead of guessing: time a few training steps of each precision candidate.

One static rule cannot choose for every machine: on an AMD EPYC with ``avx512_bf16`` and
no AMX, Keras' ``mixed_bfloat16`` trained MobileNetV2 at 0.63x float32 while a small ResNet
got 1.34x, and on an Intel CPU with AMX 2.38x (issue 16). :func:`probe` builds the model
once per candidate (float32, ``mixed_bfloat16``, ``mixed_float16`` with loss scaling, the
Grappler oneDNN rewrite, each with XLA on and off where that applies), starts every copy
from the same weights, and times single training steps on one batch in interleaved rounds
(candidate A, B, C, A, B, C, ...) so that a machine that slows down or speeds up during the
probe affects every candidate alike; the median step of each candidate is compared.

The timer is injectable (``timer=``, or the module-level ``_clock``) so that tests can make
a candidate slower with a test double instead of a sleep.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tenfold.precision.outputs import float32_outputs, output_layers

# every candidate starts from the same weights and takes its first step on the same batch,
# so the first step's loss compares the arithmetic alone; a candidate is accepted when
#   |first_loss - first_loss_float32| <= LOSS_RTOL * |first_loss_float32| + LOSS_ATOL
# and its loss after the probe steps is finite. The loss after the steps is reported but
# not compared: a few steps on one batch are chaotic (MobileNetV2, 32x32, batch 16, SGD
# 0.01: float32 with and without XLA, the same weights, first loss 2.3595 in both, 2.52
# against 2.67 three steps later, measured). bfloat16 keeps 8 bits of mantissa: its first
# loss is within about 1 % of float32's; 5 % still catches an overflow or a broken cast.
LOSS_RTOL = 0.05
LOSS_ATOL = 0.01
# a candidate replaces the reference (float32) only when its median step is at least this
# much shorter: a smaller difference is within the probe's noise and not worth a policy
SPEED_MARGIN = 0.02
# a probe of ``steps`` rounds whose reference (float32) steps add up to less than this many
# seconds goes on, whole rounds at a time, until they do or it has run MAX_ROUNDS_FACTOR x
# ``steps`` rounds: tenfold's default model takes 8 ms a step on 2 cores, and 8 steps
# (64 ms) chose a setting that re-measured over 30 steps ran at 0.79x float32 (bench auto)
MIN_TIMED_S = 1.0
MAX_ROUNDS_FACTOR = 25
# when the accepted candidates whose median step is within RUNOFF_MARGIN of the fastest are
# more than one, those alone run RUNOFF_FACTOR x as many rounds again (a runoff), and their
# medians over all their steps decide. Measured with 8 steps (bench auto, 2 cores): on
# ConvNeXtTiny the probe had float32+xla 1.15x faster than mixed_bfloat16+xla, and 30
# re-measured steps had it 0.94x; on BertBackbone mixed_bfloat16+xla 1.02x faster than
# float32+xla, re-measured 0.94x. The median of 3x the steps halves that spread (1/sqrt 3).
RUNOFF_MARGIN = 0.20
RUNOFF_FACTOR = 2

_clock: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class Candidate:
    """One setting the probe can time.

    Attributes:
        policy: ``"float32"``, ``"mixed_bfloat16"``, ``"mixed_float16"`` or ``"grappler"``.
        xla: whether the train step is compiled with ``jit_compile=True``.
    """

    policy: str
    xla: bool

    @property
    def name(self) -> str:
        return self.policy + ("+xla" if self.xla else "")

    @property
    def keras_policy(self) -> str:
        return "float32" if self.policy == "grappler" else self.policy


Timer = Callable[[str, Callable[[], Any]], float]


def wall_clock(name: str, step: Callable[[], Any]) -> float:
    """The default timer: seconds of one ``step()`` by :data:`_clock` (``time.perf_counter``).

    ``step`` returns the loss as a Python float, so the device has finished when it returns.
    """
    del name
    start = _clock()
    step()
    return _clock() - start


def probe(
    model: keras.Model,
    sample: tuple[Any, Any],
    candidates: Sequence[Candidate],
    *,
    steps: int,
    apply: Callable[[Candidate], None],
    timer: Timer | None = None,
) -> list[dict[str, Any]]:
    """Time ``steps`` training steps of each candidate, interleaved; one dict per candidate.

    A model whose float32 steps add up to less than :data:`MIN_TIMED_S` seconds gets more
    rounds, up to ``MAX_ROUNDS_FACTOR * steps``. When more than one accepted candidate is
    within :data:`RUNOFF_MARGIN` of the fastest, those run :data:`RUNOFF_FACTOR` times as
    many rounds again among themselves (a runoff) before their medians are taken.

    Each candidate trains a fresh copy of ``model`` rebuilt from its config under the
    candidate's dtype policy (every layer whose policy is plain float32 takes the
    candidate's; :func:`float32_outputs` then keeps the output layer float32), starting
    from ``model``'s weights, compiled with ``model``'s loss and a fresh optimizer of its
    optimizer's class and config (``mixed_float16``: wrapped in a ``LossScaleOptimizer``).
    A model that is not compiled trains with ``keras.optimizers.SGD(0.01)`` and sparse
    categorical cross-entropy for integer labels (``from_logits`` unless the output layer
    is a softmax), mean squared error otherwise. ``model`` itself is neither trained nor
    changed. One untimed step per candidate traces and compiles it; then ``steps`` rounds
    each time one step of every candidate in turn.

    ``apply(candidate)`` sets the process state the candidate needs (global dtype policy,
    Grappler rewrite) and is called before each of its steps. ``timer(name, step)`` returns
    the seconds of one ``step()``; the default is :func:`wall_clock`.

    Returns:
        per candidate: ``name``, ``policy``, ``xla``, ``median_s`` (median seconds per
        step), ``ratio`` (float32's median ÷ this median: above 1 is faster than float32),
        ``first_loss`` (the untimed first step, from the shared weights), ``loss`` (after
        the last step), ``warmup_s`` (seconds of the first step: tracing and compiling),
        ``steps`` (timed steps: ``steps``, or more for a fast model, see
        :data:`MIN_TIMED_S`, and more again in a runoff), ``runoff`` (whether it ran in the
        runoff), ``runoff_steps`` (its timed steps in the runoff), ``accepted`` and ``why``
        (see :data:`LOSS_RTOL`). The first candidate is the reference (float32) the others
        are compared with.
    """
    timer = timer or wall_clock
    x, y = sample
    weights = model.get_weights() if model.built else None
    make_optimizer, loss = _training_setup(model, y)
    runs = []
    for candidate in candidates:
        apply(candidate)
        clone = _clone(model, candidate.keras_policy)
        if weights is None:
            clone(x)  # build; every candidate then starts from the first one's weights
            weights = clone.get_weights()
        clone.set_weights(weights)
        optimizer = make_optimizer()
        if candidate.keras_policy == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        clone.compile(optimizer=optimizer, loss=loss, jit_compile=candidate.xla)
        start = _clock()
        first = _loss(clone.train_on_batch(x, y))  # traces and compiles, untimed
        runs.append({"candidate": candidate, "model": clone, "times": [], "first_loss": first,
                     "loss": first, "warmup_s": _clock() - start})

    def one_round(among: list[dict[str, Any]]) -> None:
        for run in among:
            apply(run["candidate"])
            losses: list[float] = []

            def step(clone: keras.Model = run["model"], losses: list[float] = losses) -> float:
                value = _loss(clone.train_on_batch(x, y))
                losses.append(value)
                return value

            run["times"].append(float(timer(run["candidate"].name, step)))
            if losses:
                run["loss"] = losses[-1]

    for _ in range(steps):
        one_round(runs)
    # a fast model's few steps last milliseconds, inside the machine's noise; more rounds
    # until the reference has MIN_TIMED_S of timed steps (at most MAX_ROUNDS_FACTOR x steps)
    while steps and sum(runs[0]["times"]) < MIN_TIMED_S and len(runs[0]["times"]) < MAX_ROUNDS_FACTOR * steps:
        one_round(runs)
    close = _contenders(runs)
    runoff_rounds = RUNOFF_FACTOR * len(runs[0]["times"]) if close else 0
    for _ in range(runoff_rounds):
        one_round(close)

    reference = runs[0]
    ref_median = statistics.median(reference["times"]) if steps else math.nan
    results = []
    for run in runs:
        candidate = run["candidate"]
        median = statistics.median(run["times"]) if steps else math.nan
        ok, why = _judge(run, reference)
        in_runoff = any(run is c for c in close)
        results.append({
            "name": candidate.name, "policy": candidate.policy, "xla": candidate.xla,
            "median_s": median, "ratio": ref_median / median if median > 0 else math.nan,
            "first_loss": run["first_loss"], "loss": run["loss"], "warmup_s": run["warmup_s"],
            "steps": len(run["times"]), "runoff": in_runoff,
            "runoff_steps": runoff_rounds if in_runoff else 0, "accepted": ok, "why": why,
        })
    return results


def _contenders(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accepted runs whose median step is within :data:`RUNOFF_MARGIN` of the fastest's,
    when they are more than one (none before any step is timed)."""
    if not runs[0]["times"]:
        return []
    accepted = [(statistics.median(r["times"]), r) for r in runs if _judge(r, runs[0])[0]]
    if not accepted:
        return []
    fastest = min(median for median, _ in accepted)
    close = [r for median, r in accepted if median <= (1 + RUNOFF_MARGIN) * fastest]
    return close if len(close) > 1 else []


def _loss(result: Any) -> float:
    """The loss of ``train_on_batch``'s result: a scalar, or the first of ``[loss, *metrics]``
    for a model compiled with metrics."""
    values = keras.tree.flatten(result)
    return float(np.asarray(values[0]))


def pick(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest accepted result; the reference (the first) unless another one's median
    step is more than :data:`SPEED_MARGIN` shorter."""
    reference = results[0]
    best = min((r for r in results if r["accepted"]), key=lambda r: r["median_s"], default=reference)
    if best is not reference and best["median_s"] > (1 - SPEED_MARGIN) * reference["median_s"]:
        return reference
    return best


def _judge(run: dict, reference: dict) -> tuple[bool, str]:
    if not math.isfinite(run["loss"]):
        return False, f"loss {run['loss']} after the probe steps is not finite"
    if run is reference:
        return True, "reference"
    first, ref_first = run["first_loss"], reference["first_loss"]
    tolerance = LOSS_RTOL * abs(ref_first) + LOSS_ATOL
    if not abs(first - ref_first) <= tolerance:
        return False, (f"first-step loss {first:.4g} differs from float32's {ref_first:.4g} by more "
                       f"than {LOSS_RTOL:.0%} + {LOSS_ATOL}")
    return True, f"first-step loss within {LOSS_RTOL:.0%} + {LOSS_ATOL} of float32's"


def _training_setup(model: keras.Model, y: Any) -> tuple[Callable[[], keras.optimizers.Optimizer], Any]:
    optimizer = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    if optimizer is not None and loss is not None:
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        cls, config = type(optimizer), optimizer.get_config()
        return lambda: cls.from_config(config), loss
    if np.issubdtype(np.asarray(y).dtype, np.integer):
        last = output_layers(model)[-1] if _functional(model) else None
        softmax = isinstance(last, keras.layers.Softmax) or (
            getattr(last, "activation", None) is keras.activations.softmax
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
    else:
        loss = keras.losses.MeanSquaredError()
    return lambda: keras.optimizers.SGD(0.01), loss


def _functional(model: keras.Model) -> bool:
    try:
        return bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _clone(model: keras.Model, policy: str) -> keras.Model:
    """``model`` rebuilt from its config with every float32 layer policy set to ``policy``."""
    config = keras.saving.serialize_keras_object(model)
    # the clone is compiled by the probe; the model's own compile config would have to
    # deserialize its loss, which fails for any unregistered function (a local loss, say)
    config.pop("compile_config", None)
    if policy != "float32":
        config = _with_policy(config, policy)
    try:
        with _global_policy(policy):
            clone = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError) as err:
        raise ValueError(
            f"configure('auto', model=...) rebuilds the model from its config once per "
            f"candidate, and {type(model).__name__} {model.name!r} cannot be rebuilt that way "
            f"({type(err).__name__}: {err}). Give it get_config()/from_config(), or choose the "
            "policy explicitly (configure('float32') / 'mixed_bfloat16' / ...)."
        ) from err
    if policy != "float32" and _functional(clone):
        float32_outputs(clone)
    return clone


class _global_policy:
    """Context manager: the global dtype policy ``policy`` inside, the previous one after."""

    def __init__(self, policy: str) -> None:
        self.policy = policy

    def __enter__(self) -> None:
        self.before = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.policy)

    def __exit__(self, *exc: object) -> None:
        keras.config.set_dtype_policy(self.before)


def _with_policy(config: Any, policy: str) -> Any:
    """``config`` with every serialized ``DTypePolicy("float32")`` replaced by ``policy``."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and config.get("config", {}).get("name") == "float32":
            return {**config, "config": {**config["config"], "name": policy}}
        return {key: _with_policy(value, policy) for key, value in config.items()}
    if isinstance(config, list):
        return [_with_policy(value, policy) for value in config]
    return config

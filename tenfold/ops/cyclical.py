"""Cyclical and one-cycle learning-rate curves as pure functions of the step.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", WACV,
    https://arxiv.org/abs/1506.01186 (section 3.1: the triangular policies).
    Smith & Topin 2019, "Super-Convergence: Very Fast Training of Neural Networks Using
    Large Learning Rates", https://arxiv.org/abs/1708.07120 (the 1cycle policy).

Both functions take any int32 / int64 / float step (a Python number, a NumPy value or a
backend tensor) and return a float32 scalar tensor; they are written in ``keras.ops`` so they
trace under ``tf.function`` and XLA.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from tenfold._validate import choice, number

CYCLICAL_MODES = ("triangular", "triangular2", "exp_range")
SCALE_MODES = ("cycle", "iterations")
ANNEAL_STRATEGIES = ("cos", "linear")


def _step(step: Any) -> Any:
    return ops.cast(ops.convert_to_tensor(step), "float32")


def cyclical_position(step: Any, step_size: float) -> tuple[Any, Any]:
    """Cycle number and triangle height of Smith's eq. (1).

    ``cycle = floor(1 + step / (2 * step_size))`` and
    ``height = max(0, 1 - |step / step_size - 2 * cycle + 1|)``, which rises from 0 to 1
    over the first ``step_size`` steps of each cycle and falls back to 0 over the next.
    Computed as ``(step_size - |t - step_size|) / step_size`` with ``t`` the position in the
    cycle; for an integer step and an integral ``step_size`` the position is found in the
    step's integer dtype, so it stays exact at any int64 step.

    Example:
    >>> cycle, height = cyclical_position(5, 10)
    >>> float(cycle), float(height)
    (1.0, 0.5)
    """
    s = ops.convert_to_tensor(step)
    size = float(step_size)
    dtype = keras.backend.standardize_dtype(s.dtype)
    if ("int" in dtype) and size.is_integer():
        period = ops.cast(int(2 * size), dtype)
        cycle_index = ops.floor_divide(s, period)
        t = ops.cast(s - cycle_index * period, "float32")
        cycle = ops.cast(cycle_index, "float32") + 1.0
    else:
        sf = ops.cast(s, "float32")
        cycle = ops.floor(1.0 + sf / (2.0 * size))
        t = sf - (cycle - 1.0) * (2.0 * size)
    height = (size - ops.abs(t - size)) / size
    return cycle, ops.clip(height, 0.0, 1.0)


def cyclical_learning_rate(
    step: Any,
    initial_learning_rate: float,
    maximal_learning_rate: float,
    step_size: float,
    *,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_mode: str | None = None,
) -> Any:
    """Smith's cyclical learning rate at ``step``.

    ``lr = initial + (maximal - initial) * max(0, 1 - x) * scale(v)`` with ``x`` and the cycle
    from :func:`cyclical_position`; ``scale`` is ``1`` (``"triangular"``),
    ``1 / 2 ** (v - 1)`` (``"triangular2"``) or ``gamma ** v`` (``"exp_range"``), where
    ``v`` is the cycle number (``scale_mode="cycle"``, the default of the triangular modes)
    or the step (``scale_mode="iterations"``, the default of ``"exp_range"``).

    Example:
    >>> round(float(cyclical_learning_rate(5, 0.1, 1.0, 10)), 6)
    0.55
    """
    choice("mode", mode, CYCLICAL_MODES)
    if scale_mode is None:
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    choice("scale_mode", scale_mode, SCALE_MODES)
    cycle, height = cyclical_position(step, step_size)
    v = cycle if scale_mode == "cycle" else _step(step)
    if mode == "triangular":
        scale = ops.ones_like(v)
    elif mode == "triangular2":
        scale = ops.power(2.0, -(v - 1.0))
    else:  # "exp_range"
        # gamma ** v as exp(v * log gamma) with log gamma taken in float64: rounding gamma
        # itself to float32 first is off by 1.8e-4 relative at gamma = 0.99994, step 17000
        # (the float64 formula of the reference code gives 0.0019014598 there)
        log_gamma = math.log(number("gamma", gamma, low=0, low_open=True))
        scale = ops.exp(v * ops.cast(log_gamma, "float32"))
    low = ops.cast(initial_learning_rate, "float32")
    high = ops.cast(maximal_learning_rate, "float32")
    return low + (high - low) * height * scale


def one_cycle_phase(step: Any, total_steps: float, warmup_fraction: float) -> tuple[Any, Any, Any]:
    """1cycle phase of ``step`` (0: warm-up, 1: anneal), progress ``p`` in it and ``1 - p``.

    The warm-up ends at ``warmup_fraction * total_steps - 1``; steps past ``total_steps - 1``
    stay at the end of the anneal. ``1 - p`` is computed from the step directly (not by
    subtraction), which keeps the rates near the end of a phase accurate in float32.
    """
    s = ops.cast(ops.convert_to_tensor(step), "float32")
    last = float(total_steps) - 1.0
    peak = float(warmup_fraction) * float(total_steps) - 1.0
    s = ops.clip(s, 0.0, last)
    warm = s <= peak
    span_warm = max(peak, 1e-12)
    span_anneal = max(last - peak, 1e-12)
    p = ops.where(warm, s / span_warm, (s - peak) / span_anneal)
    q = ops.where(warm, (peak - s) / span_warm, (last - s) / span_anneal)
    return ops.cast(ops.logical_not(warm), "float32"), ops.clip(p, 0.0, 1.0), ops.clip(q, 0.0, 1.0)


def _interpolate(start: Any, end: Any, p: Any, q: Any, anneal: str) -> Any:
    choice("anneal", anneal, ANNEAL_STRATEGIES)
    if anneal == "cos":
        # start + (end - start) * (1 - cos(pi p)) / 2, as weights sin^2 that stay exact at both ends
        half_pi = 0.5 * 3.141592653589793
        return start * ops.square(ops.sin(half_pi * q)) + end * ops.square(ops.sin(half_pi * p))
    return start * q + end * p  # "linear"


def one_cycle_learning_rate(
    step: Any,
    maximal_learning_rate: float,
    total_steps: float,
    *,
    warmup_fraction: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
) -> Any:
    """The 1cycle learning rate at ``step``.

    Warm-up from ``maximal / div_factor`` to ``maximal`` over the first
    ``warmup_fraction * total_steps`` steps, then anneal to
    ``maximal / (div_factor * final_div_factor)`` at step ``total_steps - 1``; both phases
    follow a half cosine (``anneal="cos"``) or a straight line (``"linear"``). Later steps
    keep the final rate.

    Example:
    >>> round(float(one_cycle_learning_rate(29, 1.0, 100)), 6)
    1.0
    """
    high = ops.cast(maximal_learning_rate, "float32")
    low = high / div_factor
    final = low / final_div_factor
    phase, p, q = one_cycle_phase(step, total_steps, warmup_fraction)
    warm = _interpolate(low, high, p, q, anneal)
    cool = _interpolate(high, final, p, q, anneal)
    return ops.where(phase > 0.5, cool, warm)

"""Interleaved A/B timing and the rows of the results table.

:func:`interleave` warms every variant up and then runs them in turns (A, B, A, B, ...) in
one process, so machine noise hits both alike; :func:`ratio_row` reports the median of the
per-round ratios B/A with its interquartile spread.

Example:
>>> import time
>>> samples = interleave({"A": lambda: time.sleep(0.001), "B": lambda: None}, repeats=3, warmup=1)
>>> row = ratio_row("sleep", samples, "A", "B", unit="s", lower_is_better=True)
>>> row["ratio"] < 1
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tenfold import _validate


def interleave(
    variants: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall-clock seconds of each variant, run in turns after ``warmup`` untimed rounds.

    A variant may return a float: then that value is recorded instead of the elapsed time
    (for benchmarks that measure something else, e.g. steps per second or bytes).
    """
    repeats = _validate.integer("repeats", repeats, low=1)
    warmup = _validate.integer("warmup", warmup, low=0)
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for key, fn in variants.items():
            start = time.perf_counter()
            value = fn()
            elapsed = time.perf_counter() - start
            samples[key].append(float(value) if isinstance(value, (int, float)) else elapsed)
    return samples


def _goal(row: dict[str, Any], goal: str | None, goal_met: Callable[[float], bool] | None) -> None:
    if goal is not None:
        row["goal"] = goal
        row["goal_met"] = bool(goal_met(row["ratio"])) if goal_met is not None else None


def ratio_row(
    metric: str,
    samples: dict[str, list[float]],
    a: str,
    b: str,
    *,
    unit: str = "s",
    goal: str | None = None,
    goal_met: Callable[[float], bool] | None = None,
    lower_is_better: bool = True,
) -> dict[str, Any]:
    """One table row: medians of A and B, the median per-round ratio B/A and its IQR."""
    sa, sb = np.asarray(samples[a], float), np.asarray(samples[b], float)
    n = min(len(sa), len(sb))
    ratios = sb[:n] / sa[:n]
    row: dict[str, Any] = {
        "metric": metric,
        "a": a,
        "b": b,
        "a_median": float(np.median(sa)),
        "b_median": float(np.median(sb)),
        "unit": unit,
        "ratio": float(np.median(ratios)),
        "ratio_q25": float(np.percentile(ratios, 25)),
        "ratio_q75": float(np.percentile(ratios, 75)),
        "repeats": int(n),
        "lower_is_better": lower_is_better,
    }
    _goal(row, goal, goal_met)
    return row


def value_row(
    metric: str,
    a: str,
    a_value: float,
    b: str,
    b_value: float,
    *,
    unit: str = "",
    repeats: int = 1,
    goal: str | None = None,
    goal_met: Callable[[float], bool] | None = None,
    lower_is_better: bool = True,
) -> dict[str, Any]:
    """A row of one value each (already a median of ``repeats``): ratio B/A, no spread."""
    ratio = float(b_value) / float(a_value)
    row: dict[str, Any] = {
        "metric": metric, "a": a, "b": b, "a_median": float(a_value), "b_median": float(b_value),
        "unit": unit, "ratio": ratio, "ratio_q25": ratio, "ratio_q75": ratio,
        "repeats": int(repeats), "lower_is_better": lower_is_better,
    }
    _goal(row, goal, goal_met)
    return row

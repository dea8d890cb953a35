"""The bench harness: A (the plain Keras way) vs B (the technique), side by side.

A benchmark is a function ``fn(ctx: BenchContext) -> BenchResult`` registered with
:func:`benchmark`. Timings come from :func:`interleave`, which warms every variant up and
then runs them in turns (A, B, A, B, ...) in one process, so machine noise hits both alike;
the ratio B/A is reported as the median of per-round ratios with its interquartile spread.

Results land in ``benchmarks/results/<name>.json``; :func:`write_results_md` rebuilds
``benchmarks/RESULTS.md`` from all of them.

Example:
>>> import time
>>> samples = interleave({"A": lambda: time.sleep(0.001), "B": lambda: None}, repeats=3, warmup=1)
>>> row = ratio_row("sleep", samples, "A", "B", unit="s", lower_is_better=True)
>>> row["ratio"] < 1
True
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tenfold import registry

RESULTS_DIR = Path("benchmarks/results")


@dataclass
class BenchContext:
    """What a benchmark is told: quick mode, where to put files, the seed."""

    quick: bool = False
    out_dir: Path = RESULTS_DIR
    seed: int = 0
    log: Callable[[str], None] = print


@dataclass
class BenchResult:
    """A benchmark's outcome.

    ``rows`` are dicts made by :func:`ratio_row` (or by hand with at least ``metric``);
    ``tables`` optional extra markdown tables; ``plots`` paths of PNGs relative to
    ``benchmarks/RESULTS.md`` (e.g. ``results/NAME.png``), so the links work there.
    """

    name: str
    description: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    quick: bool = False
    seconds: float = 0.0


def benchmark(name: str, description: str) -> Callable[[Callable[[BenchContext], BenchResult]], Any]:
    """Register a benchmark function under ``name`` (registry kind ``"benchmarks"``)."""

    def decorate(fn: Callable[[BenchContext], BenchResult]) -> Callable[[BenchContext], BenchResult]:
        fn.description = description  # type: ignore[attr-defined]
        registry.register("benchmarks", name, fn, path=f"tenfold.bench.{name}")
        return fn

    return decorate


def interleave(
    variants: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall-clock seconds of each variant, run in turns after ``warmup`` untimed rounds.

    A variant may return a float: then that value is recorded instead of the elapsed time
    (for benchmarks that measure something else, e.g. steps per second or bytes).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, received {repeats}.")
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
    ratio = float(np.median(ratios))
    row: dict[str, Any] = {
        "metric": metric,
        "a": a,
        "b": b,
        "a_median": float(np.median(sa)),
        "b_median": float(np.median(sb)),
        "unit": unit,
        "ratio": ratio,
        "ratio_q25": float(np.percentile(ratios, 25)),
        "ratio_q75": float(np.percentile(ratios, 75)),
        "repeats": int(n),
        "lower_is_better": lower_is_better,
    }
    if goal is not None:
        row["goal"] = goal
        row["goal_met"] = bool(goal_met(ratio)) if goal_met is not None else None
    return row


def command_line() -> str:
    return "tenfold " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


def save_result(result: BenchResult, out_dir: Path = RESULTS_DIR) -> Path:
    """Write ``out_dir/<name>.json`` and rebuild ``RESULTS.md`` beside ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # plot links must be relative to RESULTS.md (beside out_dir), wherever they were made
    result.plots = [
        os.path.relpath(p, out_dir.parent) if os.path.isabs(p) or Path(p).exists() else str(p)
        for p in result.plots
    ]
    path = out_dir / f"{result.name}.json"
    path.write_text(json.dumps(result.__dict__, indent=2, default=str) + "\n", encoding="utf-8")
    write_results_md(out_dir, out_dir.parent / "RESULTS.md")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(result: dict[str, Any]) -> str:
    """Markdown section of one result."""
    lines = [f"## {result['name']}", "", result.get("description", ""), ""]
    env = result.get("env", {})
    lines.append(
        f"Measured {env.get('date', '?')} on {env.get('cpu', '?')} ({env.get('cpu_count', '?')} "
        f"cores; flags: {', '.join(env.get('cpu_flags', [])) or 'n/a'}), "
        f"TensorFlow {env.get('tensorflow', '-')}, Keras {env.get('keras', '?')}, "
        f"{'quick' if result.get('quick') else 'full'} mode, {result.get('seconds', 0):.0f} s."
    )
    lines += ["", f"Command: `{result.get('command', '')}`", ""]
    rows = result.get("rows", [])
    if rows and "ratio" in rows[0]:
        lines += [
            "| metric | A | A median | B | B median | B/A (median) | IQR | goal | met |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            met = r.get("goal_met")
            lines.append(
                f"| {r['metric']} | {r['a']} | {_fmt(r['a_median'])} {r.get('unit', '')} | {r['b']} | "
                f"{_fmt(r['b_median'])} {r.get('unit', '')} | **{r['ratio']:.3f}** | "
                f"{r['ratio_q25']:.3f}–{r['ratio_q75']:.3f} | {r.get('goal', '–')} | "
                f"{'yes' if met else ('no' if met is False else '–')} |"
            )
        lines.append("")
    for table in result.get("tables", []):
        lines += [table, ""]
    for note in result.get("notes", []):
        lines += [f"- {note}"]
    if result.get("notes"):
        lines.append("")
    for plot in result.get("plots", []):
        lines += [f"![{result['name']}]({plot})", ""]
    return "\n".join(lines)


def at_a_glance(results: list[dict[str, Any]]) -> str:
    """Markdown table: per benchmark, how many of its goal rows are met, and the unmet ones.

    Example:
    >>> row = {"metric": "speed", "b": "fast", "ratio": 1.2, "goal": "≤ 1.1", "goal_met": False}
    >>> print(at_a_glance([{"name": "demo", "rows": [row]}]).splitlines()[-1])
    | [demo](#demo) | 0 of 1 | speed, fast: **1.200** (goal ≤ 1.1) |
    """
    lines = ["| benchmark | goals met | not met |", "|---|---|---|"]
    for result in results:
        judged = [r for r in result.get("rows", []) if r.get("goal_met") is not None]
        unmet = [f"{r['metric']}, {r.get('b', 'B')}: **{r['ratio']:.3f}** (goal {r.get('goal', '?')})"
                 for r in judged if not r["goal_met"]]
        count = f"{len(judged) - len(unmet)} of {len(judged)}" if judged else "–"
        mode = " (quick)" if result.get("quick") else ""
        lines.append(f"| [{result['name']}](#{result['name']}){mode} | {count} | "
                     f"{'; '.join(unmet) or '–'} |")
    return "\n".join(lines)


def write_results_md(results_dir: Path = RESULTS_DIR, target: Path | None = None) -> Path:
    """Rebuild RESULTS.md from every ``results_dir/*.json``: a summary, then one section each."""
    target = target or results_dir.parent / "RESULTS.md"
    results = [json.loads(path.read_text(encoding="utf-8"))
               for path in sorted(results_dir.glob("*.json"))]
    header = (
        "# Benchmark results\n\n"
        "Each benchmark compares A (the plain Keras way) with B (the technique) in one process, "
        "interleaved after a warm-up; ratios are medians of per-round B/A with their "
        "interquartile range. Regenerate a section with the command under it "
        "(`tenfold bench NAME`); this file is rebuilt from `benchmarks/results/*.json`.\n\n"
        "## At a glance\n\n" + at_a_glance(results) + "\n"
    )
    target.write_text(header + "\n" + "\n".join(render(r) for r in results), encoding="utf-8")
    return target

"""What a benchmark is told and what it returns, its registration, and running one.

A benchmark is one function per module, named ``run``, taking a :class:`BenchContext` and
returning a :class:`BenchResult` of rows (from :func:`tenfold.bench.harness.ratio_row`),
tables, plots and notes computed from what it measured. :func:`run_benchmark` is the one
place that adds the facts every result carries: its name, the wall time, the machine and the
command that regenerates it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenfold import registry

RESULTS_DIR = Path("benchmarks/results")


@dataclass
class BenchContext:
    """What a benchmark is told: quick mode, where to put files, the seed, where to log."""

    quick: bool = False
    out_dir: Path = RESULTS_DIR
    seed: int = 0
    log: Callable[[str], None] = print


@dataclass
class BenchResult:
    """A benchmark's outcome.

    A benchmark fills ``rows`` (dicts made by :func:`~tenfold.bench.harness.ratio_row` or
    :func:`~tenfold.bench.harness.value_row`), ``tables`` (extra markdown), ``plots`` (the
    PNG files it wrote, made into links by ``save_result``) and ``notes``, and may give a
    longer ``description`` than its registered one. ``name``, ``env``, ``command``,
    ``quick`` and ``seconds`` are set by :func:`run_benchmark`.
    """

    name: str = ""
    description: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    quick: bool = False
    seconds: float = 0.0


Benchmark = Callable[[BenchContext], BenchResult]


def benchmark(name: str, description: str) -> Callable[[Benchmark], Benchmark]:
    """Register a benchmark function under ``name`` (registry kind ``"benchmarks"``)."""

    def decorate(fn: Benchmark) -> Benchmark:
        fn.description = description  # type: ignore[attr-defined]
        registry.register("benchmarks", name, fn, path=f"tenfold.bench.{name}")
        return fn

    return decorate


def run_benchmark(name: str, ctx: BenchContext) -> BenchResult:
    """Run the benchmark registered as ``name`` and complete its result.

    Sets ``name``, ``description`` (the registered one unless the benchmark gave its own),
    ``seconds`` (wall time of the whole call), ``env`` (:func:`tenfold.env.environment`),
    ``quick`` and ``command`` (``tenfold bench NAME [--quick]``, which regenerates it).
    """
    from tenfold.env import environment

    fn = registry.get("benchmarks", name)
    start = time.perf_counter()
    result = fn(ctx)
    result.seconds = time.perf_counter() - start
    result.name = name
    result.description = result.description or fn.description
    result.env = environment()
    result.quick = ctx.quick
    result.command = f"tenfold bench {name}" + (" --quick" if ctx.quick else "")
    return result

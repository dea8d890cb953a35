"""``tenfold bench [NAME ...] [--quick] [--list] [--out DIR]``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from tenfold import registry
from tenfold.cli._errors import fail
from tenfold.remat.memory import CPU_STATS_ENV


def bench_command(
    names: list[str] = typer.Argument(None, help="Benchmarks to run (default: all)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller, faster versions."),
    out: Optional[Path] = typer.Option(
        None, "--out",
        help="Where results go (default: benchmarks/results; with --quick runs/bench-quick, "
        "so quick runs never replace the full results kept in the repo).",
    ),
    list_: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
) -> None:
    """Measure techniques against the plain Keras way, side by side, into RESULTS.md."""
    # before any TensorFlow operation: CPU peak memory is measurable without oneDNN too
    os.environ.setdefault(CPU_STATS_ENV, "true")
    from tenfold.bench import load_all  # the benchmarks import TensorFlow: only when asked
    from tenfold.bench.run import run_benchmarks

    load_all()
    available = registry.list("benchmarks")
    if list_:
        for name in available:
            typer.echo(f"{name:20s} {registry.get('benchmarks', name).description}")
        return
    for name in names or []:
        if name not in available:
            fail(f"unknown benchmark {name!r}.{registry.suggest(name, available)} Accepted: {', '.join(available)}.")
    default = Path("runs/bench-quick/results") if quick else Path("benchmarks/results")
    run_benchmarks(names or available, quick=quick, out_dir=out or default)

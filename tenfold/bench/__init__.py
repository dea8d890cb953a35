"""``tenfold bench``: side-by-side measurements of each technique against plain Keras."""

from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    benchmark,
    interleave,
    ratio_row,
    run_benchmark,
    save_result,
    write_results_md,
)

# modules of this package that are not benchmarks
NOT_BENCHMARKS = ("harness", "run")


def load_all() -> None:
    """Import every benchmark module in this package so they register themselves.

    A technique adds a benchmark by dropping a module ``tenfold/bench/<name>.py`` whose
    ``run(ctx)`` is decorated with :func:`benchmark`; no list needs editing.
    """
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name not in NOT_BENCHMARKS:
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = [
    "NOT_BENCHMARKS",
    "BenchContext",
    "BenchResult",
    "benchmark",
    "interleave",
    "load_all",
    "ratio_row",
    "run_benchmark",
    "save_result",
    "write_results_md",
]

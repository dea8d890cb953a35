"""``tenfold bench``: side-by-side measurements of each technique against plain Keras."""

from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    benchmark,
    interleave,
    ratio_row,
    save_result,
    write_results_md,
)

__all__ = [
    "BenchContext",
    "BenchResult",
    "benchmark",
    "interleave",
    "ratio_row",
    "save_result",
    "write_results_md",
]


def load_all() -> None:
    """Import every benchmark module in this package so they register themselves.

    A technique adds a benchmark by dropping a module ``tenfold/bench/<name>.py`` that
    decorates its function with :func:`benchmark`; no list needs editing.
    """
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "harness":
            importlib.import_module(f"{__name__}.{info.name}")


__all__ += ["load_all"]

"""The bench harness: A (the plain Keras way) vs B (the technique), side by side.

Everything the benchmarks share lives here, once:

- ``result``: :class:`BenchContext`, :class:`BenchResult`, the :func:`benchmark` decorator
  and :func:`run_benchmark`, which sets the name, wall time, environment and command of
  every result;
- ``timing``: :func:`interleave` (A, B, A, B, ... after a warm-up) and the table rows
  :func:`ratio_row` / :func:`value_row`;
- ``steps``: the one hand-written :func:`train_step`;
- ``data``: the bundled digits, fixed batches, synthetic arrays;
- ``figures``: :func:`figure` and the :class:`Panel` / :class:`Series` it draws;
- ``report``: ``benchmarks/results/<name>.json``, :func:`plot_link` and ``RESULTS.md``.

A benchmark is a module ``tenfold/bench/<name>.py`` whose function ``run(ctx)`` is
decorated with :func:`benchmark` and returns rows, tables, plots and notes computed from
what it measured.
"""

from tenfold.bench.harness.data import batches, digit_images, digits, synthetic
from tenfold.bench.harness.figures import (
    Panel,
    Series,
    bar,
    figure,
    grouped_bars,
    hline,
    line,
    scatter,
)
from tenfold.bench.harness.report import (
    at_a_glance,
    plot_link,
    render,
    save_result,
    write_results_md,
)
from tenfold.bench.harness.result import (
    RESULTS_DIR,
    BenchContext,
    BenchResult,
    benchmark,
    run_benchmark,
)
from tenfold.bench.harness.steps import train_step
from tenfold.bench.harness.timing import interleave, ratio_row, value_row

__all__ = [
    "RESULTS_DIR",
    "BenchContext",
    "BenchResult",
    "Panel",
    "Series",
    "at_a_glance",
    "bar",
    "batches",
    "benchmark",
    "digit_images",
    "digits",
    "figure",
    "grouped_bars",
    "hline",
    "interleave",
    "line",
    "plot_link",
    "ratio_row",
    "render",
    "run_benchmark",
    "save_result",
    "scatter",
    "synthetic",
    "train_step",
    "value_row",
    "write_results_md",
]

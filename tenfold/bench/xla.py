"""XLA (``jit_compile=True``) against Keras' default on the trainer's default model (report only).

Built with the trainer's one ``build`` (see :mod:`tenfold.bench.trainer`), so it times the
model, optimizer and input pipeline ``tenfold train`` uses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row
from tenfold.bench.trainer import balanced_recipe, plain_fit, quiet, sizes
from tenfold.train.build import build


@benchmark("xla", "jit_compile on vs off for the default model (report only)")
def run(ctx: BenchContext) -> BenchResult:
    epochs, repeats = sizes(ctx)
    recipe = balanced_recipe(epochs)
    tmp = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    samples = interleave(
        {
            "jit_compile=False": plain_fit(build(recipe, tmp / "off", log=quiet), jit_compile=False),
            "jit_compile=True": plain_fit(build(recipe, tmp / "on", log=quiet), jit_compile=True),
        },
        repeats=repeats, warmup=1,
    )
    row = ratio_row(
        "training steps/s (default model)", samples, "jit_compile=False", "jit_compile=True",
        unit="steps/s", lower_is_better=False,
    )
    return BenchResult(rows=[row], notes=[
        "Keras' jit_compile='auto' turns XLA off on CPUs; this forces it on to show what it would give.",
    ])

"""Stage "fit": train a built :class:`~tenfold.train.build.Run` with the run directory's
callbacks (checkpoint every epoch, ``history.csv``, TensorBoard) and the techniques'."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tenfold.train import callbacks
from tenfold.train.build import Run


def verbosity(verbose: str | int) -> int:
    """``train.verbose`` as ``fit``'s int (``auto``: a progress bar on a terminal only)."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def fit(
    run: Run, *, resume_epoch: int | None, log: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Train ``run.model``; returns the timing facts and the report's notes."""
    recipe, out = run.recipe, run.out
    epochs = recipe.train.epochs
    if resume_epoch:
        log(f"resuming from epoch {resume_epoch} of {epochs} (checkpoint in {out / 'checkpoints'})")
    start = time.perf_counter()
    run.model.fit(
        run.train_data,
        validation_data=run.validation_data,
        epochs=epochs,
        callbacks=callbacks.fit_callbacks(out, run.echo, run.callbacks),
        verbose=verbosity(recipe.train.verbose),
        shuffle=False,  # the dataset is shuffled with the recipe seed
        **run.fit_kwargs,  # data.sampler: progressive
    )
    seconds = time.perf_counter() - start
    epochs_run = epochs - (resume_epoch or 0)
    facts = {
        "train_seconds": seconds,
        "steps_per_second": epochs_run * run.steps_per_epoch / max(seconds, 1e-9),
        "resumed_from_epoch": resume_epoch or None,
        "precision": run.precision.to_dict(),
        "fresh_examples": None if run.echo is None else run.echo.fresh_examples,
    }
    return facts, echo_notes(run)


def echo_notes(run: Run) -> list[str]:
    """The report's line on data echoing (none without ``data.echo``)."""
    e, echo = run.recipe.data.echo, run.echo
    if e is None or echo is None:
        return []
    where = e.placement if echo.level == "example" else "after batching"
    return [f"data echoing: factor {echo.factor:g} ({echo.level} level, {where}); "
            f"{echo.fresh_examples} fresh examples read for {run.recipe.train.epochs} epochs"]

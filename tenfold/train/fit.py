"""Stage "fit": train a built :class:`~tenfold.train.build.Run` with the run directory's
callbacks (a non-finite check, a checkpoint every epoch, ``history.csv``, TensorBoard when
installed) and the techniques'.

A NaN or infinite loss or weight stops training with :class:`NonFiniteTraining` (the CLI
exits with status 3): the epoch is not checkpointed, so the run stays resumable from the
last finite checkpoint.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tenfold.train import callbacks
from tenfold.train.build import Run
from tenfold.train.callbacks import NonFiniteTraining
from tenfold.train.checkpoints import Checkpoint


def verbosity(verbose: str | int) -> int:
    """``train.verbose`` as ``fit``'s int (``auto``: a progress bar on a terminal only)."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def diverged_message(run: Run, err: NonFiniteTraining) -> str:
    """One message naming the epoch and steps, the likely causes and how to go on."""
    r = run.recipe
    first = (err.epoch - 1) * run.steps_per_epoch + 1
    return (
        f"training stopped: {err.what} became non-finite in epoch {err.epoch} (optimizer steps "
        f"{first}-{err.epoch * run.steps_per_epoch}). Likely causes: the learning rate "
        f"(optimizer.learning_rate={r.optimizer.learning_rate:g}, schedule.name={r.schedule.name}), "
        f"the precision policy ({run.precision.policy}; try precision.policy=float32), or the "
        f"loss (loss.name={r.loss.name}). The last finite checkpoint (epoch {err.epoch - 1}) is "
        "kept: the same command resumes from it; change the recipe and pass --force to start over."
    )


def fit(
    run: Run, *, resume: Checkpoint | None, log: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Train ``run.model`` (from checkpoint ``resume`` when given); returns the timing facts
    and the report's notes."""
    recipe, out = run.recipe, run.out
    epochs, resume_epoch = recipe.train.epochs, (resume.epoch if resume is not None else 0)
    if resume_epoch:
        log(f"resuming from epoch {resume_epoch} of {epochs} (checkpoint in {out / 'checkpoints'})")
    start = time.perf_counter()
    try:
        run.model.fit(
            run.train_data,
            validation_data=run.validation_data,
            epochs=epochs,
            initial_epoch=resume_epoch,
            callbacks=callbacks.fit_callbacks(out, recipe.to_yaml(), resume, run.echo, run.callbacks),
            verbose=verbosity(recipe.train.verbose),
            shuffle=False,  # the dataset is shuffled with the recipe seed
            **run.fit_kwargs,  # data.sampler: progressive
        )
    except NonFiniteTraining as err:
        raise NonFiniteTraining(err.epoch, err.what, diverged_message(run, err)) from None
    seconds = time.perf_counter() - start
    facts = {
        "train_seconds": seconds,
        "steps_per_second": (epochs - resume_epoch) * run.steps_per_epoch / max(seconds, 1e-9),
        "resumed_from_epoch": resume_epoch or None,
        "precision": run.precision.to_dict(),
        "fresh_examples": None if run.echo is None else run.echo.fresh_examples,
    }
    return facts, [*callbacks.logging_notes(), *echo_notes(run)]


def echo_notes(run: Run) -> list[str]:
    """The report's line on data echoing (none without ``data.echo``)."""
    e, echo = run.recipe.data.echo, run.echo
    if e is None or echo is None:
        return []
    where = e.placement if echo.level == "example" else "after batching"
    return [f"data echoing: factor {echo.factor:g} ({echo.level} level, {where}); "
            f"{echo.fresh_examples} fresh examples read for {run.recipe.train.epochs} epochs"]

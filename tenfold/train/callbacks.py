"""Stage "callbacks": what runs inside ``fit``, as lists of Keras callbacks.

:func:`run_callbacks` writes the run directory while training (checkpoint, ``history.csv``,
TensorBoard); :func:`technique_callbacks` adds the techniques' own (``schedule.cycle_momentum``,
``callbacks.drw``, the fresh-example counter of ``data.echo``).

The run-directory callbacks are epoch-only and marked ``async_safe``: Keras' own versions
define per-batch hooks, and any per-batch hook makes ``fit`` wait for every step's logs
(see the ``trainer-overhead`` benchmark). TensorBoard logs are written when the
``tensorboard`` package is installed (it is not a dependency: ``tensorflow-cpu`` does not
pull it in); without it the report says they were skipped and how to get them.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold.callbacks import CycleMomentum, DeferredReweighting
from tenfold.callbacks.cycle_momentum import innermost_optimizer
from tenfold.data import Echo
from tenfold.train.checkpoints import Checkpoint, EpochCheckpoint
from tenfold.train.files import read_csv, write_csv_atomic
from tenfold.train.recipe import DRWConfig, RecipeError, ScheduleConfig


class HistoryCSV(keras.callbacks.Callback):
    """Writes ``history.csv``: one row per epoch (``epoch`` is 1-based), kept on resume.

    Rewritten atomically and keyed by epoch, so a run killed at any moment and resumed
    leaves one row per epoch, never duplicates.
    """

    async_safe = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: dict[int, dict[str, float]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _, rows = read_csv(self.path)
        self.rows = {int(r["epoch"]): {k: float(v) for k, v in r.items() if k != "epoch" and v != ""}
                     for r in rows}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        # drop rows of epochs at or after this one (a resumed run redoes them)
        self.rows = {e: r for e, r in self.rows.items() if e < epoch + 1}
        self.rows[epoch + 1] = values
        keys = sorted({k for r in self.rows.values() for k in r})
        write_csv_atomic(
            self.path, ["epoch", *keys],
            [[e, *[self.rows[e].get(k, "") for k in keys]] for e in sorted(self.rows)],
        )


class NonFiniteTraining(RuntimeError):
    """The loss or a weight became NaN or infinite in ``epoch`` (1-based)."""

    def __init__(self, epoch: int, what: str, message: str | None = None) -> None:
        super().__init__(message or f"{what} became non-finite in epoch {epoch}")
        self.epoch = epoch
        self.what = what


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the end of an epoch whose loss or weights are not finite.

    Placed before the checkpoint callback, so a non-finite epoch is never checkpointed.
    Epoch-only (a per-batch check would make ``fit`` wait for every step).
    """

    async_safe = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(np.asarray(value))):
                raise NonFiniteTraining(epoch + 1, f"the {key.replace('_', ' ')} ({float(np.asarray(value))})")
        for weight in self.model.weights:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
                raise NonFiniteTraining(epoch + 1, f"the weight {weight.path}")


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard logs per epoch only: no per-batch summaries, no per-batch sync."""

    async_safe = True

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir, write_graph=False, update_freq="epoch")

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (needed by Keras' TensorBoard callback) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def logging_notes() -> list[str]:
    """The report's line when the TensorBoard logs were skipped."""
    if tensorboard_available():
        return []
    return ["TensorBoard logs skipped: the tensorboard package is not installed "
            "(`pip install tensorboard`, or `pip install tenfold[cpu]`); history.csv has the same numbers."]


def run_callbacks(
    out: Path, recipe_yaml: str, resume: Checkpoint | None
) -> list[keras.callbacks.Callback]:
    """Non-finite check, history, checkpoint and TensorBoard callbacks writing into ``out``.

    ``history.csv`` gets its row before the epoch's checkpoint: a run killed between the two
    resumes from the previous checkpoint and rewrites the row, whereas the other order lost
    the row of the last checkpointed epoch.
    """
    listed: list[keras.callbacks.Callback] = [
        NonFiniteGuard(),
        HistoryCSV(out / "history.csv"),
        EpochCheckpoint(out / "checkpoints", recipe_yaml, resume),
    ]
    if tensorboard_available():
        listed.append(EpochTensorBoard(str(out / "tensorboard")))
    return listed


def cycle_momentum(s: ScheduleConfig, optimizer: keras.optimizers.Optimizer) -> list[keras.callbacks.Callback]:
    """``schedule.cycle_momentum: true`` → a :class:`CycleMomentum` callback."""
    if not s.cycle_momentum:
        return []
    if s.name not in ("cyclical", "one_cycle"):
        raise RecipeError(
            f"schedule.cycle_momentum needs schedule.name cyclical or one_cycle, received {s.name!r}."
        )
    try:
        CycleMomentum.attribute(innermost_optimizer(optimizer))
    except ValueError as err:
        raise RecipeError(f"schedule.cycle_momentum: {err}") from None
    return [CycleMomentum()]


def deferred_reweighting(drw: DRWConfig | None, class_counts: list[int]) -> list[keras.callbacks.Callback]:
    """``callbacks.drw`` → :class:`tenfold.callbacks.DeferredReweighting`."""
    if drw is None:
        return []
    return [DeferredReweighting(class_counts, start_epoch=drw.start_epoch,
                                start_fraction=drw.start_fraction, beta=drw.beta)]


def fresh_examples(echo: Echo | None) -> list[keras.callbacks.Callback]:
    """``data.echo``: log the fresh (upstream) examples read next to the steps."""
    return [] if echo is None else [echo.counter.callback()]


def technique_callbacks(
    s: ScheduleConfig, drw: DRWConfig | None, optimizer: keras.optimizers.Optimizer,
    class_counts: list[int],
) -> list[keras.callbacks.Callback]:
    """The callbacks the recipe's schedule and long-tail keys ask for."""
    return [*cycle_momentum(s, optimizer), *deferred_reweighting(drw, class_counts)]


def fit_callbacks(
    out: Path, recipe_yaml: str, resume: Checkpoint | None, echo: Echo | None,
    technique: tuple[keras.callbacks.Callback, ...],
) -> list[keras.callbacks.Callback]:
    """All callbacks of ``fit``: the echo counter first (so ``history.csv`` logs its count),
    then the run directory's, then the techniques'."""
    return [*fresh_examples(echo), *run_callbacks(out, recipe_yaml, resume), *technique]

"""What a run directory logs while training: the per-epoch history and the learning rate.

``history.csv`` is rewritten atomically and keyed by epoch, so a run killed at any moment
and resumed leaves one row per epoch, never duplicates.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np


def write_csv_atomic(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


class HistoryCSV(keras.callbacks.Callback):
    """Writes ``history.csv``: one row per epoch (``epoch`` is 1-based), kept on resume."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: dict[int, dict[str, float]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _, rows = read_csv(self.path)
        self.rows = {int(r["epoch"]): {k: float(v) for k, v in r.items() if k != "epoch" and v != ""} for r in rows}

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


def learning_rate_curve(optimizer: keras.optimizers.Optimizer, steps: int) -> list[float]:
    """The learning rate at each of ``steps`` optimizer steps.

    Schedules are pure functions of the step, so the curve is computed after training from
    the schedule itself: exact, free of per-batch overhead, and right across resumes.
    """
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        values = schedule(keras.ops.arange(steps, dtype="int64"))
        return [float(v) for v in np.asarray(keras.ops.convert_to_numpy(values)).reshape(-1)]
    rate = float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return [rate] * steps


class EpochBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that checkpoints per epoch only.

    Keras' class defines a per-batch hook (for ``save_freq=<int>``), and any per-batch hook
    makes ``fit`` wait for every step's logs instead of dispatching callbacks
    asynchronously; with epoch checkpoints the hook does nothing, so this class drops it
    (see the ``trainer-overhead`` benchmark).
    """

    async_safe = True

    def __init__(self, backup_dir: str) -> None:
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard logs per epoch only: no per-batch summaries, no per-batch sync."""

    async_safe = True

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir, write_graph=False, update_freq="epoch")

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

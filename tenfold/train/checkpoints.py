"""Checkpoints that survive any interruption (a kill, a power loss, a full disk).

After every epoch the model and optimizer state go to ``checkpoints/epoch-N.weights.h5``:
written under a temporary name, flushed and fsynced, then renamed; only then does the
manifest (``checkpoints/manifest.json``: epoch, optimizer step, recipe hash, file size and
SHA-256 of each checkpoint, and the random-number state: Keras' ``.weights.h5`` leaves out
the ``SeedGenerator`` states of Dropout and augmentation layers and of ``keras.random``'s
global generator, so the manifest holds them) name it, itself replaced atomically. The previous good
checkpoint is kept until the new one is complete. On resume the newest checkpoint whose
file matches the manifest and the recipe is restored; a truncated or corrupt one falls
back to the previous, and with none left the run restarts with one warning naming the file.

Checkpoints stay until every output of the run is written (``rundir.mark_finished``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold.train.files import fsync_dir, write_json_atomic

MANIFEST = "manifest.json"
KEEP = 2  # the newest checkpoint and the previous good one


@dataclass(frozen=True)
class Checkpoint:
    """One entry of the manifest."""

    epoch: int
    step: int
    file: str
    bytes: int
    sha256: str
    rng: dict[str, Any] | None = None  # {"layers": [[a, b], ...], "global": [a, b] | None}


def _seed_states(model: keras.Model) -> list[Any]:
    """The model's ``SeedGenerator`` state variables (Dropout, augmentation layers), in the
    model's own variable order (the same for the same recipe)."""
    return [w for w in model.non_trainable_variables if w.name == "seed_generator_state"]


def _global_seed_generator() -> Any:
    """``keras.random``'s global generator when one exists (seed=None draws), else None."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("global_seed_generator")


def rng_state(model: keras.Model) -> dict[str, Any]:
    """The random-number state of a run that ``.weights.h5`` does not hold."""
    glob = _global_seed_generator()
    return {
        "layers": [np.asarray(keras.ops.convert_to_numpy(w)).tolist() for w in _seed_states(model)],
        "global": None if glob is None else np.asarray(keras.ops.convert_to_numpy(glob.state)).tolist(),
    }


def set_rng_state(model: keras.Model, state: dict[str, Any] | None) -> None:
    """Restore :func:`rng_state` (a manifest without one, or of another model, is left alone)."""
    if not state:
        return
    states = _seed_states(model)
    if len(states) == len(state.get("layers") or []):
        for w, value in zip(states, state["layers"]):
            w.assign(np.asarray(value, w.dtype))
    glob = _global_seed_generator()
    if glob is not None and state.get("global") is not None:
        glob.state.assign(np.asarray(state["global"], glob.state.dtype))


def recipe_hash(recipe_yaml: str) -> str:
    return hashlib.sha256(recipe_yaml.encode("utf-8")).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path, recipe_yaml: str) -> list[Checkpoint]:
    """The manifest's checkpoints for this recipe, newest first ([] when missing or unreadable)."""
    try:
        raw = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if raw.get("recipe_hash") != recipe_hash(recipe_yaml):
            return []
        entries = [Checkpoint(**entry) for entry in raw["checkpoints"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    return sorted(entries, key=lambda c: c.epoch, reverse=True)


def is_intact(directory: Path, entry: Checkpoint) -> bool:
    """Whether the checkpoint file is the one the manifest describes (size and SHA-256)."""
    path = directory / entry.file
    try:
        return path.stat().st_size == entry.bytes and _sha256(path) == entry.sha256
    except OSError:
        return False


def latest(
    directory: Path, recipe_yaml: str, warn: Callable[[str], None]
) -> Checkpoint | None:
    """The newest intact checkpoint; each broken one it skips is named in one warning."""
    entries = read_manifest(directory, recipe_yaml)
    broken = []
    for entry in entries:
        if is_intact(directory, entry):
            if broken:
                warn(f"checkpoint {directory / broken[0]} is truncated or corrupt; resuming "
                     f"from the previous one ({directory / entry.file}, epoch {entry.epoch}).")
            return entry
        broken.append(entry.file)
    if broken:
        warn(f"checkpoint {directory / broken[0]} is truncated or corrupt and no earlier one is "
             "intact; training restarts from epoch 0.")
    elif not entries and any(directory.glob("*.weights.h5")):
        warn(f"checkpoints in {directory} have no valid manifest; training restarts from epoch 0.")
    return None


def restore(model: keras.Model, directory: Path, entry: Checkpoint) -> None:
    """Load model and optimizer state of ``entry`` into the compiled ``model``."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # optimizer slots exist before loading
    model.load_weights(directory / entry.file)
    set_rng_state(model, entry.rng)


def resume_epoch(directory: Path, recipe_yaml: str) -> int:
    """Epochs done by the checkpoint a run resumes from (0: none intact). Silent: the fit
    stage names a broken checkpoint when it restores."""
    entry = latest(directory, recipe_yaml, lambda message: None)
    return 0 if entry is None else entry.epoch


def _write_weights(model: keras.Model, path: Path) -> None:
    """HDF5 is written in the system's temporary folder, then copied in with Python's own
    I/O: HDF5 crashes the process on a full disk, Python raises one OSError naming the file."""
    tmp = path.with_name(".tmp-" + path.name)
    try:
        with tempfile.TemporaryDirectory(prefix="tenfold-checkpoint-") as scratch:
            staged = Path(scratch) / path.name  # keras wants the .weights.h5 suffix
            model.save_weights(staged, overwrite=True)
            with open(staged, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint stays the latest
        raise
    fsync_dir(path.parent)


def save(model: keras.Model, directory: Path, recipe_yaml: str, epoch: int) -> Checkpoint:
    """Write the checkpoint of ``epoch`` epochs done, then the manifest; drop older files."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch}.weights.h5"
    _write_weights(model, directory / name)
    step = int(np.asarray(keras.ops.convert_to_numpy(model.optimizer.iterations)))
    path = directory / name
    entry = Checkpoint(epoch, step, name, path.stat().st_size, _sha256(path), rng_state(model))
    # the earlier entries were checked when the run resumed and written by this process since
    kept = [entry, *[c for c in read_manifest(directory, recipe_yaml) if c.epoch < epoch]][:KEEP]
    write_json_atomic(directory / MANIFEST, {
        "format": 1, "recipe_hash": recipe_hash(recipe_yaml),
        "checkpoints": [vars(c) for c in kept],
    })
    names = {c.file for c in kept}
    for old in directory.glob("*.weights.h5"):
        if old.name not in names:
            old.unlink(missing_ok=True)
    return entry


class EpochCheckpoint(keras.callbacks.Callback):
    """Restores ``resume`` (a checkpoint or None) when training begins and writes a
    checkpoint after every epoch. Epoch-only and ``async_safe``: no per-batch hook."""

    async_safe = True

    def __init__(self, directory: Path, recipe_yaml: str, resume: Checkpoint | None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.recipe_yaml = recipe_yaml
        self.resume = resume

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.resume is not None:
            restore(self.model, self.directory, self.resume)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        save(self.model, self.directory, self.recipe_yaml, epoch + 1)

"""Shared by the resume and kill tests: interrupting a run after some epochs, and comparing
nested metrics to float round-off."""

import dataclasses

import keras
import pytest

from tenfold.train import rundir
from tenfold.train.build import build
from tenfold.train.fit import fit


class StopAfter(keras.callbacks.Callback):
    """A KeyboardInterrupt after ``epochs`` epochs (their checkpoint is written by then)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def interrupted_run(out, recipe, epochs_done):
    """Build ``recipe`` into ``out`` and train it until interrupted after ``epochs_done``."""
    built = build(recipe, out, log=lambda s: None)
    with rundir.claim(out, recipe, force=False):
        rundir.write_environment(out, action="fresh")
        with pytest.raises(KeyboardInterrupt):
            fit(dataclasses.replace(built, callbacks=(StopAfter(epochs_done),)), resume=None,
                log=lambda s: None)


def assert_close(a, b):
    """Nested metrics equal to float round-off."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            assert_close(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-6)
    else:
        assert a == b

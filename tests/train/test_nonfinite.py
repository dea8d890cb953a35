"""Non-finite training stops with exit status 3 and one message; recipe numbers are finite;
TensorBoard logging is optional."""

import json
import os
import subprocess
import sys

import pytest

from tenfold.train import callbacks
from tenfold.train.callbacks import EpochTensorBoard, NonFiniteTraining
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
TINY = ["model.hidden=[16]", "train.verbose=0", "data.batch_size=256"]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_recipe_numbers_must_be_finite(value):
    with pytest.raises(RecipeError, match=r"optimizer\.learning_rate: Input should be a finite number"):
        load_recipe("tiny", [f"optimizer.learning_rate={value}"])
    with pytest.raises(RecipeError, match=r"agc\.clipping: Input should be a finite number"):
        load_recipe("tiny", [f"agc.clipping={value}"])


def test_a_diverging_run_stops_naming_epoch_steps_and_causes(tmp_path):
    recipe = load_recipe("tiny", [*TINY, "train.epochs=3", "optimizer.learning_rate=1e30"])
    out = tmp_path / "run"
    with pytest.raises(NonFiniteTraining) as info:
        run(recipe, out, log=lambda s: None)
    message = str(info.value)
    epoch = info.value.epoch
    assert f"non-finite in epoch {epoch} (optimizer steps {(epoch - 1) * 5 + 1}-{epoch * 5})" in message
    assert "optimizer.learning_rate=1e+30" in message and "precision.policy" in message
    assert "loss.name=cross_entropy" in message
    assert not (out / "metrics.json").exists()
    manifest = out / "checkpoints" / "manifest.json"
    kept = json.loads(manifest.read_text())["checkpoints"] if manifest.exists() else []
    assert all(c["epoch"] < epoch for c in kept)  # the non-finite epoch is never checkpointed


def test_cli_exit_status_3_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tenfold", "train", "tiny", "--out", str(tmp_path / "run"),
         "--set", "train.epochs=2", "--set", "optimizer.learning_rate=1e30",
         "--set", "model.hidden=[16]"],
        capture_output=True, text=True, env=ENV, timeout=300, check=False,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training stopped" in errors[0] and "epoch 1" in errors[0]
    assert "Traceback" not in proc.stderr


def test_tensorboard_is_optional(tmp_path, monkeypatch):
    assert any(isinstance(c, EpochTensorBoard) for c in callbacks.run_callbacks(tmp_path, "", None))
    assert callbacks.logging_notes() == []
    monkeypatch.setattr(callbacks, "tensorboard_available", lambda: False)
    assert not any(isinstance(c, EpochTensorBoard) for c in callbacks.run_callbacks(tmp_path, "", None))
    out = tmp_path / "run"
    metrics = run(load_recipe("tiny", [*TINY, "train.epochs=1"]), out, log=lambda s: None)
    assert not (out / "tensorboard").exists()
    line = "TensorBoard logs skipped: the tensorboard package is not installed"
    assert any(line in n for n in metrics["run"]["notes"])
    assert line in (out / "report.md").read_text()

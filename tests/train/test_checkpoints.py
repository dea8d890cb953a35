"""Checkpoints that survive any interruption, and runs that resume by stage (issue 13)."""

import json

import keras
import numpy as np
import pytest
from interrupt import interrupted_run

from tenfold.train import checkpoints
from tenfold.train import run as run_module
from tenfold.train.recipe import load_recipe
from tenfold.train.run import run

TINY = ["model.hidden=[16]", "train.verbose=0", "data.batch_size=256"]


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    return model


def test_save_keeps_the_previous_good_checkpoint_and_restores_model_and_optimizer(tmp_path):
    model, recipe_yaml = _model(), "name: x\n"
    first = checkpoints.save(model, tmp_path, recipe_yaml, 1)
    weights_1 = [np.array(w) for w in model.get_weights()]
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
    second = checkpoints.save(model, tmp_path, recipe_yaml, 2)
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
    checkpoints.save(model, tmp_path, recipe_yaml, 3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["epoch"] for c in manifest["checkpoints"]] == [3, 2]  # latest + previous good
    assert sorted(p.name for p in tmp_path.glob("*.weights.h5")) == ["epoch-2.weights.h5", "epoch-3.weights.h5"]
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob("*.tmp"))
    assert second.step == 2 * first.step
    fresh = _model()
    checkpoints.restore(fresh, tmp_path, checkpoints.latest(tmp_path, recipe_yaml, print))
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 3
    assert not any(np.array_equal(a, b) for a, b in zip(weights_1, fresh.get_weights()))


def test_truncated_latest_falls_back_then_restarts_with_one_warning(tmp_path):
    model, recipe_yaml = _model(), "name: x\n"
    checkpoints.save(model, tmp_path, recipe_yaml, 1)
    checkpoints.save(model, tmp_path, recipe_yaml, 2)
    latest = tmp_path / "epoch-2.weights.h5"
    latest.write_bytes(latest.read_bytes()[:96])  # what a kill during the write leaves
    warnings = []
    found = checkpoints.latest(tmp_path, recipe_yaml, warnings.append)
    assert found.epoch == 1 and len(warnings) == 1
    assert str(latest) in warnings[0] and "previous one" in warnings[0]
    (tmp_path / "epoch-1.weights.h5").write_bytes(b"\0" * 10)
    warnings.clear()
    assert checkpoints.latest(tmp_path, recipe_yaml, warnings.append) is None
    assert len(warnings) == 1 and str(latest) in warnings[0] and "restarts from epoch 0" in warnings[0]
    # a checkpoint of another recipe is never restored
    checkpoints.save(model, tmp_path, recipe_yaml, 3)
    assert checkpoints.latest(tmp_path, "name: other\n", warnings.append) is None


def test_a_hand_truncated_checkpoint_resumes_from_the_previous_epoch(tmp_path):
    recipe = load_recipe("tiny", [*TINY, "train.epochs=4"])
    out = tmp_path / "run"
    interrupted_run(out, recipe, 3)
    latest = out / "checkpoints" / "epoch-3.weights.h5"
    latest.write_bytes(latest.read_bytes()[:200])
    lines = []
    metrics = run(recipe, out, log=lines.append)
    text = "\n".join(lines)
    assert f"checkpoint {latest} is truncated or corrupt" in text
    assert "resuming from epoch 2 of 4" in text
    assert metrics["run"]["resumed_from_epoch"] == 2 and metrics["run"]["epochs"] == 4
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert not (out / "checkpoints").exists()  # removed once the run is finished


def test_a_kill_after_training_resumes_at_the_stage_without_retraining(tmp_path, monkeypatch):
    recipe = load_recipe("tiny", [*TINY, "train.epochs=2"])
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "deploy_trained", interrupted)  # killed during deploy
    with pytest.raises(KeyboardInterrupt):
        run(recipe, out, log=lambda s: None)
    assert not (out / "metrics.json").exists() and (out / "checkpoints" / "stages" / "evaluate.json").exists()
    history = (out / "history.csv").read_text()
    monkeypatch.undo()
    monkeypatch.setattr(run_module, "fit", interrupted)  # must not train again
    monkeypatch.setattr(run_module, "evaluate", interrupted)  # nor evaluate again
    lines = []
    metrics = run(recipe, out, log=lines.append)
    assert any("training finished before the interruption" in line for line in lines)
    assert (out / "history.csv").read_text() == history
    assert (out / "deploy" / "saved_model" / "saved_model.pb").is_file()
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["test"] == metrics["test"]
    # the restored weights are the trained ones: the saved model gives the recorded accuracy
    from tenfold.train.data import build_data

    s = build_data(recipe.data, seed=recipe.seed).splits
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    accuracy = np.mean(np.argmax(model.predict(s.x_test, verbose=0), -1) == s.y_test)
    assert accuracy == metrics["test"]["plain"]["accuracy"]

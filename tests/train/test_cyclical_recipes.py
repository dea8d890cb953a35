"""Recipes with cyclical / one_cycle schedules and bounds from the LR range test."""

import csv
import json

import keras
import numpy as np
import pytest

from tenfold.schedules import CyclicalLearningRate, OneCycle
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run

SMALL = ["model.name=mlp", "model.hidden=[16]", "train.epochs=2", "train.verbose=0",
         "schedule.lr_find_steps=20", "data.batch_size=128"]


def _lr_csv(out):
    with open(out / "plots" / "learning_rate.csv", newline="") as f:
        rows = list(csv.reader(f))
    return [float(r[-1]) for r in rows[1:]]


def test_cyclical_recipe_with_bounds_from_lr_find(tmp_path):
    recipe = load_recipe("cyclical", SMALL + ["schedule.step_size_epochs=0.5"])
    out = tmp_path / "run"
    metrics = run(recipe, out, log=lambda s: None)
    assert (out / "plots" / "lr_finder.png").stat().st_size > 1000
    summary = json.loads((out / "plots" / "lr_find.json").read_text())
    low, high = summary["initial_learning_rate"], summary["maximal_learning_rate"]
    assert 0 < low < high
    assert any("LR range test" in n for n in metrics["run"]["notes"])
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, CyclicalLearningRate)
    steps = metrics["run"]["steps_per_epoch"]
    assert schedule.get_config()["step_size"] == max(1, round(0.5 * steps))
    np.testing.assert_allclose([schedule.initial_learning_rate, schedule.maximal_learning_rate],
                               [low, high], rtol=1e-6)
    # the report's learning-rate curve is the schedule's
    curve = _lr_csv(out)
    np.testing.assert_allclose(curve, [float(schedule(i)) for i in range(len(curve))], rtol=1e-5)
    assert max(curve) == pytest.approx(high, rel=1e-5)


def test_one_cycle_recipe_with_cycle_momentum(tmp_path):
    recipe = load_recipe("one_cycle", SMALL + ["schedule.bounds=[0.004, 0.1]"])
    out = tmp_path / "run"
    run(recipe, out, log=lambda s: None)
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, OneCycle)
    assert schedule.maximal_learning_rate == pytest.approx(0.1)
    assert schedule.initial_learning_rate == pytest.approx(0.004)
    assert float(model.optimizer.momentum) == pytest.approx(0.9)  # the float is back
    assert not (out / "plots" / "lr_find.json").exists()


def test_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="bounds must be"):
        load_recipe("cyclical", ["schedule.bounds=[0.1, 0.01]"])
    with pytest.raises(RecipeError, match="Did you mean 'schedule.step_size_epochs'"):
        load_recipe("cyclical", ["schedule.step_size_epoch=2"])
    recipe = load_recipe("tiny", ["schedule.cycle_momentum=true", "train.verbose=0"])
    with pytest.raises(RecipeError, match="cycle_momentum needs schedule.name cyclical"):
        run(recipe, tmp_path / "run", force=True, log=lambda s: None)

"""`tenfold lr-find RECIPE`: suggestion printed, plot/CSV written, recipe copy with bounds."""

import csv

import pytest
import yaml
from typer.testing import CliRunner

from tenfold.cli.app import app
from tenfold.cli.lr_find import range_test_run, sweep_recipe, with_bounds
from tenfold.train.build import build
from tenfold.train.recipe import RecipeError, load_recipe


def test_lr_find_command_writes_plot_csv_and_recipe(tmp_path):
    out, copy = tmp_path / "lrf", tmp_path / "with_bounds.yaml"
    result = CliRunner().invoke(app, [
        "lr-find", "tiny", "--out", str(out), "--steps", "30", "--min-lr", "1e-5",
        "--write-recipe", str(copy),
    ])
    assert result.exit_code == 0, result.output
    assert "suggested bounds:" in result.output and "steepest descent:" in result.output
    assert (out / "lr_finder.png").stat().st_size > 1000
    with open(out / "lr_finder.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 10 <= len(rows) <= 30 and float(rows[0]["learning_rate"]) == 1e-5
    recipe = load_recipe(str(copy))  # the copy is a valid recipe
    assert recipe.schedule.name == "cyclical"
    low, high = recipe.schedule.bounds
    assert 0 < low < high


def test_with_bounds_keeps_one_cycle():
    text = with_bounds(load_recipe("one_cycle").to_yaml(), 0.01, 0.1)
    schedule = yaml.safe_load(text)["schedule"]
    assert schedule["name"] == "one_cycle" and schedule["bounds"] == [0.01, 0.1]


def test_bad_recipe_key_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["lr-find", "tiny", "--set", "schedule.lr_find_step=3",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "schedule.lr_find_steps" in result.output


def test_lr_find_builds_like_train_precision_and_echo(tmp_path):
    # the same `build` as `tenfold train`: the recipe's dtype policy and echoed pipeline
    recipe = load_recipe("tiny", ["precision={policy: mixed_bfloat16, jit_compile: false}",
                                  "model.hidden=[16]", "data.echo={factor: 2}"])
    swept = sweep_recipe(recipe, steps=10, min_lr=1e-4, max_lr=None)
    built, result = range_test_run(swept, tmp_path / "lrf")
    lr_find_policies = [layer.dtype_policy.name for layer in built.model.layers]
    trained = build(recipe, tmp_path / "run", log=lambda s: None)
    assert built.model.dtype_policy.name == trained.model.dtype_policy.name == "mixed_bfloat16"
    assert lr_find_policies == [layer.dtype_policy.name for layer in trained.model.layers]
    assert built.precision.policy == trained.precision.policy == "mixed_bfloat16"
    assert built.echo is not None and built.echo.factor == 2
    assert built.steps_per_epoch == trained.steps_per_epoch == 34
    assert result.learning_rates[0] == 1e-4 and len(result.learning_rates) <= 10


def test_sweep_options_are_typed_values_validated_once():
    recipe = load_recipe("cyclical")
    assert recipe.schedule.bounds == "from_lr_find"
    swept = sweep_recipe(recipe, steps=30, min_lr=1e-5, max_lr=None)
    assert swept.schedule.lr_find_steps == 30
    assert swept.schedule.lr_find_range == [1e-5, recipe.schedule.lr_find_range[1]]
    assert swept.schedule.bounds is None  # the command is the range test: not run twice
    assert sweep_recipe(load_recipe("tiny"), steps=None, min_lr=None, max_lr=None) == load_recipe("tiny")
    with pytest.raises(RecipeError, match=r"schedule\.lr_find_steps: .*greater than or equal to 10 \(received 5\)"):
        sweep_recipe(recipe, steps=5, min_lr=None, max_lr=None)

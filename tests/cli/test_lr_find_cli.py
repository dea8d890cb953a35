"""`tenfold lr-find RECIPE`: suggestion printed, plot/CSV written, recipe copy with bounds."""

import csv

import yaml
from typer.testing import CliRunner

from tenfold.cli.app import app
from tenfold.cli.lr_find import with_bounds
from tenfold.train.recipe import load_recipe


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

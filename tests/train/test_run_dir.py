"""Run-directory rules of `tenfold train`, without training."""

import json

import pytest

from tenfold.train.recipe import load_recipe
from tenfold.train.rundir import RunDirError, prepare_run_dir


def _unfinished(out, recipe, epoch):
    out.mkdir()
    (out / "recipe.yaml").write_text(recipe.to_yaml())
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "training_metadata.json").write_text(json.dumps({"epoch": epoch, "batch": 0}))


def test_unfinished_run_resumes_even_with_force(tmp_path):
    recipe = load_recipe("tiny")
    out = tmp_path / "run"
    _unfinished(out, recipe, 3)
    assert prepare_run_dir(out, recipe, force=False) == 3
    assert prepare_run_dir(out, recipe, force=True) == 3  # `make run` passes --force
    assert (out / "checkpoints" / "training_metadata.json").exists()


def test_finished_run_needs_force(tmp_path):
    recipe = load_recipe("tiny")
    out = tmp_path / "run"
    _unfinished(out, recipe, 3)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(RunDirError, match="holds a finished run; pass --force"):
        prepare_run_dir(out, recipe, force=False)
    assert (out / "metrics.json").exists()
    assert prepare_run_dir(out, recipe, force=True) is None
    assert sorted(p.name for p in out.iterdir()) == ["recipe.yaml"]


def test_unfinished_run_of_another_recipe(tmp_path):
    out = tmp_path / "run"
    _unfinished(out, load_recipe("tiny"), 2)
    other = load_recipe("tiny", ["seed=9"])
    with pytest.raises(RunDirError, match="unfinished run of a different recipe"):
        prepare_run_dir(out, other, force=False)
    assert prepare_run_dir(out, other, force=True) is None
    assert (out / "recipe.yaml").read_text() == other.to_yaml()


def test_foreign_or_file_targets_are_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a tenfold run"):
        prepare_run_dir(tmp_path, load_recipe("tiny"), force=True)
    with pytest.raises(RunDirError, match="is a file"):
        prepare_run_dir(tmp_path / "mine.txt", load_recipe("tiny"), force=False)

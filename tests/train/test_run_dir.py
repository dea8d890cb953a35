"""Run-directory rules of `tenfold train`, without training: resume or refuse, decided
before anything is written; one writer at a time (the lock)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tenfold.train.recipe import load_recipe
from tenfold.train.rundir import LOCK, RunDirError, check, claim


def _unfinished(out, recipe):
    out.mkdir()
    (out / "recipe.yaml").write_text(recipe.to_yaml())
    (out / "checkpoints").mkdir()


def test_unfinished_run_resumes_even_with_force(tmp_path):
    recipe = load_recipe("tiny")
    out = tmp_path / "run"
    _unfinished(out, recipe)
    assert check(out, recipe, force=False) == "resume"
    assert check(out, recipe, force=True) == "resume"  # `make run` passes --force
    with claim(out, recipe, force=True) as action:
        assert action == "resume"
    assert (out / "checkpoints").is_dir()


def test_finished_run_needs_force(tmp_path):
    recipe = load_recipe("tiny")
    out = tmp_path / "run"
    _unfinished(out, recipe)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(RunDirError, match="holds a finished run; pass --force"):
        check(out, recipe, force=False)
    assert (out / "metrics.json").exists()
    assert check(out, recipe, force=True) == "replace"
    assert (out / "metrics.json").exists()  # check never writes
    with claim(out, recipe, force=True) as action:
        assert action == "replace"
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "recipe.yaml"]


def test_unfinished_run_of_another_recipe(tmp_path):
    out = tmp_path / "run"
    _unfinished(out, load_recipe("tiny"))
    other = load_recipe("tiny", ["seed=9"])
    with pytest.raises(RunDirError, match="unfinished run of a different recipe"):
        check(out, other, force=False)
    with claim(out, other, force=True):
        pass
    assert (out / "recipe.yaml").read_text() == other.to_yaml()


def test_foreign_or_file_targets_are_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a tenfold run"):
        check(tmp_path, load_recipe("tiny"), force=True)
    with pytest.raises(RunDirError, match="is a file"):
        check(tmp_path / "mine.txt", load_recipe("tiny"), force=False)
    assert check(tmp_path / "new", load_recipe("tiny"), force=False) == "fresh"
    assert not (tmp_path / "new").exists()


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    recipe = load_recipe("tiny")
    out = tmp_path / "run"
    holder = subprocess.Popen(  # another process holds the lock, as a running train does
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"os.makedirs({str(out)!r}, exist_ok=True)\n"
         f"fd = os.open({str(out / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match="being written by another `tenfold train`"):
            with claim(out, recipe, force=False):
                pass
        assert not (out / "recipe.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    with claim(out, recipe, force=False) as action:  # the kernel released the dead holder's lock
        assert action == "fresh"


def test_unwritable_out_is_one_message(tmp_path):
    # /sys refuses new directories even to root; nothing else is needed to show the path
    with pytest.raises(RunDirError, match=r"--out '/sys/tenfold-run' is not writable"):
        with claim(Path("/sys/tenfold-run"), load_recipe("tiny"), force=False):
            pass

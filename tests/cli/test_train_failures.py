"""Every error while building or writing a run is the exit-2 one-liner (issue 13): no
traceback, and no run directory left when nothing was trained."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
BLOCK_TENSORFLOW = '''
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorboard"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoTensorFlow())
'''


def cli(*args, env=ENV, timeout=300):
    return subprocess.run([sys.executable, "-m", "tenfold", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def assert_one_message(proc, expected, code=2):
    assert proc.returncode == code, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides,expected", [
    (["model.activation=bogus"], "model.activation: unknown activation 'bogus'"),
    (["model.name=small_resnet", "model.blocks=[]"], "model.blocks: List should have at least 1 item"),
    (["model.name=mlp", "model.hidden=[-5]"], "model.hidden.0: Input should be greater than 0 (received -5)"),
    (["seed=-1"], "seed: Input should be greater than or equal to 0 (received -1)"),
    (["model.name=mlp", "model.hidden=[100000000000]"], "above train.max_parameters=1e+08"),
    (["optimizer.learning_rate=.inf"], "optimizer.learning_rate: Input should be a finite number"),
])
def test_bad_values_exit_2_and_create_nothing(tmp_path, overrides, expected):
    out = tmp_path / "run"
    args = [arg for o in overrides for arg in ("--set", o)]
    assert_one_message(cli("train", "tiny", "--out", str(out), *args), expected)
    assert not out.exists()


def test_huge_epochs_in_a_recipe_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 99999999999999999999999999999\n")
    out = tmp_path / "run"
    assert_one_message(cli("train", str(recipe), "--out", str(out)),
                       "train.epochs: Input should be less than or equal to 1000000")
    assert not out.exists()


def test_missing_tensorflow_names_the_extra_and_creates_nothing(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    env = {**ENV, "KERAS_BACKEND": "jax", "PYTHONPATH": str(tmp_path / "site")}
    out = tmp_path / "run"
    proc = cli("train", "tiny", "--out", str(out), "--set", "train.epochs=1", env=env)
    assert_one_message(proc, "needs TensorFlow. Install it with `pip install tenfold[cpu]`")
    assert not out.exists()


def _mount_tmpfs(path, options):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {proc.stderr.strip()}")


def test_read_only_out(tmp_path):
    target = tmp_path / "ro"
    _mount_tmpfs(target, "ro,size=1m")
    try:
        proc = cli("train", "tiny", "--out", str(target / "run"), "--set", "train.epochs=1")
        assert_one_message(proc, f"--out '{target / 'run'}' is not writable (Read-only file system)")
    finally:
        subprocess.run(["umount", str(target)], check=False)


@pytest.mark.slow
def test_full_disk_keeps_the_last_good_checkpoint_and_resumes(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=3m")
    try:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (3 * 1024 * 1024 - 140 * 1024))  # room for ~2 checkpoints
        out = disk / "run"
        args = ["train", "tiny", "--out", str(out), "--set", "train.epochs=3", "--set", "train.verbose=0"]
        proc = cli(*args)
        assert_one_message(proc, "No space left on device")
        assert str(out) in proc.stderr
        assert not list(out.rglob("*.tmp")) and not list(out.rglob(".tmp-*"))
        assert not (out / "metrics.json").exists()
        filler.unlink()  # space again: the same command resumes and finishes
        again = cli(*args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert (out / "metrics.json").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_two_concurrent_runs_into_one_out(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "tenfold", "train", "tiny", "--out", str(out),
            "--set", "train.epochs=200", "--set", "train.verbose=0"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 120
        while not (out / "recipe.yaml").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (out / "recipe.yaml").exists() and first.poll() is None
        second = cli(*args[3:])
        assert_one_message(second, "is being written by another `tenfold train`")
    finally:
        first.kill()
        first.wait()
    assert Path(out / "recipe.yaml").exists()

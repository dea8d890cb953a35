"""`tenfold train` end to end, as a user runs it: subprocesses, real files."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "tenfold", *args], capture_output=True, text=True, env=ENV,
        timeout=timeout,
    )


def history_epochs(out):
    with open(out / "history.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_train_writes_complete_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = cli("train", "tiny", "--out", str(out), "--set", "train.epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("recipe.yaml", "env.json", "history.csv", "model.keras", "metrics.json",
                 "report.md", "plots/history.png", "plots/history.csv", "plots/learning_rate.png",
                 "plots/learning_rate.csv", "plots/per_class_accuracy.png",
                 "plots/per_class_accuracy.csv", "deploy/saved_model/saved_model.pb"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").rglob("events.out.tfevents*"))
    assert history_epochs(out) == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]["plain"]
    assert set(test) >= {"accuracy", "balanced_accuracy", "per_class_accuracy", "shots"}
    assert len(test["per_class_accuracy"]) == 10
    env = json.loads((out / "env.json").read_text())
    assert {"tensorflow", "keras", "cpu_flags", "devices"} <= set(env)
    report = (out / "report.md").read_text()
    assert f"{100 * test['accuracy']:.1f}%" in report and "plots/history.png" in report
    # the saved model loads with safe_mode on and reproduces the reported test accuracy
    import tenfold  # noqa: F401
    from tenfold.train.data import build_data
    from tenfold.train.recipe import load_recipe

    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    saved = load_recipe(str(out / "recipe.yaml"))
    splits = build_data(saved.data, seed=saved.seed).splits
    acc = np.mean(np.argmax(model.predict(splits.x_test, verbose=0), -1) == splits.y_test)
    assert acc == test["accuracy"]
    assert "model" in proc.stdout and "balanced" in proc.stdout  # the summary table

    again = cli("train", "tiny", "--out", str(out), "--set", "train.epochs=2")
    assert again.returncode == 2
    assert "holds a finished run; pass --force" in again.stderr
    assert "Traceback" not in again.stderr


def test_bad_input_exits_2_with_one_message(tmp_path):
    cases = [
        (["train", "--set", "optimizer.learnin_rate=1"], "Did you mean 'optimizer.learning_rate'?"),
        (["train", "--set", "train.epochs=abc"], "train.epochs"),
        (["train", "no-such-recipe.yaml"], "neither a file nor a bundled recipe"),
        (["train", "--set", "data.name=./missing.npz", "--out", str(tmp_path / "x")], "does not exist"),
        (["train", "--set", "novalue"], "expected KEY=VALUE"),
        (["bench", "nosuchbench"], "unknown benchmark 'nosuchbench'"),
    ]
    for args, expected in cases:
        proc = cli(*args, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert expected in proc.stderr, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_foreign_directory_is_not_touched(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = cli("train", "tiny", "--out", str(tmp_path), "--set", "train.epochs=1")
    assert proc.returncode == 2 and "not a tenfold run" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_kill_9_then_resume_finishes_same_epochs(tmp_path):
    out = tmp_path / "run"
    epochs = 40
    args = [sys.executable, "-m", "tenfold", "train", "tiny", "--out", str(out),
            "--set", f"train.epochs={epochs}", "--set", "model.hidden=[256,256]"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    manifest = out / "checkpoints" / "manifest.json"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        try:
            epoch = json.loads(manifest.read_text())["checkpoints"][0]["epoch"]
        except (OSError, ValueError, KeyError, IndexError):
            epoch = 0
        if epoch >= 2:
            proc.send_signal(signal.SIGKILL)
            killed_at = epoch
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished or stalled before it could be killed"
    assert not (out / "metrics.json").exists()

    resumed = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_from = int(resumed.stdout.split("resuming from epoch ")[1].split()[0])
    assert resumed_from >= killed_at
    assert history_epochs(out) == list(range(1, epochs + 1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["resumed_from_epoch"] == resumed_from
    assert metrics["run"]["epochs"] == epochs
    assert f"Epoch {resumed_from + 1}/{epochs}" in resumed.stdout
    assert f"Epoch {resumed_from}/{epochs}" not in resumed.stdout

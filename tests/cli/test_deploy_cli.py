"""`tenfold deploy MODEL.keras -o OUT` as a user runs it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import tenfold

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tenfold", *args], capture_output=True, text=True, env=ENV, timeout=300,
        check=False,
    )


def test_deploy_fuses_checks_and_exports(tmp_path):
    model = tenfold.models.small_resnet((8, 8, 1), 10, width=4, blocks=(1, 1), conv="acnet")
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, v.shape))
    path = tmp_path / "model.keras"
    model.save(path)
    out = tmp_path / "fused"
    proc = cli("deploy", str(path), "-o", str(out), "--data", "digits")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parameters:" in proc.stdout and "largest difference" in proc.stdout
    assert (out / "saved_model" / "saved_model.pb").is_file()
    facts = json.loads((out / "deploy.json").read_text())
    assert facts["deployed_parameters"] < facts["parameters"]
    assert facts["max_relative_difference"] < 1e-5
    fused = keras.saving.load_model(out / "model.keras", safe_mode=True)
    x = tenfold.data.load("digits").x_test[:16]
    np.testing.assert_allclose(fused.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_bad_input_exits_2(tmp_path):
    proc = cli("deploy", str(tmp_path / "missing.keras"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "m.h5").write_text("x")
    proc = cli("deploy", str(tmp_path / "m.h5"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and ".keras" in proc.stderr


def test_truncated_or_foreign_keras_file_is_one_message(tmp_path):
    model = tenfold.models.mlp((4,), 3, hidden=[8])
    good = tmp_path / "good.keras"
    model.save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.keras").write_text("not a model")
    for path in (truncated, tmp_path / "text.keras"):
        proc = cli("deploy", str(path), "-o", str(tmp_path / "o"))
        assert proc.returncode == 2, proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: model file {str(path)!r} is not a .keras archive (truncated, "
                          "or not written by model.save)."]
        assert "Traceback" not in proc.stderr and "File not found" not in proc.stderr
    assert not (tmp_path / "o").exists()

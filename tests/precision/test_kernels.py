"""The convolution-gradient self-check agrees with an independent measurement of Keras'
gradients, and the trainer refuses to train on wrong kernels (exit status 2, nothing
written)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tenfold.precision import kernels
from tenfold.precision.kernels import KernelCheck, conv_gradients
from tenfold.train import build as build_stage
from tenfold.train.recipe import RecipeError, load_recipe

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}

# a Keras Conv2D(1×1, stride 2) on an 8×8 input: its kernel gradient against float64 NumPy,
# and the self-check's verdict, in a process with the given oneDNN setting
PROBE = r"""
import json, numpy as np, keras, tensorflow as tf
from tenfold.precision import conv_gradients
x = np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype("float32")
conv = keras.layers.Conv2D(4, 1, strides=2, use_bias=False)
conv.build(x.shape)
with tf.GradientTape() as tape:
    y = conv(x)
    loss = tf.reduce_sum(y * y)
got = tape.gradient(loss, conv.kernel.value).numpy()[0, 0]
w = conv.kernel.numpy()[0, 0].astype("float64")
xs = x[:, ::2, ::2].astype("float64")
want = np.einsum("nhwc,nhwk->ck", xs, 2 * np.einsum("nhwc,ck->nhwk", xs, w))
check = conv_gradients()
print(json.dumps({"keras_right": bool(np.allclose(got, want, rtol=1e-4, atol=1e-4)),
                  "ok": check.ok, "onednn": check.onednn, "message": check.message()}))
"""


def test_reference_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 5, 5, 2))
    w = rng.normal(size=(1, 1, 2, 3))
    dy = rng.normal(size=(1, 3, 3, 3))

    def loss(x, w):  # Σ conv1x1(x, w, stride 2, VALID) · dy in float64
        return float(np.einsum("nhwc,ck,nhwk->", x[:, ::2, ::2], w[0, 0], dy))

    dw, dx = kernels._reference(x, dy, w, 2)
    eps = 1e-6
    cases = [(w, dw, (0, 0, 1, 2)), (x, dx, (0, 2, 4, 1)), (x, dx, (0, 1, 1, 0))]
    for array, grad, index in cases:
        bumped = array.copy()
        bumped[index] += eps
        numeric = (loss(*((bumped, w) if array is x else (x, bumped))) - loss(x, w)) / eps
        assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    assert dx[0, 1, 1, 0] == 0  # a skipped row gets no gradient


def test_this_process_computes_right_gradients():
    # the suite runs on TensorFlow's default kernels for the machine: they must be right
    check = conv_gradients()
    assert check.ok, check.message()
    assert check.worst < kernels.RTOL and check.message() == ""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_the_check_agrees_with_keras_gradients(onednn):
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**ENV, "TF_ENABLE_ONEDNN_OPTS": onednn}, timeout=300, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # wrong Keras gradients ⇒ the check fails (it covers this shape); a failing check says
    # what to change
    if not result["keras_right"]:
        assert not result["ok"]
    if not result["ok"]:
        assert "TF_ENABLE_ONEDNN_OPTS" in result["message"] and "wrong" in result["message"]
    if onednn == "0":
        assert result["onednn"] is False


def test_the_trainer_refuses_wrong_kernels_before_anything_is_built(tmp_path, monkeypatch):
    broken = KernelCheck(False, 0.6, ("8×8 stride 2, 3→4 channels, eager: relative error 0.6",), True)
    monkeypatch.setattr(build_stage, "conv_gradients", lambda: broken)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    recipe = load_recipe("tiny", ["train.epochs=1", "train.verbose=0"])
    with pytest.raises(RecipeError, match="unset TF_ENABLE_ONEDNN_OPTS.*'1'"):
        build_stage.build(recipe, tmp_path / "run", log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_configure_warns_on_wrong_kernels(monkeypatch):
    from tenfold import precision

    broken = KernelCheck(False, 0.6, ("8×8 stride 2, 3→4 channels, graph: relative error 0.6",), True)
    monkeypatch.setattr(kernels, "conv_gradients", lambda: broken)
    with pytest.warns(RuntimeWarning, match="wrong convolution gradients"):
        precision.configure("float32", jit_compile=False)

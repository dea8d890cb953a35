"""AGC clips the same on TensorFlow, JAX and PyTorch (one subprocess per backend).

The script (``agc_backend_script.py``) compares every result with float64 NumPy:

- ``wraps``: AGC around SGD, Adam, AdamW, Lion, tenfold's Adafactor and SM3 equals the
  inner optimizer fed with NumPy-clipped gradients, and differs from the inner optimizer
  alone (on PyTorch, Keras' optimizers update through ``_parallel_update_step``: a clip
  hooked on ``update_step`` gave a difference of exactly 0.0 there);
- ``loss_scale``: ``LossScaleOptimizer(AGC(SGD))`` on scaled gradients (through the jitted
  ``stateless_apply`` on JAX, where ``ops.cond`` used to fail) equals the reference, and
  with ``gradient_accumulation_steps=2`` the mean gradient is clipped;
- ``layers`` (slow): Dense, Conv2D, DepthwiseConv2D, MultiHeadAttention and Embedding
  variables of one model, AGC around SGD and Adam over two steps, against NumPy with the
  unit axes of each layer type written out in the script;
- ``fit16`` (slow): ``model.fit`` under ``mixed_float16`` wraps AGC in a
  ``LossScaleOptimizer`` and clips.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("agc_backend_script.py")
BACKENDS = ["tensorflow", "jax", "torch"]


def run(backend, *parts):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(SCRIPT), *parts], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    return result


@pytest.mark.parametrize("backend", BACKENDS)
def test_agc_clips_around_every_optimizer_and_under_loss_scaling(backend):
    result = run(backend, "wraps", "loss_scale")
    for name, r in result["wraps"].items():
        # the clip was active: AGC's weights are not the unclipped optimizer's ...
        assert r["agc_vs_plain"] > 1e-3, (backend, name, r)
        # ... they are the inner optimizer's on the NumPy-clipped gradients
        assert r["agc_vs_reference"] < 1e-5, (backend, name, r)
    assert set(result["wraps"]) == {"SGD", "Adam", "AdamW", "Lion", "Adafactor", "SM3"}
    assert result["loss_scale"] < 1e-5
    assert result["accumulate"] < 1e-5  # the mean of the accumulated gradients is clipped


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_type_units_against_numpy_and_mixed_float16_fit(backend):
    result = run(backend, "layers", "fit16")
    for kind in ("sgd", "adam"):
        r = result["layers"][kind]
        assert r["active"] >= 20, r  # most variables had units above the threshold
        assert r["max_rel_error"] < 5e-5, r
        assert r["excluded"] == ["classifier/kernel", "classifier/bias"]
        assert r["axes"]["dw/kernel"] == [0, 1] and r["axes"]["mha/attention_output/kernel"] == [0, 1]
    fit = result["fit16"]
    assert fit["optimizer"] == "LossScaleOptimizer"
    assert fit["loss"] == fit["loss"] and fit["loss"] < 10  # finite
    assert fit["hidden_diff"] > 1e-3  # AGC changed the clipped layer's training

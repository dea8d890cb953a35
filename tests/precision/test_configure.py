"""tenfold.precision.configure: the policy chosen on this machine, the rules of "auto",
XLA resolution, the conflict errors, the float32 head."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.env import cpu_flags
from tenfold.precision import configure, float32_layers
from tenfold.precision.configure import Device, choose_policy


@pytest.fixture(autouse=True)
def _restore_grappler():
    before = tf.config.optimizer.get_experimental_options()
    yield
    tf.config.optimizer.set_experimental_options({
        k: before.get(k, False) for k in
        ("auto_mixed_precision", "auto_mixed_precision_onednn_bfloat16", "auto_mixed_precision_mkl")
    })
    configure("float32", jit_compile=False)


def test_auto_on_this_machine():
    report = configure("auto")
    flags = set(cpu_flags())
    expected = "mixed_bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"
    if tf.config.list_physical_devices("GPU"):
        pytest.fail("these tests expect the CPU-only machine of the project")
    assert report.policy == expected
    assert "not measured" in report.reason and report.probe == []
    assert keras.config.dtype_policy().name == expected
    assert report.xla is False and report.jit_compile is False
    assert "CPU-only" in report.xla_reason
    assert report.grappler_option is None and report.loss_scaling is False


@pytest.mark.parametrize(
    "device,policy",
    [
        (Device("gpu", "H100", (9, 0)), "mixed_bfloat16"),
        (Device("gpu", "A100", (8, 0)), "mixed_bfloat16"),
        (Device("gpu", "T4", (7, 5)), "mixed_float16"),
        (Device("gpu", "P100", (6, 0)), "float32"),  # float16 only from 7.0 (tensor cores)
        (Device("gpu", "K80", (3, 7)), "float32"),
        (Device("cpu", "SPR", None, ["avx512f", "amx_bf16"]), "mixed_bfloat16"),
        (Device("cpu", "CPX", None, ["avx512_bf16"]), "mixed_bfloat16"),
        (Device("cpu", "SKX", None, ["avx2", "avx512f"]), "float32"),
    ],
)
def test_auto_rules(device, policy):
    chosen, reason = choose_policy(device)
    assert chosen == policy
    assert device.name in reason


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_keras_policies_are_set_and_reported(policy):
    report = configure(policy, jit_compile=True)
    assert keras.config.dtype_policy().name == policy
    assert report.policy == policy and report.keras_policy == policy
    assert report.xla is True and report.jit_compile is True
    assert report.loss_scaling is (policy == "mixed_float16")
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")
    assert "precision: **" + policy in report.summary()


def test_grappler_uses_the_onednn_rewrite_on_a_cpu_and_can_be_switched_off():
    report = configure("grappler")
    options = tf.config.optimizer.get_experimental_options()
    assert options.get("auto_mixed_precision_onednn_bfloat16") is True
    assert not options.get("auto_mixed_precision")  # the GPU rewrite does nothing on a CPU
    assert report.keras_policy == "float32" and keras.config.dtype_policy().name == "float32"
    assert report.xla is False and "does not run inside XLA" in report.xla_reason
    # a later configure() replaces what the earlier one set, without a conflict
    configure("mixed_bfloat16")
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")
    configure("grappler")
    configure("float32")
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")


# in a process with oneDNN on (TensorFlow's default only with AVX-512): the rewrite casts a
# matmul to bfloat16; without oneDNN it leaves it float32 (the reason below says so)
GRAPPLER_MATMUL = r"""
import json, warnings, numpy as np, tensorflow as tf
from tenfold.precision import configure
from tenfold.precision.configure import onednn_enabled
warnings.simplefilter("ignore", RuntimeWarning)  # the conv-gradient warning, not this test's
configure("grappler")
a = tf.constant(np.random.default_rng(0).normal(size=(64, 64)).astype("float32"))
got = tf.function(lambda a: tf.matmul(a, a))(a).numpy()
want = a.numpy().astype("float64") @ a.numpy().astype("float64")
print(json.dumps({"onednn": onednn_enabled(),
                  "error": float(np.abs(got - want).max() / np.abs(want).max())}))
"""


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_grappler_rewrite_casts_matmuls_to_bfloat16_with_onednn(onednn):
    import json
    import os
    import subprocess

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
           "TF_ENABLE_ONEDNN_OPTS": onednn}
    proc = subprocess.run([sys.executable, "-c", GRAPPLER_MATMUL], capture_output=True,
                          text=True, env=env, timeout=300, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["onednn"] is (onednn == "1")  # an explicit setting wins on every CPU
    if result["onednn"]:
        # float32 would be ~1e-7; a bfloat16 product (8-bit mantissa inputs) is ~1e-3
        assert result["error"] > 1e-5
    else:
        assert result["error"] < 1e-5  # the rewrite changed nothing


def test_grappler_with_xla_is_refused():
    with pytest.raises(ValueError, match="'grappler' conflicts with jit_compile=True"):
        configure("grappler", jit_compile=True)


def test_grappler_with_a_foreign_keras_mixed_policy_is_refused():
    keras.config.set_dtype_policy("mixed_bfloat16")  # set by someone else, not configure()
    with pytest.raises(ValueError, match="conflicts with the Keras dtype policy 'mixed_bfloat16'"):
        configure("grappler")


def test_keras_mixed_policy_with_a_foreign_grappler_rewrite_is_refused():
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    with pytest.raises(ValueError, match="conflicts with the Grappler rewrite"):
        configure("mixed_bfloat16")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"policy": "bf16"}, ValueError, r"policy must be one of .*received 'bf16'"),
        ({"policy": "mixed_bfloat"}, ValueError, r"Did you mean 'mixed_bfloat16'\?"),
        ({"policy": None}, ValueError, r"policy must be one of .*received None"),
        ({"jit_compile": "yes"}, ValueError, r"jit_compile must be 'auto', True or False, received 'yes'"),
        ({"jit_compile": 1}, TypeError, r"jit_compile must be 'auto', True or False, received 1 of type int"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        configure(**kwargs)


def test_float32_head_under_mixed_precision():
    configure("mixed_bfloat16")
    for model in (tenfold.models.small_resnet((8, 8, 1), 3, width=4), tenfold.models.mlp((8, 8, 1), 3)):
        assert model.get_layer("classifier").compute_dtype == "float32"
        assert float32_layers(model) == ["classifier"]
        out = model(np.zeros((2, 8, 8, 1), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
    report = configure("mixed_bfloat16").inspect(tenfold.models.mlp((4,), 3))
    assert report.float32_layers == ["classifier"]
    assert "classifier" in report.summary()
    configure("float32")
    assert float32_layers(tenfold.models.mlp((4,), 3)) == []


def test_grappler_without_onednn_says_the_rewrite_does_nothing(monkeypatch):
    module = sys.modules["tenfold.precision.configure"]
    monkeypatch.setattr(module, "onednn_enabled", lambda: False)
    monkeypatch.setattr(module, "detect_device", lambda: Device("cpu", "AVX2 only", None, ["avx2"]))
    try:
        report = configure("grappler")
        assert "TF_ENABLE_ONEDNN_OPTS=1" in report.reason and "float32" in report.reason
        assert "wrong" in report.reason  # it does not send the user to wrong gradients
        monkeypatch.setattr(module, "onednn_enabled", lambda: True)
        assert "TF_ENABLE_ONEDNN_OPTS" not in configure("grappler").reason
    finally:
        configure("float32")

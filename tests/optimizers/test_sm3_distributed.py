"""SM3 on one device, on 2 replicas of MirroredStrategy and under JAX DataParallel.

Each backend runs in a subprocess: the device split (TensorFlow's logical CPUs, XLA's host
platform device count) must happen before the framework initializes.

What made two replicas differ from one device was not the update rule (it runs the same on
the all-reduced gradient) but SM3 with ``epsilon=0``: its first step is ``g/|g| = ±1``, so a
gradient that is zero up to float32 round-off — a conv bias followed by batch norm — moves
by the learning rate in a direction set by the summation order. The test shows both: a
model whose gradients are all defined agrees to 1e-5, and the round-off bias parts by
O(lr) with ``epsilon=0`` and far less with the default ``epsilon=1e-8``.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

COMMON = textwrap.dedent(
    """
    import json, os
    import numpy as np
    import keras
    from tenfold.optimizers import SM3

    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    Y = (np.arange(32) % 4).astype("int32")
    STEPS, BATCH = 20, 16

    def build(bias_before_norm):
        inputs = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(8, 3, use_bias=bias_before_norm, name="conv")(inputs)
        h = keras.layers.BatchNormalization(
            synchronized=keras.backend.backend() == "tensorflow", name="bn")(h)  # JAX: global
        h = keras.layers.ReLU()(h)
        h = keras.layers.Conv2D(8, 3, name="conv2")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inputs, keras.layers.Dense(4, name="head")(h))

    keras.utils.set_random_seed(1)
    INIT = {flag: build(flag).get_weights() for flag in (False, True)}

    def make(bias_before_norm, **sm3):
        model = build(bias_before_norm)
        model.set_weights(INIT[bias_before_norm])
        model.compile(SM3(0.1, **sm3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def weights(model):
        return {w.path: np.asarray(w, np.float64) for w in model.trainable_weights}

    def compare(a, b):
        scale = max(1.0, max(float(np.max(np.abs(w))) for w in a.values()))
        diffs = {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}
        return {"rel": max(diffs.values()) / scale, "per_variable": diffs}

    CASES = {"momentum": (False, {}), "no_momentum": (False, {"momentum": 0.0}),
             "bias_eps0": (True, {"epsilon": 0.0}), "bias_default": (True, {})}
    """
)

TF_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    """
) + COMMON + textwrap.dedent(
    """
    def train(strategy, flag, sm3):
        with strategy.scope():
            model = make(flag, **sm3)
        ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH).repeat()
        model.fit(ds, epochs=1, steps_per_epoch=STEPS, verbose=0)
        return weights(model)

    def train_embedding(strategy):
        # sparse (IndexedSlices) gradients, all-reduced across replicas
        with strategy.scope():
            keras.utils.set_random_seed(2)
            model = keras.Sequential([keras.Input((5,), dtype="int32"),
                                      keras.layers.Embedding(40, 6, name="embed"),
                                      keras.layers.GlobalAveragePooling1D(),
                                      keras.layers.Dense(4, name="head")], name="bag")
            model.compile(SM3(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ids = np.random.default_rng(3).integers(0, 40, size=(32, 5)).astype("int32")
        ds = tf.data.Dataset.from_tensor_slices((ids, Y)).batch(BATCH).repeat()
        model.fit(ds, epochs=1, steps_per_epoch=STEPS, verbose=0)
        return weights(model)

    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": two.num_replicas_in_sync}
    for name, (flag, sm3) in CASES.items():
        out[name] = compare(train(one, flag, sm3), train(two, flag, sm3))
    out["embedding"] = compare(train_embedding(one), train_embedding(two))
    print(json.dumps(out))
    """
)

JAX_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    """
) + COMMON + textwrap.dedent(
    """
    def train(flag, sm3):
        model = make(flag, **sm3)
        model.fit(np.concatenate([X] * 10), np.concatenate([Y] * 10), batch_size=BATCH,
                  epochs=1, shuffle=False, verbose=0)
        return weights(model)

    single = {name: train(flag, sm3) for name, (flag, sm3) in CASES.items()}
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    out = {"replicas": len(jax.devices())}
    for name, (flag, sm3) in CASES.items():
        out[name] = compare(single[name], train(flag, sm3))
    print(json.dumps(out))
    """
)


def _run(script, backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(result):
    assert result["replicas"] == 2
    # every gradient defined: two replicas give the one-device weights after 20 steps
    assert result["momentum"]["rel"] <= 1e-5, result["momentum"]
    assert result["no_momentum"]["rel"] <= 1e-5, result["no_momentum"]
    # the cause: a bias whose gradient is round-off (conv before batch norm) moves by
    # ±lr per step with epsilon=0; the default epsilon damps it by orders of magnitude
    eps0 = result["bias_eps0"]["per_variable"]["conv/bias"]
    default = result["bias_default"]["per_variable"]["conv/bias"]
    assert eps0 > 1e-2, result["bias_eps0"]
    assert default < eps0 / 50, (default, eps0)
    for name in ("bias_eps0", "bias_default"):  # the other weights are unaffected
        others = {k: v for k, v in result[name]["per_variable"].items() if k != "conv/bias"}
        assert max(others.values()) <= 1e-5, result[name]


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device():
    result = _run(TF_SCRIPT, "tensorflow")
    _check(result)
    assert result["embedding"]["rel"] <= 1e-5, result["embedding"]


@pytest.mark.slow
def test_jax_data_parallel_matches_one_device():
    _check(_run(JAX_SCRIPT, "jax"))

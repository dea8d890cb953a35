"""On 2 devices AGC (and Adafactor, SM3) give one device's weights: MirroredStrategy, JAX DataParallel.

Runs in a subprocess: the logical-device split must happen before TensorFlow initializes,
which other tests in the same worker may already have done.
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    import numpy as np
    from tenfold.ops import adaptive_clip
    from tenfold.optimizers import AGC, SM3, Adafactor

    class ClipBeforeAllReduce(keras.optimizers.SGD):
        # what `apply()`-level clipping does: each replica clips its own local gradient
        def apply(self, grads, trainable_variables=None):
            grads = [adaptive_clip(g, v, clipping=0.01) for g, v in zip(grads, trainable_variables)]
            return super().apply(grads, trainable_variables)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = (np.arange(32) % 3).astype("int32")
    keras.utils.set_random_seed(1)
    init = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                             keras.layers.Dense(3)]).get_weights()

    def train(strategy, kind):
        with strategy.scope():
            model = keras.Sequential([
                keras.Input((6,)), keras.layers.Dense(16, activation="tanh", name="hidden"),
                keras.layers.Dense(3, name="classifier")])
            model.set_weights(init)
            if kind == "agc":
                opt = AGC(keras.optimizers.SGD(0.5), clipping=0.01)
            elif kind == "agc_lso":  # loss scaling outside, the way mixed_float16 wraps it
                opt = keras.optimizers.LossScaleOptimizer(
                    AGC(keras.optimizers.SGD(0.5), clipping=0.01))
            elif kind == "adafactor":
                opt = Adafactor(beta_1=0.9, min_dim_size_to_factor=3)
            elif kind == "sm3":
                opt = SM3(0.1)
            elif kind == "pre":
                opt = ClipBeforeAllReduce(0.5)
            else:
                opt = keras.optimizers.SGD(0.5)
            model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        model.fit(ds, epochs=2, verbose=0, shuffle=False)
        return [np.asarray(w, np.float64) for w in model.get_weights()]

    tokens = rng.integers(0, 12, size=(32, 5)).astype("int32")

    def train_embedding(strategy, kind):
        # an Embedding: its gradient is an IndexedSlices, all-reduced as such
        with strategy.scope():
            keras.utils.set_random_seed(2)
            model = keras.Sequential([
                keras.Input((5,), dtype="int32"), keras.layers.Embedding(12, 4, name="emb"),
                keras.layers.Flatten(), keras.layers.Dense(3, name="classifier")])
            inner = keras.optimizers.SGD(0.5)
            model.compile(AGC(inner, clipping=0.01) if kind == "agc" else inner,
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ds = tf.data.Dataset.from_tensor_slices((tokens, y)).batch(16)
        model.fit(ds, epochs=2, verbose=0, shuffle=False)
        return [np.asarray(w, np.float64) for w in model.get_weights()]

    def diff(a, b):
        return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))

    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    agc_one, agc_two = train(one, "agc"), train(two, "agc")
    print(json.dumps({
        "replicas": two.num_replicas_in_sync,
        "agc_two_vs_one": diff(agc_two, agc_one),
        "agc_lso_two_vs_one": diff(train(two, "agc_lso"), agc_one),
        "emb_two_vs_one": diff(train_embedding(two, "agc"), train_embedding(one, "agc")),
        "emb_plain_vs_agc": diff(train_embedding(one, "plain"), train_embedding(one, "agc")),
        "plain_vs_agc": diff(train(one, "plain"), agc_one),
        "pre_two_vs_one": diff(train(two, "pre"), train(one, "pre")),
        "adafactor_two_vs_one": diff(train(two, "adafactor"), train(one, "adafactor")),
        "sm3_two_vs_one": diff(train(two, "sm3"), train(one, "sm3")),
        "scale": max(float(np.max(np.abs(w))) for w in agc_one),
    }))
    """
)


def test_mirrored_strategy_matches_one_device_and_clips_after_all_reduce():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # AGC was active (it changed the result) and the run is sensitive to where one clips ...
    assert result["plain_vs_agc"] > 1e-3
    assert result["pre_two_vs_one"] > 1e-4
    # ... yet AGC on 2 replicas gives the one-device weights, to float32 round-off
    assert result["agc_two_vs_one"] < 1e-5 * max(1.0, result["scale"])
    # ... under loss scaling too, and with a sparse (Embedding) gradient
    assert result["agc_lso_two_vs_one"] < 1e-5 * max(1.0, result["scale"])
    assert result["emb_plain_vs_agc"] > 1e-3
    assert result["emb_two_vs_one"] < 1e-5 * max(1.0, result["scale"])
    assert result["adafactor_two_vs_one"] < 1e-5 * max(1.0, result["scale"])
    assert result["sm3_two_vs_one"] < 1e-5 * max(1.0, result["scale"])


JAX_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    import keras
    import numpy as np
    from tenfold.optimizers import AGC

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = (np.arange(32) % 3).astype("int32")
    keras.utils.set_random_seed(1)
    init = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                             keras.layers.Dense(3)]).get_weights()

    def train(agc):
        model = keras.Sequential([
            keras.Input((6,)), keras.layers.Dense(16, activation="tanh", name="hidden"),
            keras.layers.Dense(3, name="classifier")])
        model.set_weights(init)
        inner = keras.optimizers.SGD(0.5)
        model.compile(AGC(inner, clipping=0.01).for_model(model) if agc else inner,
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        return [np.asarray(w, np.float64) for w in model.get_weights()]

    def diff(a, b):
        return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))

    one, plain = train(True), train(False)
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    two = train(True)
    print(json.dumps({"devices": len(jax.devices()), "two_vs_one": diff(two, one),
                      "plain_vs_agc": diff(plain, one),
                      "scale": max(float(np.max(np.abs(w))) for w in one)}))
    """
)


def test_jax_data_parallel_matches_one_device():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["plain_vs_agc"] > 1e-3
    assert result["two_vs_one"] < 1e-5 * max(1.0, result["scale"])

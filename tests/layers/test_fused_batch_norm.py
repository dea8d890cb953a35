"""FusedBatchNormalization: the float64 formula, Keras' layer, gradients, bf16, fallbacks."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.layers import FusedBatchNormalization


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 4.0, shape[-1])
    return (rng.normal(size=shape) * scale + rng.normal(size=shape[-1]) * 3).astype("float32")


def _pair(shape, momentum=0.9, **kwargs):
    """A fused layer and Keras' own with the same random weights and moving statistics."""
    rng = np.random.default_rng(1)
    c = shape[-1]
    weights = [rng.uniform(0.5, 2, c), rng.normal(size=c), rng.normal(size=c), rng.uniform(0.5, 3, c)]
    layers = []
    for cls in (FusedBatchNormalization, keras.layers.BatchNormalization):
        layer = cls(momentum=momentum, **kwargs)
        layer.build(shape)
        layer.set_weights([w.astype("float32") for w in weights[: len(layer.weights)]])
        layers.append(layer)
    return layers, weights


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 9, 5), (16, 6)])
def test_training_matches_float64_formula(shape):
    x = _data(shape)
    (fused, _), (gamma, beta, mean0, var0) = _pair(shape, momentum=0.8, epsilon=1e-3)
    y = np.asarray(fused(x, training=True))
    flat = x.astype("float64").reshape(-1, shape[-1])
    mean, var = flat.mean(0), flat.var(0)  # biased, as Keras
    expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.8 * mean0 + 0.2 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.8 * var0 + 0.2 * var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 9, 5), (16, 6)])
def test_inference_matches_float64_formula(shape):
    x = _data(shape)
    (fused, _), (gamma, beta, mean0, var0) = _pair(shape, epsilon=1e-2)
    y = np.asarray(fused(x, training=False))
    np.testing.assert_allclose(y, gamma * (x - mean0) / np.sqrt(var0 + 1e-2) + beta, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), mean0.astype("float32"))  # untouched


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_gradients_equal_keras(center, scale):
    shape = (8, 4, 4, 3)
    x = tf.constant(_data(shape))
    (fused, plain), _ = _pair(shape, center=center, scale=scale)
    upstream = tf.constant(np.random.default_rng(5).normal(size=shape).astype("float32"))
    grads = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads.append(tape.gradient(loss, [x, *layer.trainable_variables]))
    assert len(grads[0]) == len(grads[1]) == 1 + center + scale
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_uses_the_fused_kernel_on_tensorflow():
    layer = FusedBatchNormalization()
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec((2, 3, 3, 4), tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in ops
    assert "Mean" not in ops  # no separate moments


def test_bfloat16_activations_stay_bfloat16():
    shape = (8, 5, 5, 4)
    x = _data(shape)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        fused = FusedBatchNormalization(momentum=0.5)
        bf16_in = tf.cast(x, tf.bfloat16)
        y = fused(bf16_in, training=True)
        graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(
            tf.TensorSpec(shape, tf.bfloat16)).graph
    finally:
        keras.config.set_dtype_policy("float32")
    assert y.dtype == tf.bfloat16
    assert fused.moving_mean.dtype == "float32"
    casts = [op for op in graph.get_operations() if op.type == "Cast"
             and op.inputs[0].shape.rank == 4]
    assert not casts, "activations were cast: " + ", ".join(op.name for op in casts)
    ref = keras.layers.BatchNormalization(momentum=0.5)
    expected = np.asarray(ref(np.asarray(tf.cast(bf16_in, tf.float32)), training=True))
    np.testing.assert_allclose(np.asarray(tf.cast(y, tf.float32)), expected, atol=0.05, rtol=0.02)
    np.testing.assert_allclose(fused.moving_mean.numpy(), ref.moving_mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["mask", "axis", "renorm"])
def test_unfusable_cases_are_keras(case):
    shape = (4, 6, 5)
    x = _data(shape)
    kwargs = {"axis": 1} if case == "axis" else {"renorm": True} if case == "renorm" else {}
    fused, plain = FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    mask = np.random.default_rng(2).uniform(size=shape[:2]) > 0.3 if case == "mask" else None
    for layer in (fused, plain):
        layer.build(shape)
    np.testing.assert_allclose(np.asarray(fused(x, training=True, mask=mask)),
                               np.asarray(plain(x, training=True, mask=mask)), rtol=1e-5, atol=1e-5)
    graph = tf.function(lambda t: fused(t, training=True, mask=mask)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}


def test_frozen_layer_uses_moving_statistics():
    shape = (6, 3, 3, 2)
    x = _data(shape)
    (fused, plain), _ = _pair(shape)
    for layer in (fused, plain):
        layer.trainable = False
    np.testing.assert_allclose(np.asarray(fused(x, training=True)), np.asarray(plain(x, training=True)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy())


def test_fit_matches_keras_batch_norm():
    """Two epochs of fit, graph mode: same weights and moving statistics as Keras' layer."""
    x = _data((32, 6, 6, 3))
    y = np.random.default_rng(3).integers(0, 4, 32)

    def train(norm):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((6, 6, 3)), keras.layers.Conv2D(5, 3, use_bias=False), norm(momentum=0.7),
            keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4),
        ])
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return [w.numpy() for w in model.weights]

    for a, b in zip(train(FusedBatchNormalization), train(keras.layers.BatchNormalization)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bn_switch_builds_fused_layers_and_deploy_folds_them():
    model = tenfold.models.small_resnet((8, 8, 1), 3, width=4)
    norms = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    assert norms and all(type(la) is FusedBatchNormalization for la in norms)
    from tenfold.reparam.fusion import is_norm

    assert is_norm(norms[0])
    keras_model = tenfold.models.small_resnet((8, 8, 1), 3, width=4, norm="keras_bn")
    kinds = {type(la) for la in keras_model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)}
    assert kinds == {keras.layers.BatchNormalization}


_DISTRIBUTED = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras
    import numpy as np
    import tenfold
    x = (np.random.default_rng(0).normal(size=(8, 4, 4, 3)) * 3 + 1).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    outs = {}
    for cls in (tenfold.layers.FusedBatchNormalization, keras.layers.BatchNormalization):
        with strategy.scope():
            layer = cls(momentum=0.5)
            layer.build(x.shape)

        @tf.function
        def step(batch):
            return strategy.run(lambda b: layer(b, training=True), args=(batch,))

        ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
        out = step(next(iter(ds)))
        outs[cls.__name__] = (np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)]),
                              layer.moving_mean.numpy(), layer.moving_variance.numpy())
    a, b = outs["FusedBatchNormalization"], outs["BatchNormalization"]
    print("OUT", np.abs(a[0] - b[0]).max())
    print("MEAN", np.abs(a[1] - b[1]).max())
    print("VAR", np.abs(a[2] - b[2]).max())
    """
)


def test_mirrored_strategy_matches_keras():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _DISTRIBUTED], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = dict(line.split() for line in proc.stdout.splitlines() if line[:3] in ("OUT", "MEA", "VAR"))
    assert float(values["OUT"]) < 1e-4
    assert float(values["MEAN"]) < 1e-5
    assert float(values["VAR"]) < 1e-4

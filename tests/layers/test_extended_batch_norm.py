"""ExtendedBatchNormalization: reference formula, BN equivalence, masks, distribution."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tenfold.layers import ExtendedBatchNormalization
from tenfold.testing import to_numpy

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends


def reference_ebn_train(x, groups, gamma, beta, eps, mask=None):
    """EBN training output and batch statistics in float64 (channels last)."""
    x = to_numpy(x, np.float64)
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    w = np.ones(len(flat)) if mask is None else to_numpy(mask, np.float64).reshape(-1)
    n = w.sum()
    mean = (flat * w[:, None]).sum(0) / n
    var_c = (((flat - mean) ** 2) * w[:, None]).sum(0) / n
    pooled = var_c.reshape(groups, c // groups).mean(1)
    var = np.repeat(pooled, c // groups)
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, mean, var


@pytest.mark.parametrize("shape,groups", [((5, 4, 3, 6), 1), ((5, 4, 3, 6), 3), ((12, 8), 1), ((12, 8), 4)])
def test_training_output_and_moving_statistics(shape, groups):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * rng.uniform(0.5, 4, shape[-1]) + rng.normal(size=shape[-1])).astype("float32")
    layer = ExtendedBatchNormalization(momentum=0.9, epsilon=1e-3, variance_groups=groups)
    layer.build(x.shape)
    gamma = rng.uniform(0.5, 2, shape[-1])
    beta = rng.normal(size=shape[-1])
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y = to_numpy(layer(x, training=True))
    ref, mean, var = reference_ebn_train(x, groups, gamma, beta, 1e-3)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_numpy(layer.moving_mean), 0.1 * mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.moving_variance), 0.9 + 0.1 * var, rtol=1e-4)
    # inference uses the moving statistics
    mm, mv = to_numpy(layer.moving_mean, np.float64), to_numpy(layer.moving_variance, np.float64)
    y_inf = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(y_inf, gamma * (x - mm) / np.sqrt(mv + 1e-3) + beta, rtol=1e-4, atol=1e-4)


def test_one_group_per_channel_equals_batch_normalization():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(6, 5, 5, 4)) * [1, 2, 3, 4]).astype("float32")
    ebn = ExtendedBatchNormalization(variance_groups=4, momentum=0.8)
    bn = keras.layers.BatchNormalization(momentum=0.8)
    for _ in range(3):
        np.testing.assert_allclose(to_numpy(ebn(x, training=True)), to_numpy(bn(x, training=True)), atol=1e-4)
    np.testing.assert_allclose(to_numpy(ebn.moving_variance), to_numpy(bn.moving_variance), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(ebn(x)), to_numpy(bn(x)), atol=1e-4)
    assert [w.name for w in ebn.weights] == [w.name for w in bn.weights]


def test_single_group_variance_is_one_number():
    x = (np.random.default_rng(2).normal(size=(2, 3, 3, 5)) * [1, 2, 3, 4, 5]).astype("float32")
    layer = ExtendedBatchNormalization(momentum=0.0)
    layer(x, training=True)
    mv = to_numpy(layer.moving_variance)
    np.testing.assert_allclose(mv, mv[0], rtol=1e-6)


def test_mask_weights_the_statistics():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    layer = ExtendedBatchNormalization(momentum=0.0, variance_groups=2)
    y = to_numpy(layer(x, training=True, mask=mask))
    ref, _, _ = reference_ebn_train(x, 2, 1.0, 0.0, 1e-3, mask=mask)
    np.testing.assert_allclose(y[mask], ref[mask], rtol=1e-4, atol=1e-4)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(10, 4, mask_zero=True), ExtendedBatchNormalization()])
    assert model(np.array([[1, 2, 0, 0, 0]]), training=True).shape == (1, 5, 4)


def test_mixed_precision_statistics():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = ExtendedBatchNormalization()
    y = layer(np.random.normal(size=(4, 3, 3, 2)).astype("float32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert layer.moving_variance.dtype == "float32"


@pytest.mark.parametrize(
    "kwargs,match",
    [({"variance_groups": 0}, "variance_groups"), ({"momentum": 2.0}, "momentum"),
     ({"epsilon": 0}, "epsilon"), ({"axis": "x"}, "axis"), ({"center": 1}, "center")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ExtendedBatchNormalization(**kwargs)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="variance_groups must divide the number of channels \\(6\\), received 4"):
        ExtendedBatchNormalization(variance_groups=4)(np.ones((2, 6)))


_DISTRIBUTED = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import tenfold
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 4, 4, 6)) * 3 + np.arange(6)).astype("float32")
    x[4:] *= 5.0  # the two replicas' halves have different statistics
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = tenfold.layers.ExtendedBatchNormalization(momentum=0.5, variance_groups=2)
        layer.build(x.shape)

    @tf.function
    def step(batch):
        return strategy.run(lambda b: layer(b, training=True), args=(batch,))

    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
    out = step(next(iter(ds)))
    out = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
    single = tenfold.layers.ExtendedBatchNormalization(momentum=0.5, variance_groups=2)
    ref = single(x, training=True).numpy()
    half = tenfold.layers.ExtendedBatchNormalization(momentum=0.5, variance_groups=2)
    local = half(x[:4], training=True).numpy()
    print("OUT", np.abs(out - ref).max())
    print("MEAN", np.abs(layer.moving_mean.numpy() - single.moving_mean.numpy()).max())
    print("VAR", np.abs(layer.moving_variance.numpy() - single.moving_variance.numpy()).max())
    print("LOCAL", np.abs(local - ref[:4]).max())
    """
)


def test_mirrored_strategy_gives_global_batch_statistics():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", _DISTRIBUTED], capture_output=True, text=True, env=env, timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = dict(line.split() for line in proc.stdout.splitlines() if line[:3] in ("OUT", "MEA", "VAR", "LOC"))
    assert float(values["OUT"]) < 1e-4
    assert float(values["MEAN"]) < 1e-5
    assert float(values["VAR"]) < 1e-4
    assert float(values["LOCAL"]) > 1e-2  # per-replica statistics would differ

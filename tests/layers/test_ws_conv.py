"""WSConv1D / WSConv2D / WSDense and tenfold.ops.standardize_kernel."""

import os
import tempfile

import keras
import numpy as np
import pytest

import tenfold
from tenfold.layers import WSConv1D, WSConv2D, WSDense
from tenfold.ops import standardize_kernel
from tenfold.testing import to_numpy

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends


def reference_standardize(w, gain=None, eps=1e-4):
    """Scaled WS in float64: per output channel (last axis)."""
    w = to_numpy(w, np.float64)
    axes = tuple(range(w.ndim - 1))
    fan_in = np.prod(w.shape[:-1])
    mean = w.mean(axis=axes, keepdims=True)
    var = ((w - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (w - mean) / np.sqrt(np.maximum(fan_in * var, eps))
    return out if gain is None else out * to_numpy(gain, np.float64)


def reference_conv2d_valid(x, w, b=None, stride=1):
    n, h, wd, _ = x.shape
    kh, kw, _, o = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out if b is None else out + b


@pytest.mark.parametrize("shape", [(3, 3, 4, 5), (5, 2, 7), (6, 3)])
def test_standardize_kernel_matches_reference_and_moments(shape):
    rng = np.random.default_rng(0)
    w = rng.normal(1.0, 3.0, size=shape).astype("float32")
    gain = rng.uniform(0.5, 2.0, size=shape[-1]).astype("float32")
    got = to_numpy(standardize_kernel(w, gain=gain))
    np.testing.assert_allclose(got, reference_standardize(w, gain), rtol=1e-5, atol=1e-6)
    plain = to_numpy(standardize_kernel(w), np.float64)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(plain.mean(axis=axes), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.prod(shape[:-1]) * plain.var(axis=axes), 1.0, rtol=1e-5)


def test_standardize_kernel_epsilon_floor_and_dtype():
    w = np.full((2, 2, 1, 3), 0.5, "float32")
    w[0, 0, 0, 0] += 1e-4  # tiny variance: the epsilon floor dominates
    got = to_numpy(standardize_kernel(w, epsilon=0.5))
    np.testing.assert_allclose(got, reference_standardize(w, eps=0.5), atol=1e-7)
    bf = keras.ops.cast(np.random.normal(size=(3, 3, 2, 4)), "bfloat16")
    assert keras.backend.standardize_dtype(standardize_kernel(bf).dtype) == "bfloat16"


def test_standardize_kernel_bad_input():
    with pytest.raises(ValueError, match="epsilon"):
        standardize_kernel(np.ones((2, 2)), epsilon=0.0)
    with pytest.raises(ValueError, match="rank >= 2"):
        standardize_kernel(np.ones((3,)))


def test_wsconv2d_output_matches_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    layer = WSConv2D(5, 3, strides=2, use_bias=True, bias_initializer="random_normal")
    y = to_numpy(layer(x))
    layer.gain.assign(rng.uniform(0.5, 2.0, 5))
    y = to_numpy(layer(x))
    w = reference_standardize(to_numpy(layer.kernel), to_numpy(layer.gain))
    expected = reference_conv2d_valid(x.astype(np.float64), w, to_numpy(layer.bias, np.float64), stride=2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_wsconv2d_keeps_conv2d_arguments():
    x = np.random.default_rng(2).normal(size=(2, 9, 9, 4)).astype("float32")
    layer = WSConv2D(6, 3, padding="same", groups=2, dilation_rate=2, activation="relu", use_bias=False)
    y = to_numpy(layer(x))
    assert y.shape == (2, 9, 9, 6) and y.min() >= 0.0
    assert layer.bias is None and layer.kernel.shape == (3, 3, 2, 6)
    # same as Keras' Conv2D with the standardized kernel
    ref = keras.layers.Conv2D(6, 3, padding="same", groups=2, dilation_rate=2, activation="relu", use_bias=False)
    ref.build(x.shape)
    ref.kernel.assign(to_numpy(layer.standardized_kernel()))
    np.testing.assert_allclose(y, to_numpy(ref(x)), atol=1e-5)
    assert WSConv2D(4, 3, use_gain=False).get_config()["use_gain"] is False


def test_wsconv1d_causal_and_wsdense_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    layer = WSConv1D(4, 3, padding="causal", use_bias=False)
    y = to_numpy(layer(x))
    w = reference_standardize(to_numpy(layer.kernel))
    xp = np.concatenate([np.zeros((2, 2, 3)), x], axis=1)
    expected = np.stack([np.tensordot(xp[:, t:t + 3], w, axes=([1, 2], [0, 1])) for t in range(6)], axis=1)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    dense = WSDense(5)
    xd = rng.normal(size=(4, 7)).astype("float32")
    yd = to_numpy(dense(xd))
    expected = xd.astype(np.float64) @ reference_standardize(to_numpy(dense.kernel)) + to_numpy(dense.bias)
    np.testing.assert_allclose(yd, expected, atol=1e-5)


def test_gain_survives_save_and_load():
    inputs = keras.Input((6, 6, 2))
    outputs = WSConv2D(3, 3, name="ws")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("ws").gain.assign([0.5, 2.0, 3.0])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded.get_layer("ws").gain), [0.5, 2.0, 3.0])
    x = np.ones((1, 6, 6, 2), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_mixed_precision_statistics_in_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = WSConv2D(4, 3)
    y = layer(np.ones((1, 5, 5, 2), "float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert layer.kernel.dtype == "float32" and layer.gain.dtype == "float32"
    k = to_numpy(keras.ops.cast(layer.standardized_kernel(), "float32"), np.float64)
    np.testing.assert_allclose(k, reference_standardize(to_numpy(layer.kernel)), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("kwargs,match", [({"epsilon": -1.0}, "epsilon"), ({"use_gain": "yes"}, "use_gain")])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WSConv2D(4, 3, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        WSDense(4, **kwargs)


def test_ws_switch_is_registered():
    model = tenfold.models.small_resnet((8, 8, 1), 3, conv="ws")
    assert any(isinstance(layer, WSConv2D) for layer in model.layers)


def test_contract_check_catches_a_forgotten_gain():
    """A WS subclass that saves only kernel and bias (as Conv2D does) fails save/load."""
    from tenfold.testing import ContractExample, check_component

    class Forgetful(WSConv2D):
        def save_own_variables(self, store):
            keras.layers.Conv2D.save_own_variables(self, store)

        def load_own_variables(self, store):
            keras.layers.Conv2D.load_own_variables(self, store)

    keras.saving.register_keras_serializable("tenfold_tests", "Forgetful")(Forgetful)
    example = ContractExample(make=lambda: Forgetful(3, 3, padding="same"), input_shape=(6, 6, 2))
    with pytest.raises((AssertionError, ValueError), match="variables|weights|gain|Not equal"):
        check_component("layers", example, checks=("save_load",))

"""tenfold.reparam.deploy on Functional, Sequential, nested models and residual blocks."""

import os
import tempfile

import keras
import numpy as np
import pytest

import tenfold
from tenfold.reparam import (
    deploy,
    effective_weights,
    fused_counterpart,
    max_difference,
    parameter_count,
)


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("moving_variance") or v.path.endswith("gamma"):
            v.assign(rng.uniform(0.5, 1.5, v.shape))
        elif v.path.endswith("moving_mean") or v.path.endswith("beta"):
            v.assign(rng.normal(scale=0.3, size=v.shape))
        elif v.path.endswith("skip_gain"):
            v.assign(rng.uniform(0.5, 1.0, v.shape))


def relative_difference(a, b, x):
    scale = float(np.abs(a.predict(x, verbose=0)).max())
    return max_difference(a, b, x) / max(scale, 1e-12)


def test_conv_bn_pairs_fold_and_other_layers_stay():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="a")(inputs)
    a = keras.layers.BatchNormalization(name="a_bn")(a)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)  # activation: no fold
    b = keras.layers.BatchNormalization(name="b_bn")(b)
    c = keras.layers.Conv2D(4, 1, name="c")(b)  # output used twice: no fold
    d = keras.layers.BatchNormalization(name="d_bn")(c)
    x = keras.layers.Add()([c, d])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    outputs = keras.layers.BatchNormalization(name="dense_bn")(x)
    model = keras.Model(inputs, outputs)
    randomize(model)
    fused = deploy(model)
    kinds = {layer.name: type(layer).__name__ for layer in fused.layers}
    assert kinds["a_bn"] == "Identity" and fused.get_layer("a").use_bias
    assert kinds["b_bn"] == kinds["d_bn"] == kinds["dense_bn"] == "BatchNormalization"
    np.testing.assert_array_equal(np.asarray(fused.get_layer("c").kernel), np.asarray(model.get_layer("c").kernel))
    xs = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5
    np.testing.assert_allclose(np.asarray(fused.get_layer("dense").kernel), np.asarray(model.get_layer("dense").kernel))
    # the original is untouched
    assert type(model.get_layer("a_bn")).__name__ == "BatchNormalization"


def test_nested_models_and_sequential():
    inner = keras.Sequential(
        [keras.Input((8, 8, 4)), tenfold.layers.ACBlock(4), keras.layers.BatchNormalization(), keras.layers.ReLU()],
        name="inner",
    )
    inputs = keras.Input((8, 8, 3))
    x = tenfold.layers.RepVGGBlock(4, name="rep")(inputs)
    x = inner(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    randomize(model, seed=1)
    fused = deploy(model)
    assert fused.get_layer("rep").deploy
    fused_inner = fused.get_layer("inner")
    assert [type(layer).__name__ for layer in fused_inner.layers] == ["ACBlock", "Identity", "ReLU"]
    assert fused_inner.layers[0].deploy
    xs = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5
    assert parameter_count(fused) < parameter_count(model)


@pytest.mark.parametrize("conv", ["plain", "ws", "acnet", "repvgg"])
@pytest.mark.parametrize("norm", ["bn", "ebn"])
def test_small_resnet_switches_deploy(conv, norm):
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv=conv, norm=norm)
    randomize(model, seed=2)
    fused = deploy(model)
    blocks = [layer for layer in fused.layers if isinstance(layer, tenfold.models.ResidualBlock)]
    assert blocks and all(block.fused and block.norm1 is None for block in blocks)
    assert not any(
        isinstance(layer, (keras.layers.BatchNormalization, tenfold.layers.ExtendedBatchNormalization))
        for layer in fused._flatten_layers()
    )
    xs = np.random.default_rng(2).normal(size=(8, 8, 8, 1)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_nf_resnet_deploys_and_saves():
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="ws", norm="none")
    randomize(model, seed=3)
    fused = deploy(model)
    assert all(b.fused for b in fused.layers if isinstance(b, tenfold.models.NFResidualBlock))
    xs = np.random.default_rng(3).normal(size=(4, 8, 8, 1)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fused.keras")
        fused.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert relative_difference(model, loaded, xs) < 1e-5


def test_fused_acnet_resnet_saves_and_loads():
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="acnet")
    randomize(model, seed=4)
    fused = deploy(model)
    xs = np.random.default_rng(4).normal(size=(4, 8, 8, 1)).astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fused.keras")
        fused.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert relative_difference(model, loaded, xs) < 1e-5
    assert parameter_count(loaded) == parameter_count(fused) < parameter_count(model)


def test_effective_weights_of_ws_conv_fold_reference():
    conv = tenfold.layers.WSConv2D(3, 3, use_bias=False)
    conv.build((None, 5, 5, 2))
    bn = keras.layers.BatchNormalization(epsilon=0.01)
    bn.build((None, 3, 3, 3))
    bn.moving_mean.assign([0.1, -0.2, 0.3])
    bn.moving_variance.assign([1.5, 0.5, 2.0])
    bn.gamma.assign([2.0, 1.0, 0.5])
    bn.beta.assign([0.0, 1.0, -1.0])
    kernel, bias = effective_weights(conv, bn)
    w = np.asarray(conv.kernel, np.float64)
    w = (w - w.mean((0, 1, 2))) / np.sqrt(np.maximum(18 * w.var((0, 1, 2)), 1e-4))
    scale = np.array([2.0, 1.0, 0.5]) / np.sqrt(np.array([1.5, 0.5, 2.0]) + 0.01)
    np.testing.assert_allclose(kernel, w * scale, rtol=1e-6)
    np.testing.assert_allclose(bias, -np.array([0.1, -0.2, 0.3]) * scale + [0.0, 1.0, -1.0], rtol=1e-6)
    assert type(fused_counterpart(conv)) is keras.layers.Conv2D


def test_bad_input():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="Functional and Sequential"):
        deploy(Sub())
    with pytest.raises(TypeError, match="keras.Model"):
        deploy(keras.layers.Dense(2))
    with pytest.raises(TypeError, match="no fused form"):
        fused_counterpart(keras.layers.Dense(2))

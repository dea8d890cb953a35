"""tenfold.reparam.convert: layers swapped on any functional graph, weights carried."""

import keras
import numpy as np
import pytest

import tenfold
from tenfold.reparam import convert, deploy, parameter_count
from tenfold.reparam.convert import block_refusal
from tenfold.testing import randomize_norms as randomize


def small_model(size=9):
    """Conv-BN pairs, a strided conv, a 1x1 conv, an ops node, a conv with an activation."""
    i = keras.Input((size, size, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(i)
    h = keras.layers.BatchNormalization(name="stem_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down")(h)
    h = keras.layers.BatchNormalization(name="down_bn")(h)
    p = keras.layers.Conv2D(8, 1, name="point")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", name="last")(p + h)
    h = keras.layers.Conv2D(8, 3, padding="valid", activation="relu", name="relu_conv")(h)
    o = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(i, keras.layers.Dense(3, name="head")(o))
    randomize(model)
    return model


def kinds(model):
    return {layer.name: type(layer).__name__ for layer in model.layers}


def outputs(model, x):
    return np.asarray(model.predict(x, verbose=0), "float64")


X = np.random.default_rng(1).normal(size=(4, 9, 9, 3)).astype("float32")


@pytest.mark.parametrize("conv,cls", [("acnet", "ACBlock"), ("repvgg", "RepVGGBlock")])
def test_blocks_replace_the_convs_they_compute_and_keep_the_outputs(conv, cls):
    model = small_model()
    new = convert(model, conv=conv)
    k = kinds(new)
    assert k["stem"] == k["down"] == k["last"] == cls  # 'down': stride 2 on an odd size
    assert k["point"] == "Conv2D" and k["relu_conv"] == "Conv2D"  # 1x1 and activation stay
    a, b = outputs(model, X), outputs(new, X)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))
    np.testing.assert_array_equal(np.asarray(new.get_layer("stem").square.kernel), np.asarray(model.get_layer("stem").kernel))
    if conv == "repvgg":  # identity branch where the width is kept at stride 1
        assert hasattr(new.get_layer("last"), "identity_bn") and not hasattr(new.get_layer("down"), "identity_bn")


def test_stride_two_same_on_even_size_stays():
    model = small_model(size=8)  # Keras pads 8 -> 4 asymmetrically; the blocks cannot
    new = convert(model, conv="acnet")
    assert kinds(new)["down"] == "Conv2D" and kinds(new)["stem"] == "ACBlock"


@pytest.mark.parametrize(
    "conv,reason",
    [
        (keras.layers.Conv2D(4, 1), "kernel 1x1"),
        (keras.layers.Conv2D(4, 2), "kernel 2x2"),
        (keras.layers.Conv2D(4, (3, 1)), "kernel 3x1"),
        (keras.layers.Conv2D(4, 3, strides=(1, 2)), "equal strides"),
        (keras.layers.Conv2D(4, 3, dilation_rate=2), "dilation_rate"),
        (keras.layers.Conv2D(4, 3, groups=2), "groups=2"),
        (keras.layers.Conv2D(4, 3, activation="relu"), "activation 'relu'"),
        (keras.layers.Conv2D(4, 3, strides=2, padding="same"), "asymmetrically"),
        (keras.layers.Conv2D(4, 5, strides=2, padding="valid"), None),
        (keras.layers.Conv2D(4, 3, strides=2, padding="same", name="odd"), None),
    ],
)
def test_block_refusal_names_the_reason(conv, reason):
    size = 9 if conv.name == "odd" else 8
    conv.build((None, size, size, 4))
    refusal = block_refusal(conv, (None, size, size, 4))
    assert refusal is None if reason is None else reason in refusal


def test_converted_block_equals_the_conv_for_a_valid_strided_5x5():
    i = keras.Input((11, 11, 2))
    model = keras.Model(i, keras.layers.Conv2D(3, 5, strides=2, name="c")(i))
    new = convert(model, conv="acnet")
    assert kinds(new)["c"] == "ACBlock"
    x = np.random.default_rng(2).normal(size=(2, 11, 11, 2)).astype("float32")
    np.testing.assert_allclose(outputs(new, x), outputs(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm,cls", [("ebn", "ExtendedBatchNormalization"), ("fused_bn", "FusedBatchNormalization")])
def test_norms_swapped_with_all_four_statistics(norm, cls):
    model = small_model()
    new = convert(model, norm=norm)
    assert kinds(new)["stem_bn"] == kinds(new)["down_bn"] == cls
    for name in ("stem_bn", "down_bn"):
        for a, b in zip(model.get_layer(name).weights, new.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(outputs(new, X), outputs(model, X), rtol=1e-5, atol=1e-6)


def test_ws_carries_kernel_and_bias():
    model = small_model()
    new = convert(model, conv="ws")
    assert {kinds(new)[n] for n in ("stem", "down", "point", "last", "relu_conv")} == {"WSConv2D"}
    layer = new.get_layer("relu_conv")
    assert keras.activations.serialize(layer.activation) == "relu" and layer.use_gain
    np.testing.assert_array_equal(np.asarray(layer.kernel), np.asarray(model.get_layer("relu_conv").kernel))
    np.testing.assert_array_equal(np.asarray(layer.bias), np.asarray(model.get_layer("relu_conv").bias))


def test_exclude_keeps_layers_by_path_in_nested_models():
    inner_in = keras.Input((9, 9, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(3, 3, padding="same", name="conv")(inner_in), name="inner")
    i = keras.Input((9, 9, 3))
    h = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inner(i))
    h = keras.layers.Conv2D(3, 3, padding="same", name="conv_b")(h)
    model = keras.Model(i, h)
    new = convert(model, conv="acnet", exclude="conv_b")
    assert kinds(new)["conv_a"] == "ACBlock" and kinds(new)["conv_b"] == "Conv2D"
    assert kinds(new.get_layer("inner"))["conv"] == "ACBlock"
    new = convert(model, conv="acnet", exclude=["^inner/"])
    assert kinds(new.get_layer("inner"))["conv"] == "Conv2D" and kinds(new)["conv_a"] == "ACBlock"


def test_shared_conv_becomes_one_shared_block():
    i = keras.Input((7, 7, 3))
    shared = keras.layers.Conv2D(3, 3, padding="same", name="shared")
    model = keras.Model(i, shared(shared(i)))
    new = convert(model, conv="repvgg")
    assert kinds(new)["shared"] == "RepVGGBlock" and len(new.get_layer("shared")._inbound_nodes) == 2
    x = np.random.default_rng(3).normal(size=(2, 7, 7, 3)).astype("float32")
    np.testing.assert_allclose(outputs(new, x), outputs(model, x), rtol=1e-5, atol=1e-5)


def test_converted_acnet_trains_every_branch():
    new = convert(small_model(), conv="acnet", norm="ebn")
    new.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    block = new.get_layer("stem")
    assert float(np.abs(np.asarray(block.hor_bn.gamma)).max()) == 0.0
    new.fit(X, np.arange(4) % 3, epochs=1, verbose=0)
    assert float(np.abs(np.asarray(block.hor_bn.gamma)).max()) > 0.0  # zero-initialised, not frozen


def _round_trip(model):
    plain = deploy(model)
    via_acnet = deploy(convert(model, conv="acnet"))
    classes = [type(layer).__name__ for layer in plain.layers]
    assert [type(layer).__name__ for layer in via_acnet.layers] == classes
    assert parameter_count(via_acnet) == parameter_count(plain)
    return plain, via_acnet


def test_deploy_of_converted_acnet_has_the_layers_and_parameters_of_deploy():
    model = small_model()
    plain, via_acnet = _round_trip(model)
    a, b = outputs(plain, X), outputs(via_acnet, X)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


@pytest.mark.slow
def test_round_trip_on_resnet50():
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    randomize(model)
    plain, via_acnet = _round_trip(model)
    x = np.random.default_rng(4).normal(size=(2, 64, 64, 3)).astype("float32")
    a, b = outputs(plain, x), outputs(via_acnet, x)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


def test_bad_input():
    class Sub(keras.Model):
        def call(self, x):
            return x

    model = small_model()
    with pytest.raises(TypeError, match="subclassed Sub"):
        convert(Sub(), conv="acnet")
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        convert("model")
    with pytest.raises(ValueError, match=r"conv must be one of None, 'ws', 'acnet', 'repvgg', received 'acnett'. Did you mean 'acnet'\?"):
        convert(model, conv="acnett")
    with pytest.raises(ValueError, match="norm must be one of None, 'ebn', 'fused_bn', received 'bn'"):
        convert(model, norm="bn")
    with pytest.raises(ValueError, match=r"exclude\[1\] must be a regular expression, received '\('"):
        convert(model, exclude=["ok", "("])
    with pytest.raises(TypeError, match="exclude must be a regex string or a list"):
        convert(model, exclude=5)


def test_tenfold_models_convert_too():
    model = tenfold.models.small_resnet((9, 9, 1), 3, width=4, norm="keras_bn")
    new = convert(model, conv="acnet", norm="ebn")  # the stem conv is Conv2D; blocks stay blocks
    assert type(new.get_layer("stem_conv")).__name__ == "ACBlock"
    assert type(new.get_layer("stem_norm")).__name__ == "ExtendedBatchNormalization"
    x = np.random.default_rng(5).normal(size=(2, 9, 9, 1)).astype("float32")
    np.testing.assert_allclose(outputs(new, x), outputs(model, x), rtol=1e-5, atol=1e-5)


_BACKEND_SCRIPT = """
import keras, numpy as np, tenfold
from tenfold.reparam import check, convert, deploy
rng = np.random.default_rng(0)
model = tenfold.models.small_resnet((9, 9, 1), 4, width=4, conv="acnet", norm="ebn")
for v in model.weights:
    if v.path.endswith(("moving_variance", "gamma")):
        v.assign(rng.uniform(0.5, 1.5, v.shape))
    elif v.path.endswith(("moving_mean", "beta")):
        v.assign(rng.normal(scale=0.3, size=v.shape))
facts = check(model, deploy(model), rng.normal(size=(4, 9, 9, 1)).astype("float32"))
assert facts["max_relative_difference"] < 1e-5 and facts["bn_remaining"] == 0, facts
i = keras.Input((9, 9, 3))
h = keras.layers.BatchNormalization()(keras.layers.DepthwiseConv2D(3)(i))
plain = keras.Model(i, keras.layers.Conv2D(4, 3, padding="same")(h + 1.0)[:, 0])
x = rng.normal(size=(2, 9, 9, 3)).astype("float32")
converted = convert(plain, conv="repvgg", norm="ebn")
assert np.abs(converted.predict(x, verbose=0) - plain.predict(x, verbose=0)).max() < 1e-5
assert check(plain, deploy(converted), x)["max_relative_difference"] < 1e-5
print("ok", keras.backend.backend())
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_deploy_and_convert_on_other_backends(backend):
    import os
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"ok {backend}" in proc.stdout

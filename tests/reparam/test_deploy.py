"""tenfold.reparam.deploy on any functional graph: folds, plain-Keras result, check()."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tenfold
from tenfold.reparam import (
    check,
    count_norms,
    deploy,
    effective_weights,
    fused_counterpart,
    max_difference,
    parameter_count,
)
from tenfold.reparam.fusion import producer_weights
from tenfold.testing import randomize_norms as randomize


def relative_difference(a, b, x):
    return check(a, b, x)["max_relative_difference"]


def is_plain_keras(model, *, strict=True):
    """Every layer, nested ones included, is a class that keras.layers (or keras.Model) exports.

    ``strict=False``: a class of the keras package (ConvNeXt's own ``LayerScale``).
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        cls = type(layer)
        if isinstance(layer, keras.Model) or not strict:
            if cls.__module__.split(".")[0] != "keras":
                return False
        elif getattr(keras.layers, cls.__name__, None) is not cls:
            return False
    return "tenfold" not in json.dumps(model.get_config(), default=str)


def foldable_left(model):
    """Norm layers whose input still comes straight from a conv/dense-like layer."""
    from tenfold.reparam.fusion import is_norm, is_producer

    left = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if is_norm(layer):
            for node in layer._inbound_nodes:
                source = node.input_tensors[0]._keras_history.operation
                if is_producer(source):
                    left.append(layer.name)
    return left


def test_minimal_ops_node_case():
    """The issue's minimal failing case: `x + y` is an operation node, not a layer."""
    i = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(3, 1)(i)
    model = keras.Model(i, h + i)
    fused = deploy(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(fused.predict(x, verbose=0), model.predict(x, verbose=0))
    assert is_plain_keras(fused)
    assert fused.get_layer(model.layers[1].name) is not model.layers[1]  # a copy, not the original


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
    outputs = keras.layers.BatchNormalization(name="dense_bn")(x)  # Dense -> BN folds
    model = keras.Model(inputs, outputs)
    randomize(model)
    fused = deploy(model)
    names = {layer.name: type(layer).__name__ for layer in fused.layers}
    assert "a_bn" not in names and "dense_bn" not in names and fused.get_layer("a").use_bias
    assert names["b_bn"] == names["d_bn"] == "BatchNormalization"
    np.testing.assert_array_equal(np.asarray(fused.get_layer("c").kernel), np.asarray(model.get_layer("c").kernel))
    xs = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    facts = check(model, fused, xs)
    assert facts["max_relative_difference"] < 1e-5
    assert (facts["bn_total"], facts["bn_folded"], facts["bn_remaining"]) == (4, 2, 2)
    assert type(model.get_layer("a_bn")).__name__ == "BatchNormalization"  # the original is untouched


def _producers():
    L = keras.layers
    return {
        "conv1d": ((10, 3), L.Conv1D(4, 3, use_bias=False)),
        "conv2d": ((6, 6, 3), L.Conv2D(4, 3, strides=2, padding="same")),
        "conv2d_groups": ((6, 6, 4), L.Conv2D(4, 3, groups=2)),
        "conv2d_channels_first": ((3, 6, 6), L.Conv2D(4, 3, data_format="channels_first")),
        "conv3d": ((4, 4, 4, 2), L.Conv3D(3, 2)),
        "depthwise1d": ((10, 3), L.DepthwiseConv1D(3, depth_multiplier=2)),
        "depthwise2d": ((6, 6, 3), L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)),
        "separable1d": ((10, 3), L.SeparableConv1D(4, 3, depth_multiplier=2)),
        "separable2d": ((6, 6, 3), L.SeparableConv2D(4, 3)),
        "dense": ((5,), L.Dense(4)),
        "dense_3d": ((7, 5), L.Dense(4, use_bias=False)),
        "wsconv1d": ((10, 3), tenfold.layers.WSConv1D(4, 3)),
        "wsconv2d": ((6, 6, 3), tenfold.layers.WSConv2D(4, 3, use_bias=False)),
        "wsdense": ((5,), tenfold.layers.WSDense(4)),
        "acblock": ((8, 8, 3), tenfold.layers.ACBlock(4, strides=2)),
        "repvgg": ((7, 7, 4), tenfold.layers.RepVGGBlock(4)),
    }


def _channels_first_conv_runs_here():
    from tenfold.precision.kernels import onednn_enabled

    return keras.backend.backend() != "tensorflow" or onednn_enabled()


NORMS = {
    "bn": lambda axis: keras.layers.BatchNormalization(axis=axis, epsilon=0.01),
    "fused_bn": lambda axis: tenfold.layers.FusedBatchNormalization(axis=axis),
    "ebn": lambda axis: tenfold.layers.ExtendedBatchNormalization(axis=axis, variance_groups=1),
}


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("kind", sorted(_producers()))
def test_every_producer_folds_every_norm(kind, norm):
    if "channels_first" in kind and not _channels_first_conv_runs_here():
        # TensorFlow's CPU Conv2D takes channels_first only with oneDNN, off by default on
        # CPUs without AVX-512: this case runs in a process with it on (forward passes only,
        # which oneDNN's wrong strided 1x1 gradients do not touch: tenfold.precision.kernels)
        test_id = f"{__file__}::test_every_producer_folds_every_norm[{kind}-{norm}]"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_id],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:]
        return
    shape, layer = _producers()[kind]
    axis = 1 if "channels_first" in kind else -1
    inputs = keras.Input(shape)
    model = keras.Model(inputs, NORMS[norm](axis)(layer(inputs)))
    randomize(model, seed=len(kind))
    fused = deploy(model)
    assert count_norms(fused) == 0 and len(fused.layers) <= 3  # input, (padding,) the producer
    assert is_plain_keras(fused)
    xs = np.random.default_rng(1).normal(size=(3, *shape)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_depthwise_fold_matches_numpy_reference():
    """Output channel c·multiplier + m of a depthwise conv gets scale s[c·multiplier + m]."""
    conv = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
    conv.build((None, 6, 6, 3))
    bn = keras.layers.BatchNormalization(epsilon=0.1)
    bn.build((None, 4, 4, 6))
    rng = np.random.default_rng(0)
    for v in (conv.bias, bn.moving_mean, bn.beta):
        v.assign(rng.normal(size=v.shape))
    for v in (bn.moving_variance, bn.gamma):
        v.assign(rng.uniform(0.5, 2.0, v.shape))
    kernel, bias = producer_weights(conv, bn)
    s = np.asarray(bn.gamma, np.float64) / np.sqrt(np.asarray(bn.moving_variance, np.float64) + 0.1)
    w = np.asarray(conv.kernel, np.float64)
    expected = np.empty_like(w)
    for c in range(3):
        for m in range(2):
            expected[:, :, c, m] = w[:, :, c, m] * s[c * 2 + m]
    np.testing.assert_allclose(kernel, expected, rtol=1e-6)
    b = (np.asarray(conv.bias, np.float64) - np.asarray(bn.moving_mean, np.float64)) * s + np.asarray(bn.beta)
    np.testing.assert_allclose(bias, b, rtol=1e-6)


def test_nested_models_sequential_and_shared_layers():
    inner = keras.Sequential(
        [keras.Input((8, 8, 4)), tenfold.layers.ACBlock(4), keras.layers.BatchNormalization(), keras.layers.ReLU()],
        name="inner",
    )
    block_in = keras.Input((8, 8, 4))
    block = keras.Model(block_in, keras.layers.Conv2D(4, 3, padding="same")(block_in) + block_in, name="block")
    shared = keras.layers.Conv2D(4, 1, name="shared")
    inputs = keras.Input((8, 8, 3))
    x = tenfold.layers.RepVGGBlock(4, name="rep")(inputs)
    x = inner(x)
    x = block(block(x))  # a nested functional model, called twice
    y = keras.layers.BatchNormalization(name="after_shared")(shared(x))  # shared: not folded
    y = shared(y)
    x = keras.layers.Flatten()(y)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    randomize(model, seed=1)
    fused = deploy(model)
    assert type(fused.get_layer("rep")) is keras.layers.Conv2D
    fused_inner = fused.get_layer("inner")
    assert [type(layer).__name__ for layer in fused_inner.layers] == ["InputLayer", "Conv2D", "ReLU"]
    assert len(fused.get_layer("block")._inbound_nodes) == 2 and len(fused.get_layer("shared")._inbound_nodes) == 2
    assert type(fused.get_layer("after_shared")) is keras.layers.BatchNormalization
    assert is_plain_keras(fused)
    xs = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5
    assert parameter_count(fused) < parameter_count(model)


def test_several_inputs_and_outputs_in_a_dict():
    image = keras.Input((6, 6, 2), name="image")
    scalar = keras.Input((1,), name="scalar")
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(3, 3)(image))
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(2)(keras.layers.Concatenate()([pooled, scalar]))
    model = keras.Model({"image": image, "scalar": scalar}, {"logits": logits, "features": pooled[:, 1:]})
    randomize(model, seed=5)
    fused = deploy(model)
    assert list(fused.output) == ["logits", "features"] and set(fused.input) == {"image", "scalar"}
    rng = np.random.default_rng(5)
    xs = {"image": rng.normal(size=(4, 6, 6, 2)).astype("float32"), "scalar": rng.normal(size=(4, 1)).astype("float32")}
    facts = check(model, fused, xs)
    assert facts["max_relative_difference"] < 1e-5 and facts["bn_remaining"] == 0


@pytest.mark.parametrize("conv", ["plain", "ws", "acnet", "repvgg"])
@pytest.mark.parametrize("norm", ["bn", "ebn", "keras_bn"])
def test_small_resnet_switches_deploy_to_plain_keras(conv, norm):
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv=conv, norm=norm)
    randomize(model, seed=2)
    fused = deploy(model)
    assert count_norms(fused) == 0 and is_plain_keras(fused)
    assert type(fused.get_layer("stage2_block1")) is keras.layers.Activation  # the block's output
    xs = np.random.default_rng(2).normal(size=(8, 8, 8, 1)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_group_norm_switch_stays_as_keras_group_norm():
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, norm="gn")
    fused = deploy(model)
    assert is_plain_keras(fused)
    assert any(isinstance(layer, keras.layers.GroupNormalization) for layer in fused.layers)
    xs = np.random.default_rng(2).normal(size=(4, 8, 8, 1)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_nf_resnet_and_normed_dense_deploy_to_plain_keras():
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="ws", norm="none")
    randomize(model, seed=3)
    inputs = keras.Input((8, 8, 1))
    features = keras.Model(model.input, model.get_layer("pool").output)(inputs)
    head = keras.Model(inputs, tenfold.layers.NormedDense(4, name="cosine")(features))
    xs = np.random.default_rng(3).normal(size=(4, 8, 8, 1)).astype("float32")
    for m in (model, head):
        fused = deploy(m)
        assert is_plain_keras(fused)
        assert relative_difference(m, fused, xs) < 1e-5


def test_previously_fused_tenfold_forms_deploy_too():
    """A model holding fused=True residual blocks and deploy=True ACBlocks (older deploys)."""
    inputs = keras.Input((8, 8, 4))
    x = tenfold.models.ResidualBlock(4, conv="acnet", fused=True, name="res")(inputs)
    x = tenfold.layers.ACBlock(4, strides=2, deploy=True, name="ac")(x)
    model = keras.Model(inputs, x)
    randomize(model)
    fused = deploy(model)
    assert is_plain_keras(fused)
    xs = np.random.default_rng(4).normal(size=(2, 8, 8, 4)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_mixed_precision_model_deploys_in_float32_and_checks_in_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="acnet")
    keras.config.set_dtype_policy("float32")
    randomize(model, seed=6)
    fused = deploy(model)
    assert {layer.dtype_policy.name for layer in fused.layers} == {"float32"}
    xs = np.random.default_rng(6).normal(size=(16, 8, 8, 1)).astype("float32")
    facts = check(model, fused, xs)
    assert facts["max_relative_difference"] < 1e-5 and facts["predictions_changed"] == 0
    assert facts["predictions_compared"] == 16
    # the bfloat16 original itself is further away: that is what check() avoids measuring
    assert max_difference(model, fused, xs) > 10 * facts["max_abs_difference"]
    bf16 = deploy(model, dtype="mixed_bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in bf16.layers}
    assert policies["classifier"] == "float32" and policies["stem_conv"] == "mixed_bfloat16"


def test_compiled_model_deploys_uncompiled_without_tenfold_objects():
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="repvgg", norm="ebn")
    model.compile("adam", tenfold.losses.BalancedSoftmaxLoss([5, 3, 2, 1]))
    fused = deploy(model)
    assert model.compiled and not fused.compiled and not fused.get_compile_config()
    assert is_plain_keras(fused)


def _loads_with_keras_alone(tmp_path, model, xs):
    """Save ``deploy(model)``, load and predict it in a fresh process that imports only keras
    (neither tenfold nor keras_hub); its outputs match ``model``'s to float32 round-off."""
    fused = deploy(model)
    fused.save(tmp_path / "fused.keras")
    np.save(tmp_path / "x.npy", xs)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        model = keras.saving.load_model({str(tmp_path / "fused.keras")!r}, safe_mode=True)
        np.save({str(tmp_path / "y.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        loaded = [name for name in sys.modules if name.startswith(("tenfold", "keras_hub"))]
        assert not loaded, f"imported {{loaded[:3]}}"
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    y = np.load(tmp_path / "y.npy")
    reference = model.predict(xs, verbose=0)
    assert np.max(np.abs(y - reference)) <= 1e-5 * np.max(np.abs(reference))


def test_deployed_model_loads_in_a_fresh_process_with_keras_alone(tmp_path):
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, conv="acnet", norm="ebn")
    randomize(model, seed=7)
    _loads_with_keras_alone(tmp_path, model, np.random.default_rng(7).normal(size=(4, 8, 8, 1)).astype("float32"))


def test_deployed_application_loads_in_a_fresh_process_with_keras_alone(tmp_path):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=5)
    randomize(model, seed=8)
    _loads_with_keras_alone(tmp_path, model, np.random.default_rng(8).normal(size=(2, 32, 32, 3)).astype("float32"))


def test_deployed_keras_hub_resnet_loads_without_keras_hub(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(16, 16, 3),
    )
    randomize(model, seed=12)
    _loads_with_keras_alone(tmp_path, model, np.random.default_rng(12).normal(size=(2, 16, 16, 3)).astype("float32"))


def test_recompute_wrappers_are_dropped():
    segment = keras.Sequential(
        [keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3, padding="same"), keras.layers.BatchNormalization()],
        name="segment",
    )
    inputs = keras.Input((6, 6, 3))
    x = tenfold.remat.Recompute(segment, name="recomputed")(inputs)
    x = tenfold.remat.Recompute(keras.layers.Dense(2), name="head")(x)
    model = keras.Model(inputs, x)
    randomize(model)
    fused = deploy(model)
    assert is_plain_keras(fused) and count_norms(fused) == 0
    xs = np.random.default_rng(8).normal(size=(3, 6, 6, 3)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_lambda_layers_are_kept():
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(x))
    randomize(model)
    fused = deploy(model)
    assert type(fused.get_layer("double")) is keras.layers.Lambda
    xs = np.random.default_rng(8).normal(size=(3, 4)).astype("float32")
    assert relative_difference(model, fused, xs) < 1e-5


def test_transformer_encoder_deploys_with_nothing_to_fold():
    inputs = keras.Input((16, 32))
    x = inputs
    for i in range(2):
        attention = keras.layers.MultiHeadAttention(4, 8, name=f"mha{i}")(x, x)
        x = keras.layers.LayerNormalization(name=f"ln{i}a")(x + attention)
        h = keras.layers.Dense(64, activation="gelu", name=f"ff{i}a")(x)
        x = keras.layers.LayerNormalization(name=f"ln{i}b")(x + keras.layers.Dense(32, name=f"ff{i}b")(h))
    model = keras.Model(inputs, keras.layers.Dense(5)(x[:, 0]))
    fused = deploy(model)
    assert is_plain_keras(fused) and parameter_count(fused) == parameter_count(model)
    xs = np.random.default_rng(8).normal(size=(3, 16, 32)).astype("float32")
    np.testing.assert_allclose(fused.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6, atol=1e-6)


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

    with pytest.raises(TypeError, match="subclassed Sub"):
        deploy(Sub())
    with pytest.raises(TypeError, match="keras.Model"):
        deploy(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="dtype must be a Keras dtype policy.*'float31'"):
        deploy(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), dtype="float31")
    with pytest.raises(ValueError, match="keras.Input"):
        deploy(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(TypeError, match="no fused form"):
        fused_counterpart(keras.layers.Dense(2))

    class Unknown(keras.layers.Layer):
        def call(self, x):
            return x

    Unknown.__module__ = "tenfold.layers.unknown"
    inputs = keras.Input((3,))
    with pytest.raises(TypeError, match="'mystery' of tenfold type Unknown"):
        deploy(keras.Model(inputs, Unknown(name="mystery")(inputs)))
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        check(m, m, np.ones((2, 3)), batch_size=0)


# -- keras.applications (64×64, weights=None) -----------------------------------------------


def _application(name):
    kwargs = {"classifier_activation": None}
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), **kwargs)
    randomize(model, seed=9)
    return model


@pytest.mark.parametrize(
    "name,norms",
    [
        ("MobileNetV2", 52),
        pytest.param("ResNet50", 53, marks=pytest.mark.slow),
        pytest.param("EfficientNetB0", 49, marks=pytest.mark.slow),
        pytest.param("ConvNeXtTiny", 0, marks=pytest.mark.slow),
    ],
)
def test_keras_applications_fold_every_batch_norm(name, norms):
    model = _application(name)
    fused = deploy(model)
    xs = np.random.default_rng(9).normal(size=(4, 64, 64, 3)).astype("float32")
    facts = check(model, fused, xs)
    assert (facts["bn_total"], facts["bn_folded"], facts["bn_remaining"]) == (norms, norms, 0)
    assert facts["max_relative_difference"] <= 1e-5 and facts["predictions_changed"] == 0
    assert not foldable_left(fused) and is_plain_keras(fused, strict=name != "ConvNeXtTiny")
    if name == "ConvNeXtTiny":  # LayerNormalization is not folded, and stays
        assert sum(isinstance(layer, keras.layers.LayerNormalization) for layer in fused.layers) > 0


# -- KerasHub backbones from configs (no preset, no download) --------------------------------


def test_keras_hub_bert_backbone_deploys():
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.BertBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=256,
        max_sequence_length=32,
    )
    fused = deploy(model)
    assert set(fused.input) == {"token_ids", "segment_ids", "padding_mask"}
    assert set(fused.output) == {"sequence_output", "pooled_output"}
    rng = np.random.default_rng(10)
    xs = {
        "token_ids": rng.integers(0, 100, size=(3, 32)).astype("int32"),
        "segment_ids": rng.integers(0, 2, size=(3, 32)).astype("int32"),
        "padding_mask": np.concatenate([np.ones((3, 24)), np.zeros((3, 8))], axis=1).astype("int32"),
    }
    facts = check(model, fused, xs)
    assert facts["max_relative_difference"] <= 1e-5 and facts["bn_total"] == 0
    assert is_plain_keras(fused) and "keras_hub" not in json.dumps(fused.get_config())


def test_keras_hub_resnet_backbone_deploys():
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(32, 32, 3),
    )
    randomize(model, seed=11)
    fused = deploy(model)
    xs = np.random.default_rng(11).normal(size=(2, 32, 32, 3)).astype("float32")
    facts = check(model, fused, xs)
    assert facts["bn_total"] > 0 and facts["bn_remaining"] == 0
    assert facts["max_relative_difference"] <= 1e-5

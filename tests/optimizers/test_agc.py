"""AGC wrapper: clips the gradient the inner optimizer really applies."""

import json
import os
import tempfile

import keras
import numpy as np
import pytest

from tenfold.optimizers import AGC, Adafactor, state_bytes

# every test but the IndexedSlices one is backend-neutral: also under JAX and PyTorch
ALL = pytest.mark.all_backends


def T(grads):
    """Gradients as backend tensors (Keras' PyTorch optimizers take no NumPy arrays)."""
    return [keras.ops.convert_to_tensor(g) for g in grads]


def np_agc(g, w, clipping=0.01, eps=1e-3):
    g = np.asarray(g, np.float64)
    w = np.asarray(w, np.float64)
    axes = tuple(range(g.ndim - 1)) if g.ndim > 1 else None
    wn = np.maximum(np.sqrt(np.sum(w * w, axis=axes, keepdims=True)), eps)
    gn = np.sqrt(np.sum(g * g, axis=axes, keepdims=True))
    return np.where(gn / wn > clipping, g * clipping * wn / np.where(gn > 0, gn, 1), g)


def variables(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"dense/kernel": (6, 4), "dense/bias": (4,), "conv/kernel": (3, 3, 2, 5)}
    values = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    grads = {k: (rng.normal(size=s) * 3).astype("float32") for k, s in shapes.items()}
    return values, grads


def make_vars(values):
    out = []
    for path, value in values.items():
        layer, name = path.split("/")
        with keras.name_scope(layer):
            out.append(keras.Variable(value, name=name))
    return out


@ALL
def test_sgd_step_matches_reference_and_exclude():
    values, grads = variables()
    vs = make_vars(values)
    assert vs[0].path == "dense/kernel"
    opt = AGC(keras.optimizers.SGD(0.5), clipping=0.05, exclude=[r"^conv/"])
    opt.apply(T([grads[k] for k in values]), vs)
    for var, key in zip(vs, values):
        g = grads[key] if key.startswith("conv") else np_agc(grads[key], values[key], 0.05)
        np.testing.assert_allclose(np.asarray(var), values[key] - 0.5 * g, rtol=1e-5, atol=1e-6)
    # the clip was active: dense units were far above the threshold
    assert not np.allclose(np_agc(grads["dense/kernel"], values["dense/kernel"], 0.05), grads["dense/kernel"])


@ALL
def test_axes_override():
    values, grads = variables(1)
    vs = make_vars({"conv/kernel": values["conv/kernel"]})
    opt = AGC(keras.optimizers.SGD(1.0), clipping=0.02, axes={"conv": [0, 1]})
    opt.apply(T([grads["conv/kernel"]]), vs)
    g, w = grads["conv/kernel"].astype(np.float64), values["conv/kernel"].astype(np.float64)
    wn = np.maximum(np.sqrt((w * w).sum((0, 1), keepdims=True)), 1e-3)
    gn = np.sqrt((g * g).sum((0, 1), keepdims=True))
    want = w - np.where(gn / wn > 0.02, g * 0.02 * wn / gn, g)
    np.testing.assert_allclose(np.asarray(vs[0]), want, rtol=1e-5, atol=1e-6)


@ALL
def test_clips_after_loss_scale_unscaling():
    values, grads = variables(2)
    plain_vars, scaled_vars = make_vars(values), make_vars(values)
    plain = AGC(keras.optimizers.SGD(0.5), clipping=0.05)
    scaled = keras.optimizers.LossScaleOptimizer(AGC(keras.optimizers.SGD(0.5), clipping=0.05))
    s = float(scaled.initial_scale)
    plain.apply(T([grads[k] for k in values]), plain_vars)
    scaled_grads = T([grads[k] * s for k in values])
    if keras.backend.backend() == "jax":
        # Keras' LossScaleOptimizer.apply cannot run eagerly on JAX (its lax.cond traces the
        # stateful branch, with plain SGD too); fit takes stateless_apply, as here
        scaled.build(scaled_vars)
        new_vars, _ = scaled.stateless_apply([x.value for x in scaled.variables], scaled_grads,
                                             [x.value for x in scaled_vars])
        for var, value in zip(scaled_vars, new_vars):
            var.assign(value)
    else:
        scaled.apply(scaled_grads, scaled_vars)
    for a, b in zip(plain_vars, scaled_vars):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


@ALL
def test_clips_the_accumulated_gradient():
    values, grads = variables(3)
    _, grads2 = variables(4)
    vs = make_vars(values)
    opt = AGC(keras.optimizers.SGD(0.5, gradient_accumulation_steps=2), clipping=0.05)
    opt.apply(T([grads[k] for k in values]), vs)
    opt.apply(T([grads2[k] for k in values]), vs)
    for var, key in zip(vs, values):
        mean = (grads[key].astype(np.float64) + grads2[key]) / 2
        np.testing.assert_allclose(np.asarray(var), values[key] - 0.5 * np_agc(mean, values[key], 0.05),
                                   rtol=1e-5, atol=1e-6)


@ALL
def test_wraps_adafactor_and_counts_state():
    values, grads = variables(5)
    vs = make_vars(values)
    inner = Adafactor(min_dim_size_to_factor=2)
    opt = AGC(inner)
    opt.apply(T([grads[k] for k in values]), vs)
    # the wrapper's own step (int64 on TensorFlow, int32 on JAX and PyTorch) and lr (float32)
    step_bytes = np.dtype(keras.backend.standardize_dtype(opt._variables[0].dtype)).itemsize
    assert state_bytes(opt) == state_bytes(inner) + step_bytes + 4
    assert int(opt.iterations) == 1


def test_sparse_gradient_is_clipped_like_dense():
    import tensorflow as tf  # IndexedSlices are TensorFlow's (not marked ALL)

    rng = np.random.default_rng(6)
    w = rng.normal(size=(8, 3)).astype("float32")
    rows = tf.constant([1, 5, 1], tf.int64)
    vals = tf.constant(rng.normal(size=(3, 3)) * 5, tf.float32)
    sparse = tf.IndexedSlices(vals, rows, tf.constant([8, 3], tf.int64))
    results = []
    for grad in (sparse, tf.convert_to_tensor(sparse)):
        var = keras.Variable(w)
        opt = AGC(keras.optimizers.SGD(1.0), clipping=0.05)
        opt.apply([grad], [var])
        results.append(np.asarray(var))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


@ALL
def test_fit_save_and_reload_keeps_wrapper():
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8, name="hidden"), keras.layers.Dense(3, name="classifier"),
    ])
    model.compile(AGC(keras.optimizers.SGD(0.1, momentum=0.9), clipping=0.02, exclude=["classifier"]),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(7).normal(size=(16, 4)).astype("float32")
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    opt = loaded.optimizer
    assert isinstance(opt, AGC) and isinstance(opt.inner_optimizer, keras.optimizers.SGD)
    assert opt.exclude == ["classifier"] and opt.clipping == 0.02
    for a, b in zip(model.optimizer.variables, opt.variables):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a))
    assert int(opt.iterations) == 2


@ALL
@pytest.mark.parametrize(
    "kwargs,exc,text",
    [
        (dict(clipping=0.0), ValueError, "clipping must be a number > 0, received 0.0"),
        (dict(clipping=-0.1), ValueError, "clipping"),
        (dict(clipping=float("nan")), ValueError, "clipping must be a finite number"),
        (dict(clipping="0.1"), TypeError, "clipping"),
        (dict(epsilon=0.0), ValueError, "epsilon must be a number > 0"),
        (dict(epsilon=-1.0), ValueError, "epsilon"),
        (dict(epsilon=float("inf")), ValueError, "epsilon must be a finite number"),
        (dict(exclude=5), TypeError, "exclude must be 'auto', None"),
        (dict(exclude=["ok", 3]), TypeError, r"exclude\[1\] must be a string"),
        (dict(exclude=["(unclosed"]), ValueError, "regular expression"),
        (dict(exclude=[""]), ValueError, "exclude"),
        (dict(axes=[0, 1]), TypeError, "axes must be None or a dict"),
        (dict(axes={"conv": "0"}), TypeError, "axes"),
        (dict(axes={"conv": [0, 0]}), ValueError, "must not repeat an axis"),
        (dict(axes={"conv": 1.5}), ValueError, "axes"),
        (dict(axes={"(": [0]}), ValueError, "regular expression"),
        (dict(unit_axes={"a/kernel": "x"}), TypeError, "unit_axes"),
        (dict(weight_decay=0.1), ValueError, "inner optimizer"),
        (dict(momentum=0.9), ValueError, "unknown arguments: momentum"),
    ],
)
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        AGC(keras.optimizers.SGD(0.1), **kwargs)


@ALL
def test_bad_inner_and_two_wrappers_of_one_optimizer():
    with pytest.raises(TypeError, match="inner_optimizer"):
        AGC(3)
    with pytest.raises(ValueError, match="inner_optimizer must be a keras.optimizers.Optimizer, its name"):
        AGC("no-such-optimizer")
    assert isinstance(AGC("adam").inner_optimizer, keras.optimizers.Adam)
    # two AGCs around one optimizer: each clips with its own threshold when it applies
    values, grads = variables(10)
    inner = keras.optimizers.SGD(0.5)
    loose, tight = AGC(inner, clipping=0.5, exclude=None), AGC(inner, clipping=0.02, exclude=None)
    vs = make_vars(values)  # one optimizer: one set of variables
    for opt, clipping in ((loose, 0.5), (tight, 0.02)):
        for var, key in zip(vs, values):
            var.assign(values[key])
        opt.apply(T([grads[k] for k in values]), vs)
        key = "dense/kernel"
        want = values[key] - 0.5 * np_agc(grads[key], values[key], clipping)
        np.testing.assert_allclose(np.asarray(vs[0]), want, rtol=1e-5, atol=1e-6)


@ALL
def test_inner_optimizer_alone_refuses_instead_of_not_clipping():
    inner = keras.optimizers.SGD(0.1)
    AGC(inner)
    var = keras.Variable(np.ones((3, 2), "float32"))
    with pytest.raises(RuntimeError, match="applied outside AGC.apply"):
        inner.apply([np.ones((3, 2), "float32")], [var])


# -- axes overrides: checked when the optimizer is built ------------------------------------


def mobilenet_like():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1, name="expand")(inputs)
    x = keras.layers.DepthwiseConv2D(3, name="block_1_depthwise")(x)
    x = keras.layers.BatchNormalization(name="block_1_depthwise_BN")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax")(x))


@ALL
def test_axes_override_that_does_not_fit_a_matched_variable_names_it_at_build():
    model = mobilenet_like()
    opt = AGC(keras.optimizers.SGD(0.1), axes={"depthwise": [0, 1]})
    message = r"axes\[.depthwise.\] = \[0, 1\] does not fit the variable .block_1_depthwise/bias. of shape \(4,\)"
    with pytest.raises(ValueError, match=message):
        opt.build(model.trainable_variables)
    # anchored to the kernel it fits, and applied
    opt = AGC(keras.optimizers.SGD(0.1), axes={r"depthwise/kernel$": [0, 1, 2]})
    opt.build(model.trainable_variables)
    assert opt.variable_axes()["block_1_depthwise/kernel"] == [0, 1, 2]


@ALL
def test_axes_pattern_that_matches_nothing_is_an_error():
    model = mobilenet_like()
    opt = AGC(keras.optimizers.SGD(0.1), axes={"_dwconv": [0, 1]})
    with pytest.raises(ValueError, match=r"axes: the pattern '_dwconv' matches no variable of the 8"):
        opt.build(model.trainable_variables)


# -- units by layer type and exclude="auto" from the model ------------------------------------


@ALL
def test_for_model_units_by_layer_type_and_classifier():
    model = mobilenet_like()
    opt = AGC(keras.optimizers.SGD(0.1)).for_model(model)
    assert list(opt.exclude) == [r"^predictions/kernel$", r"^predictions/bias$"]
    assert dict(opt.unit_axes) == {"block_1_depthwise/kernel": [0, 1]}  # only what the rank rule misses
    opt.build(model.trainable_variables)
    axes = opt.variable_axes()
    assert axes["expand/kernel"] == [0, 1, 2] and axes["block_1_depthwise/kernel"] == [0, 1]
    assert axes["block_1_depthwise_BN/gamma"] == [0]
    assert opt.excluded_variables() == ["predictions/kernel", "predictions/bias"]
    # the resolved config is plain JSON and rebuilds the same rules without the model
    again = AGC.from_config(json.loads(json.dumps(opt.get_config())))
    again.build(model.trainable_variables)
    assert again.variable_axes() == axes and again.excluded_variables() == opt.excluded_variables()


@ALL
def test_units_of_attention_embedding_separable_and_transpose_layers():
    tokens = keras.Input((6,), dtype="int32")
    e = keras.layers.Embedding(11, 8, name="emb")(tokens)
    a = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(e, e)
    d = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d", name="ein")(a)
    image = keras.Input((6, 6, 2))
    s = keras.layers.SeparableConv2D(3, 3, depth_multiplier=2, name="sep")(image)
    t = keras.layers.Conv2DTranspose(4, 3, name="up")(s)
    out = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(d),
                                      keras.layers.GlobalAveragePooling2D()(t)])
    model = keras.Model([tokens, image], keras.layers.Dense(2, name="head")(out))
    axes = AGC.model_unit_axes(model)
    assert axes["emb/embeddings"] == [1]  # per row
    assert axes["mha/query/kernel"] == [0]  # (model dim, heads, head dim): per head and unit
    assert axes["mha/query/bias"] == [0, 1]  # a bias is one whole tensor
    assert axes["mha/attention_output/kernel"] == [0, 1]  # (heads, head dim, model dim)
    assert axes["ein/kernel"] == [0]
    assert axes["sep/depthwise_kernel"] == [0, 1] and axes["sep/pointwise_kernel"] == [0, 1, 2]
    assert axes["up/kernel"] == [0, 1, 3]  # (h, w, out, in): per output channel
    assert AGC.classifier_patterns(model) == [r"^head/kernel$", r"^head/bias$"]


@ALL
def test_classifier_patterns_walk_weightless_layers_and_nested_models():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="body"),
                              keras.layers.Dense(3, name="logits")], name="trunk")
    inputs = keras.Input((4,))
    y = keras.layers.Dropout(0.1)(inner(inputs))
    model = keras.Model(inputs, [keras.layers.Softmax()(y), keras.layers.Dense(1, name="aux")(y)])
    assert AGC.classifier_patterns(model) == [
        r"^trunk/logits/kernel$", r"^trunk/logits/bias$", r"^aux/kernel$", r"^aux/bias$"]
    conv_head = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, name="seg")])
    assert AGC.classifier_patterns(conv_head) == []
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        AGC.classifier_patterns("model")


@ALL
def test_auto_without_the_model_leaves_out_a_dense_last_layer_only():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(3, name="out")], name="mlp")
    opt = AGC(keras.optimizers.SGD(0.1))
    opt.build(model.trainable_variables)
    assert opt.excluded_variables() == ["mlp/out/kernel", "mlp/out/bias"]
    conv = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3)])
    opt = AGC(keras.optimizers.SGD(0.1))
    opt.build(conv.trainable_variables)
    assert opt.excluded_variables() == []
    # "auto" next to regexes; None clips everything
    opt = AGC(keras.optimizers.SGD(0.1), exclude=["auto", "hidden/bias"]).for_model(model)
    opt.build(model.trainable_variables)
    assert opt.excluded_variables() == ["mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"]
    opt = AGC(keras.optimizers.SGD(0.1), exclude=None)
    opt.build(model.trainable_variables)
    assert opt.excluded_variables() == []


@ALL
def test_for_model_inside_compile_fit_save_and_load():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x))
    model.compile(AGC(keras.optimizers.SGD(0.1), clipping=0.01).for_model(model),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_train = np.random.default_rng(8).normal(size=(8, 6, 6, 2)).astype("float32")
    model.fit(x_train, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    assert model.optimizer.variable_axes()["dw/kernel"] == [0, 1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.optimizer.variable_axes() == model.optimizer.variable_axes()
    assert loaded.optimizer.excluded_variables() == ["classifier/kernel", "classifier/bias"]


@ALL
def test_clip_runs_where_keras_clips_so_any_update_method_sees_it():
    # an optimizer that updates through its own parallel method, as Keras' torch optimizers do
    class Parallel(keras.optimizers.SGD):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            for g, var in zip(grads, trainable_variables):
                var.assign_sub(g * learning_rate)

    values, grads = variables(9)
    vs = make_vars(values)
    AGC(Parallel(0.5), clipping=0.05, exclude=None).apply(T([grads[k] for k in values]), vs)
    for var, key in zip(vs, values):
        want = values[key] - 0.5 * np_agc(grads[key], values[key], 0.05)
        np.testing.assert_allclose(np.asarray(var), want, rtol=1e-5, atol=1e-6)


@ALL
@pytest.mark.parametrize(
    "name,kwargs,head,depthwise",
    [("MobileNetV2", dict(alpha=0.35), "predictions", "expanded_conv_depthwise/kernel"),
     ("EfficientNetB0", {}, "predictions", "block1a_dwconv/kernel"),
     # ConvNeXt's depthwise conv is a grouped Conv2D (7, 7, 1, C): all axes but the last
     ("ConvNeXtTiny", {}, "convnext_tiny_head_dense", None)],
)
def test_keras_applications_classifier_and_depthwise_units(name, kwargs, head, depthwise):
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10, **kwargs)
    opt = AGC(keras.optimizers.SGD(0.1)).for_model(model)
    opt.build(model.trainable_variables)
    assert opt.excluded_variables() == [f"{head}/kernel", f"{head}/bias"]
    axes = opt.variable_axes()
    if depthwise:
        assert axes[depthwise] == [0, 1]
    assert all(a == [0] for p, a in axes.items() if p.endswith(("/gamma", "/beta", "/bias")))
    # without the model, "auto" finds the same head (the last, dense, layer)
    fallback = AGC(keras.optimizers.SGD(0.1))
    fallback.build(model.trainable_variables)
    assert fallback.excluded_variables() == opt.excluded_variables()


@ALL
def test_for_model_needs_a_built_model():
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="has no trainable weights yet: build it first"):
        AGC(keras.optimizers.SGD(0.1)).for_model(unbuilt)
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        AGC(keras.optimizers.SGD(0.1)).for_model([1])

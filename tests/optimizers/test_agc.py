"""AGC wrapper: clips the gradient the inner optimizer really applies."""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from tenfold.optimizers import AGC, Adafactor, state_bytes


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


def test_sgd_step_matches_reference_and_exclude():
    values, grads = variables()
    vs = make_vars(values)
    assert vs[0].path == "dense/kernel"
    opt = AGC(keras.optimizers.SGD(0.5), clipping=0.05, exclude=[r"^conv/"])
    opt.apply([grads[k] for k in values], vs)
    for var, key in zip(vs, values):
        g = grads[key] if key.startswith("conv") else np_agc(grads[key], values[key], 0.05)
        np.testing.assert_allclose(np.asarray(var), values[key] - 0.5 * g, rtol=1e-5, atol=1e-6)
    # the clip was active: dense units were far above the threshold
    assert not np.allclose(np_agc(grads["dense/kernel"], values["dense/kernel"], 0.05), grads["dense/kernel"])


def test_axes_override():
    values, grads = variables(1)
    vs = make_vars({"conv/kernel": values["conv/kernel"]})
    opt = AGC(keras.optimizers.SGD(1.0), clipping=0.02, axes={"conv": [0, 1]})
    opt.apply([grads["conv/kernel"]], vs)
    g, w = grads["conv/kernel"].astype(np.float64), values["conv/kernel"].astype(np.float64)
    wn = np.maximum(np.sqrt((w * w).sum((0, 1), keepdims=True)), 1e-3)
    gn = np.sqrt((g * g).sum((0, 1), keepdims=True))
    want = w - np.where(gn / wn > 0.02, g * 0.02 * wn / gn, g)
    np.testing.assert_allclose(np.asarray(vs[0]), want, rtol=1e-5, atol=1e-6)


def test_clips_after_loss_scale_unscaling():
    values, grads = variables(2)
    plain_vars, scaled_vars = make_vars(values), make_vars(values)
    plain = AGC(keras.optimizers.SGD(0.5), clipping=0.05)
    scaled = keras.optimizers.LossScaleOptimizer(AGC(keras.optimizers.SGD(0.5), clipping=0.05))
    s = float(scaled.initial_scale)
    plain.apply([grads[k] for k in values], plain_vars)
    scaled.apply([grads[k] * s for k in values], scaled_vars)
    for a, b in zip(plain_vars, scaled_vars):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_clips_the_accumulated_gradient():
    values, grads = variables(3)
    _, grads2 = variables(4)
    vs = make_vars(values)
    opt = AGC(keras.optimizers.SGD(0.5, gradient_accumulation_steps=2), clipping=0.05)
    opt.apply([grads[k] for k in values], vs)
    opt.apply([grads2[k] for k in values], vs)
    for var, key in zip(vs, values):
        mean = (grads[key].astype(np.float64) + grads2[key]) / 2
        np.testing.assert_allclose(np.asarray(var), values[key] - 0.5 * np_agc(mean, values[key], 0.05),
                                   rtol=1e-5, atol=1e-6)


def test_wraps_adafactor_and_counts_state():
    values, grads = variables(5)
    vs = make_vars(values)
    inner = Adafactor(min_dim_size_to_factor=2)
    opt = AGC(inner)
    opt.apply([grads[k] for k in values], vs)
    assert state_bytes(opt) == state_bytes(inner) + 8 + 4  # the wrapper's own step and lr
    assert int(opt.iterations) == 1


def test_sparse_gradient_is_clipped_like_dense():
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


@pytest.mark.parametrize(
    "kwargs,exc,text",
    [
        (dict(clipping=0.0), ValueError, "clipping"),
        (dict(clipping=-0.1), ValueError, "clipping"),
        (dict(epsilon=-1.0), ValueError, "epsilon"),
        (dict(exclude=5), TypeError, "exclude"),
        (dict(exclude=["ok", 3]), TypeError, "exclude"),
        (dict(exclude=["(unclosed"]), ValueError, "regular expression"),
        (dict(axes=[0, 1]), TypeError, "axes"),
        (dict(axes={"conv": "0"}), TypeError, "axes"),
        (dict(weight_decay=0.1), ValueError, "inner optimizer"),
    ],
)
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        AGC(keras.optimizers.SGD(0.1), **kwargs)


def test_bad_inner_and_double_wrap():
    with pytest.raises(TypeError, match="inner_optimizer"):
        AGC(3)
    inner = keras.optimizers.SGD(0.1)
    AGC(inner)
    with pytest.raises(ValueError, match="already wrapped"):
        AGC(inner)
    assert isinstance(AGC("adam").inner_optimizer, keras.optimizers.Adam)

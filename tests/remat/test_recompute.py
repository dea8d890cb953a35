"""tenfold.remat.Recompute gives the plain layer's gradients, replays randomness and updates
BatchNormalization once (eager, graph mode and XLA)."""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.remat import Recompute, apply


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _grads(layer, inner, x, mode, training=True):
    """Gradient of sum(y²) w.r.t. x and ``inner``'s trainable variables; restores state."""
    saved = [v.numpy() for v in inner.variables]

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
        return tape.gradient(loss, [x] + [v.value for v in inner.trainable_variables])

    if mode == "graph":
        step = tf.function(step)
    elif mode == "xla":
        step = tf.function(step, jit_compile=True)
    grads = [g.numpy() for g in step(tf.constant(x))]
    after = [v.numpy() for v in inner.variables]
    for v, value in zip(inner.variables, saved):
        v.assign(value)
    return grads, after


def _dense_segment():
    return keras.Sequential([
        keras.layers.Dense(12, activation="tanh"), keras.layers.Dense(7, activation="relu"),
        keras.layers.Dense(5),
    ])


def _dropout_segment():
    return keras.Sequential([
        keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.5, seed=3),
        keras.layers.Dense(5),
    ])


def _bn_segment():
    return keras.Sequential([
        keras.layers.Dense(16), keras.layers.BatchNormalization(momentum=0.5),
        keras.layers.Activation("relu"), keras.layers.Dense(5),
    ])


def _conv_segment():
    return keras.Sequential([
        tenfold.models.ResidualBlock(4, strides=2),
    ])


SEGMENTS = {
    "dense": (_dense_segment, (8, 6)),
    "dropout": (_dropout_segment, (8, 6)),
    "batchnorm": (_bn_segment, (8, 6)),
    "conv": (_conv_segment, (2, 8, 8, 3)),
}


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("kind", sorted(SEGMENTS))
def test_gradients_and_state_equal_the_plain_layer(kind, mode):
    make, shape = SEGMENTS[kind]
    keras.utils.set_random_seed(1)
    inner = make()
    inner.build(shape)
    wrapped = Recompute(inner)
    x = _x(shape)
    plain, plain_state = _grads(inner, inner, x, mode)
    recomputed, recomputed_state = _grads(wrapped, inner, x, mode)
    assert len(plain) == len(recomputed)
    for a, b in zip(plain, recomputed):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * (1 + np.abs(a).max()))
    # seed-generator states and moving statistics: advanced exactly once, as without remat
    for a, b in zip(plain_state, recomputed_state):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_gradient_matches_float64_numpy_backprop():
    # y = W2ᵀ relu(W1ᵀ x + b1) + b2, loss = Σ y²; backprop written out in NumPy float64
    keras.utils.set_random_seed(2)
    inner = keras.Sequential([keras.layers.Dense(9, activation="relu"), keras.layers.Dense(4)])
    inner.build((5, 3))
    x = _x((5, 3), seed=3)
    grads, _ = _grads(Recompute(inner), inner, x, "graph")
    w1, b1, w2, b2 = (np.asarray(v, "float64") for v in inner.trainable_variables)
    x64 = x.astype("float64")
    z = x64 @ w1 + b1
    h = np.maximum(z, 0)
    y = h @ w2 + b2
    dy = 2 * y
    dw2, db2 = h.T @ dy, dy.sum(0)
    dz = (dy @ w2.T) * (z > 0)
    dw1, db1, dx = x64.T @ dz, dz.sum(0), dz @ w1.T
    for got, want in zip(grads, [dx, dw1, db1, dw2, db2]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_dropout_mask_is_replayed_not_redrawn():
    # the recomputation must see the same mask: the gradient of the input is zero exactly
    # where the forward mask dropped a unit, for a single Dropout layer
    layer = keras.layers.Dropout(0.5, seed=7)
    wrapped = Recompute(layer)
    x = tf.constant(np.ones((64, 32), "float32"))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = wrapped(x, training=True)
        return y, tape.gradient(y, x)

    y, dx = step(x)
    np.testing.assert_array_equal(np.asarray(dx) == 0, np.asarray(y) == 0)


def test_mask_and_training_arguments_reach_the_layer():
    inner = keras.layers.LSTM(3)
    wrapped = Recompute(inner)
    x = _x((2, 5, 4))
    mask = np.array([[True] * 5, [True, True, False, False, False]])
    np.testing.assert_allclose(
        wrapped(x, mask=mask), inner(x, mask=mask), rtol=1e-6
    )
    embed = keras.layers.Embedding(10, 4, mask_zero=True)
    tokens = keras.Input((5,), dtype="int32")
    out = keras.layers.Dense(2)(Recompute(keras.layers.LSTM(3))(embed(tokens)))
    model = keras.Model(tokens, out)
    model.compile("adam", "mse", jit_compile=False)
    model.fit(np.array([[1, 2, 3, 0, 0]] * 4), np.zeros((4, 2)), verbose=0)


def test_save_and_load_keeps_the_wrapper():
    model = apply(tenfold.models.mlp((6,), 3, hidden=(8, 8, 8, 8)), 2)
    x = _x((4, 6))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert sum(isinstance(layer, Recompute) for layer in loaded.layers) == 2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_recompute_rejects_a_non_layer():
    with pytest.raises(TypeError, match="layer must be a keras.layers.Layer.*received"):
        Recompute(lambda x: x)

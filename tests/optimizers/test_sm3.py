"""SM3-II against an independent float64 NumPy version of Anil et al. 2019."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tenfold.optimizers import SM3, state_bytes


def reference_sm3(x0, grads, *, lr, momentum=0.9, epsilon=0.0):
    x = np.asarray(x0, np.float64).copy()
    shape = x.shape
    if not shape:
        accs = [np.zeros(())]
    else:
        accs = [np.zeros(d) for d in shape]
    m = np.zeros(shape)
    for g in grads:
        g = np.asarray(g, np.float64)
        cover = np.full(shape, np.inf)
        if not shape:
            cover = accs[0].copy()
        for i, acc in enumerate(accs if shape else []):
            idx = [None] * len(shape)
            idx[i] = slice(None)
            cover = np.minimum(cover, acc[tuple(idx)])
        nu = cover + g * g
        for i in range(len(shape)):
            accs[i] = np.array([np.take(nu, r, axis=i).max() for r in range(shape[i])])
        if not shape:
            accs[0] = nu
        denom = nu + epsilon
        safe = np.where(denom > 0, denom, 1.0)
        u = np.where(denom > 0, g / np.sqrt(safe), 0.0)
        m = momentum * m + (1 - momentum) * u if momentum > 0 else u
        x = x - lr * m
    return x


def run(optimizer, x0, grads):
    var = keras.Variable(np.asarray(x0, "float32"))
    optimizer.build([var])
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(np.asarray(g, "float32"))], [var])
    return np.asarray(var)


def problem(shape, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=shape)
    # scales vary from step to step so that the min/max covers matter
    grads = [rng.normal(size=shape) * rng.uniform(0.1, 3.0, size=shape) for _ in range(steps)]
    return x0, grads


@pytest.mark.parametrize("shape", [(7, 5), (3, 3, 4, 6), (11,), (), (4, 3, 5)], ids=str)
@pytest.mark.parametrize("momentum,epsilon", [(0.9, 0.0), (0.0, 0.0), (0.5, 1e-2)])
def test_matches_paper_reference(shape, momentum, epsilon):
    x0, grads = problem(shape, seed=len(shape))
    got = run(SM3(0.1, momentum=momentum, epsilon=epsilon), x0, grads)
    want = reference_sm3(x0, grads, lr=0.1, momentum=momentum, epsilon=epsilon)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_zero_over_zero_is_zero():
    x0 = np.ones((3, 4))
    g = np.zeros((3, 4))
    g[0, 0] = 1.0
    got = run(SM3(0.1, momentum=0.0), x0, [g, g])
    assert np.all(np.isfinite(got))
    expected = np.ones((3, 4))
    expected[0, 0] = 1 - 0.1 * (1 + 1 / np.sqrt(2))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_state_is_sum_of_dims():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(16, 3, name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="classifier"),
    ])
    opt = SM3(0.1, momentum=0.0)
    opt.build(model.trainable_variables)
    floats = (3 + 3 + 3 + 16) + 16 + (6 * 6 * 16 + 10) + 10
    assert state_bytes(opt) == 4 * floats + 8 + 4
    opt_m = SM3(0.1)
    opt_m.build(model.trainable_variables)
    params = model.count_params()
    assert state_bytes(opt_m) == state_bytes(opt) + 4 * params


def _embedding_grad(rows, values, vocab, dim):
    return tf.IndexedSlices(
        tf.constant(values, tf.float32), tf.constant(rows, tf.int64), tf.constant([vocab, dim], tf.int64)
    )


def test_sparse_equals_dense_without_momentum():
    rng = np.random.default_rng(1)
    vocab, dim = 9, 4
    x0 = rng.normal(size=(vocab, dim)).astype("float32")
    steps = [([1, 4, 1], rng.normal(size=(3, dim))), ([0, 4], rng.normal(size=(2, dim))),
             ([7, 1, 8, 8], rng.normal(size=(4, dim)))]
    sparse_var, dense_var = keras.Variable(x0), keras.Variable(x0)
    sparse_opt, dense_opt = SM3(0.2, momentum=0.0), SM3(0.2, momentum=0.0)
    sparse_opt.build([sparse_var])
    dense_opt.build([dense_var])
    for rows, values in steps:
        grad = _embedding_grad(rows, values, vocab, dim)
        sparse_opt.apply([grad], [sparse_var])
        dense_opt.apply([tf.convert_to_tensor(grad)], [dense_var])
    np.testing.assert_allclose(np.asarray(sparse_var), np.asarray(dense_var), rtol=1e-6, atol=1e-7)
    for a, b in zip(sparse_opt.variables, dense_opt.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_sparse_with_momentum_updates_only_touched_rows():
    rng = np.random.default_rng(2)
    vocab, dim = 6, 3
    x0 = rng.normal(size=(vocab, dim)).astype("float32")
    var = keras.Variable(x0)
    opt = SM3(0.1, momentum=0.9)
    opt.build([var])
    opt.apply([_embedding_grad([0, 2], rng.normal(size=(2, dim)), vocab, dim)], [var])
    momentum_after_first = np.asarray(opt._momenta[0]).copy()
    x1 = np.asarray(var).copy()
    opt.apply([_embedding_grad([2, 3], rng.normal(size=(2, dim)), vocab, dim)], [var])
    x2 = np.asarray(var)
    untouched = [0, 1, 4, 5]
    np.testing.assert_array_equal(x2[untouched], x1[untouched])
    np.testing.assert_array_equal(np.asarray(opt._momenta[0])[untouched], momentum_after_first[untouched])
    assert not np.allclose(x2[[2, 3]], x1[[2, 3]])


def test_trains_an_embedding_model_with_sparse_gradients():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 50, size=(64, 5))
    y = (x[:, 0] % 2).astype("int32")
    model = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        keras.layers.Embedding(50, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(2),
    ])
    model.compile(SM3(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(
    "args,kwargs,exc,text",
    [
        ((-0.1,), {}, ValueError, "learning_rate"),
        (("big",), {}, TypeError, "learning_rate"),
        ((0.1,), dict(momentum=1.0), ValueError, "momentum"),
        ((0.1,), dict(momentum=-0.1), ValueError, "momentum"),
        ((0.1,), dict(epsilon=-1e-8), ValueError, "epsilon"),
    ],
)
def test_bad_arguments(args, kwargs, exc, text):
    with pytest.raises(exc, match=text):
        SM3(*args, **kwargs)


def test_config_round_trip_keeps_arguments():
    opt = SM3(0.25, momentum=0.5, epsilon=1e-6)
    config = opt.get_config()
    assert (config["learning_rate"], config["momentum"], config["epsilon"]) == (0.25, 0.5, 1e-6)
    assert SM3.from_config(config).get_config() == config

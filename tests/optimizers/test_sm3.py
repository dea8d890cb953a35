"""SM3-II against an independent float64 NumPy version of Anil et al. 2019."""

import keras
import numpy as np
import pytest

from tenfold.optimizers import SM3, state_bytes


def bfloat16_round(a):
    """float64 → float32 → bfloat16 (round to nearest, ties to even), back as float64."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def reference_sm3(x0, grads, *, lr, momentum=0.9, epsilon=0.0, momentum_store=None, state=None):
    """SM3-II; ``momentum_store`` rounds the stored momentum (the applied step stays exact)."""
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
        step = momentum * m + (1 - momentum) * u if momentum > 0 else u
        m = step if momentum_store is None else momentum_store(step)
        x = x - lr * step
    if state is not None:
        state.update(m=m, accs=accs)
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


@pytest.mark.all_backends
@pytest.mark.parametrize("shape", [(7, 5), (3, 3, 4, 6), (11,), (), (4, 3, 5)], ids=str)
@pytest.mark.parametrize("momentum,epsilon", [(0.9, 0.0), (0.0, 0.0), (0.5, 1e-2)])
def test_matches_paper_reference(shape, momentum, epsilon):
    x0, grads = problem(shape, seed=len(shape))
    got = run(SM3(0.1, momentum=momentum, epsilon=epsilon), x0, grads)
    want = reference_sm3(x0, grads, lr=0.1, momentum=momentum, epsilon=epsilon)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.all_backends
def test_zero_over_zero_is_zero():
    x0 = np.ones((3, 4))
    g = np.zeros((3, 4))
    g[0, 0] = 1.0
    got = run(SM3(0.1, momentum=0.0, epsilon=0.0), x0, [g, g])
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
    import tensorflow as tf  # TensorFlow's sparse gradients (these tests run under TF only)

    return tf.IndexedSlices(
        tf.constant(values, tf.float32), tf.constant(rows, tf.int64), tf.constant([vocab, dim], tf.int64)
    )


def test_sparse_equals_dense_without_momentum():
    import tensorflow as tf

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


@pytest.mark.all_backends
@pytest.mark.parametrize(
    "args,kwargs,exc,message",
    [
        ((-0.1,), {}, ValueError, "learning_rate must be a number > 0, received -0.1."),
        ((0.0,), {}, ValueError, "learning_rate must be a number > 0, received 0.0."),
        ((float("nan"),), {}, ValueError, "learning_rate must be a finite number, received nan."),
        (("big",), {}, TypeError,
         "learning_rate must be a finite number, received 'big' of type str. A "
         "LearningRateSchedule is accepted too."),
        ((None,), {}, TypeError, "learning_rate must be a finite number, received None"),
        ((0.1,), dict(momentum=1.0), ValueError,
         "momentum must be a number >= 0 and < 1, received 1.0."),
        ((0.1,), dict(momentum=-0.1), ValueError,
         "momentum must be a number >= 0 and < 1, received -0.1."),
        ((0.1,), dict(momentum="high"), TypeError,
         "momentum must be a finite number, received 'high' of type str."),
        ((0.1,), dict(epsilon=-1e-8), ValueError, "epsilon must be a number >= 0, received -1e-08."),
        ((0.1,), dict(epsilon=float("inf")), ValueError,
         "epsilon must be a finite number, received inf."),
        ((0.1,), dict(momentum_dtype="bf16"), ValueError,
         "momentum_dtype must be one of 'float32', 'bfloat16', received 'bf16'."),
    ],
)
def test_bad_arguments(args, kwargs, exc, message):
    with pytest.raises(exc) as info:
        SM3(*args, **kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_defaults_and_numpy_scalars():
    opt = SM3(np.float32(0.5), momentum=np.float64(0.0))
    assert opt.epsilon == 1e-8 and opt.momentum == 0.0 and opt.momentum_dtype == "float32"
    assert isinstance(opt.get_config()["momentum"], float)


def test_config_round_trip_keeps_arguments():
    opt = SM3(0.25, momentum=0.5, epsilon=1e-6, momentum_dtype="bfloat16")
    config = opt.get_config()
    assert (config["learning_rate"], config["momentum"], config["epsilon"]) == (0.25, 0.5, 1e-6)
    assert config["momentum_dtype"] == "bfloat16"
    assert SM3.from_config(config).get_config() == config


@pytest.mark.all_backends
@pytest.mark.parametrize("shape", [(7, 5), (11,), (3, 3, 4, 6)], ids=str)
def test_bfloat16_momentum_matches_rounded_reference(shape):
    x0, grads = problem(shape, steps=6, seed=40 + len(shape))
    opt = SM3(0.1, momentum=0.9, epsilon=1e-8, momentum_dtype="bfloat16")
    got = run(opt, x0, grads)
    m = opt._momenta[0]
    assert keras.backend.standardize_dtype(m.dtype) == "bfloat16"
    state = {}
    want = reference_sm3(x0, grads, lr=0.1, epsilon=1e-8, momentum_store=bfloat16_round,
                         state=state)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    stored = np.asarray(keras.ops.cast(m, "float32"), np.float64)
    np.testing.assert_allclose(stored, state["m"], rtol=1e-6, atol=0)
    full = reference_sm3(x0, grads, lr=0.1, epsilon=1e-8)
    assert np.max(np.abs(full - got)) > 20 * np.max(np.abs(want - got))


def test_bfloat16_momentum_state_bytes_and_sparse_rows():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    sizes = {}
    for dtype in ("float32", "bfloat16"):
        opt = SM3(0.1, momentum_dtype=dtype)
        opt.build(model.trainable_variables)
        sizes[dtype] = state_bytes(opt)
    assert sizes["float32"] - sizes["bfloat16"] == 2 * model.count_params()
    # sparse (Embedding) gradients: the touched rows of the bfloat16 slot, rounded
    rng = np.random.default_rng(5)
    var = keras.Variable(rng.normal(size=(6, 3)).astype("float32"))
    opt = SM3(0.1, momentum_dtype="bfloat16")
    opt.build([var])
    values = rng.normal(size=(2, 3))
    opt.apply([_embedding_grad([1, 4], values, 6, 3)], [var])
    m = np.asarray(keras.ops.cast(opt._momenta[0], "float32"), np.float64)
    u = values / np.sqrt(values ** 2 + 1e-8)
    np.testing.assert_array_equal(m[[1, 4]], bfloat16_round(0.1 * u))
    np.testing.assert_array_equal(m[[0, 2, 3, 5]], 0.0)


@pytest.mark.all_backends
def test_epsilon_damps_round_off_gradients_only():
    # the first step is g/|g| = ±1 with epsilon 0 whatever |g|; 1e-8 damps |g| << 1e-4 only
    x0 = np.zeros(4)
    g = np.array([3e-9, -2e-9, 1e-2, -0.5])
    exact = run(SM3(1.0, momentum=0.0, epsilon=0.0), x0, [g])
    np.testing.assert_allclose(exact, -np.sign(g), rtol=1e-6)
    damped = run(SM3(1.0, momentum=0.0), x0, [g])
    np.testing.assert_allclose(damped, -g / np.sqrt(g * g + 1e-8), rtol=1e-5)
    assert np.all(np.abs(damped[:2]) < 1e-4) and np.all(np.abs(damped[2:]) > 0.99)


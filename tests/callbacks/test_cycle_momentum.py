"""CycleMomentum: the optimizer's momentum follows the schedule inversely, inside the step."""

import os

import keras
import numpy as np
import pytest

import tenfold
from tenfold.callbacks import CycleMomentum
from tenfold.schedules import CyclicalLearningRate, OneCycle


def _problem(n=32, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d, 1)) + 0.1).astype("float32")
    return x, y


def _linear_model(optimizer, jit=False, d=3):
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer, "mse", jit_compile=jit)
    return model


def _lr_ref(step, low, high, size):
    cycle = np.floor(1 + step / (2 * size))
    return low + (high - low) * max(0.0, 1 - abs(step / size - 2 * cycle + 1))


def _grad(w, b, x, y):
    err = x @ w + b - y  # float64 NumPy gradient of mean squared error
    return 2 * x.T @ err / len(x), 2 * err.mean(axis=0)


@pytest.mark.parametrize("jit", [False, True])
def test_sgd_matches_numpy_reference_with_cycled_momentum(jit):
    x, y = _problem()
    low, high, size, base, top = 0.01, 0.1, 3, 0.8, 0.95
    model = _linear_model(keras.optimizers.SGD(CyclicalLearningRate(low, high, size),
                                               momentum=0.9), jit)
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
              callbacks=[CycleMomentum(base, top)])
    w, b = np.zeros((3, 1)), np.zeros(1)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    step = 0
    for _ in range(3):
        for i in range(0, 32, 8):
            lr = _lr_ref(step, low, high, size)
            m = top - (lr - low) / (high - low) * (top - base)
            gw, gb = _grad(w, b, x[i:i + 8].astype(np.float64), y[i:i + 8].astype(np.float64))
            vw, vb = m * vw - lr * gw, m * vb - lr * gb
            w, b = w + vw, b + vb
            step += 1
    np.testing.assert_allclose(model.weights[0].numpy(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.weights[1].numpy(), b, rtol=1e-4, atol=1e-5)
    # after training the optimizer holds a plain float again
    assert type(model.optimizer.momentum) is float and model.optimizer.momentum == 0.9


def test_adam_beta_1_cycles():
    x, y = _problem()
    low, high, size, base, top = 1e-3, 1e-2, 2, 0.85, 0.95
    model = _linear_model(keras.optimizers.Adam(CyclicalLearningRate(low, high, size)))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[CycleMomentum(base, top)])
    w, b = np.zeros((3, 1)), np.zeros(1)
    state = {k: np.zeros_like(v) for k, v in (("mw", w), ("vw", w), ("mb", b), ("vb", b))}
    b2, eps = 0.999, 1e-7
    for t in range(8):
        i = (t % 4) * 8
        lr = _lr_ref(t, low, high, size)
        b1 = top - (lr - low) / (high - low) * (top - base)
        gw, gb = _grad(w, b, x[i:i + 8].astype(np.float64), y[i:i + 8].astype(np.float64))
        alpha = lr * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        for name, g in (("w", gw), ("b", gb)):
            state["m" + name] += (g - state["m" + name]) * (1 - b1)
            state["v" + name] += (g**2 - state["v" + name]) * (1 - b2)
        w = w - alpha * state["mw"] / (np.sqrt(state["vw"]) + eps)
        b = b - alpha * state["mb"] / (np.sqrt(state["vb"]) + eps)
    np.testing.assert_allclose(model.weights[0].numpy(), w, rtol=1e-4, atol=1e-6)
    assert model.optimizer.beta_1 == 0.9


def test_one_cycle_momentum_values():
    schedule = OneCycle(1.0, 20)
    cb = CycleMomentum()
    assert float(cb.momentum(schedule, 0)) == pytest.approx(0.95)
    assert float(cb.momentum(schedule, 5)) == pytest.approx(0.85)
    assert float(cb.momentum(schedule, 19)) == pytest.approx(0.95)


def test_model_saved_during_training_loads(tmp_path):
    x, y = _problem()
    model = _linear_model(keras.optimizers.SGD(OneCycle(0.05, 12), momentum=0.9))
    path = os.path.join(tmp_path, "ckpt.keras")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[
        CycleMomentum(), keras.callbacks.ModelCheckpoint(path)])
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.optimizer._learning_rate, OneCycle)
    assert float(loaded.optimizer.momentum) == pytest.approx(0.95)


def test_errors():
    with pytest.raises(ValueError, match="base_momentum must be <= max_momentum, received 0.9 and 0.8"):
        CycleMomentum(0.9, 0.8)
    with pytest.raises(ValueError, match=r"base_momentum must be a number >= 0 and < 1, received 1.2"):
        CycleMomentum(1.2, 0.95)
    x, y = _problem()
    model = _linear_model(keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(ValueError, match="tenfold cyclical schedule"):
        model.fit(x, y, verbose=0, callbacks=[CycleMomentum()])
    model = _linear_model(keras.optimizers.SGD(CyclicalLearningRate(0.01, 0.1, 2)))
    with pytest.raises(ValueError, match="momentum > 0"):
        model.fit(x, y, verbose=0, callbacks=[CycleMomentum()])


def test_public_name():
    assert tenfold.callbacks.CycleMomentum is CycleMomentum

"""LR range test: restores the model exactly, finds the known region on a quadratic."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.callbacks import LRFinder
from tenfold.callbacks.lr_finder import smooth, suggest_bounds
from tenfold.schedules import CyclicalLearningRate


def _quadratic(scale, n=512, d=4, seed=0):
    """Least squares with inputs of standard deviation ``scale``: the MSE Hessian is about
    ``2 scale**2 I``, so plain gradient descent is stable only below ``lr ~ 1 / scale**2``."""
    rng = np.random.default_rng(seed)
    x = (scale * rng.normal(size=(n, d))).astype("float32")
    w = rng.normal(size=(d, 1)) / scale
    return x, (x @ w).astype("float32")


def _linear(lr=0.01):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _run(scale):
    x, y = _quadratic(scale)
    model = _linear()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    return tenfold.lr_find(model, ds, min_learning_rate=1e-6 / scale**2,
                           max_learning_rate=1e3 / scale**2, num_steps=150)


def test_finds_the_known_region_of_a_quadratic():
    result = _run(1.0)
    assert result.stopped_early  # the sweep ends past the stability limit
    stop = result.learning_rates[-1]
    assert 0.5 < stop < 100, stop  # divergence starts above lr ~ 1 / scale**2
    low, high = result.bounds
    assert 1e-3 < high < 1.0, (low, high)
    assert low < high and low <= high / 3 * (1 + 1e-12)
    assert result.minimum_learning_rate <= stop
    assert result.steepest_learning_rate <= result.minimum_learning_rate


def test_suggestion_scales_with_curvature():
    # inputs 10x larger = curvature 100x larger: the same curve shifted by 100 in lr
    a, b = _run(1.0), _run(10.0)
    ratio = a.maximal_learning_rate / b.maximal_learning_rate
    assert 100 / 1.5 < ratio < 100 * 1.5, ratio
    np.testing.assert_allclose(np.array(a.learning_rates[: len(b.learning_rates)]) / 100,
                               b.learning_rates[: len(a.learning_rates)], rtol=1e-6)


def _bn_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8)(inputs)
    h = keras.layers.BatchNormalization()(h)
    outputs = keras.layers.Dense(3)(keras.layers.ReLU()(h))
    return keras.Model(inputs, outputs)


def _classification():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(96, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")


def _snapshot(model):
    return ([v.numpy().copy() for v in model.weights],
            [v.numpy().copy() for v in model.optimizer.variables])


@pytest.mark.parametrize("learning_rate", ["float", "schedule"])
def test_restores_weights_optimizer_state_and_learning_rate_exactly(learning_rate):
    x, y = _classification()
    model = _bn_model()
    lr = 1e-3 if learning_rate == "float" else CyclicalLearningRate(1e-3, 1e-2, 4)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    weights, state = _snapshot(model)
    original_lr = model.optimizer._learning_rate
    result = tenfold.lr_find(model, x, y, batch_size=16, min_learning_rate=1e-4,
                             max_learning_rate=10.0, num_steps=30)
    assert len(result.learning_rates) >= 10
    after_w, after_s = _snapshot(model)
    assert len(after_s) == len(state)
    for a, b in zip(weights + state, after_w + after_s):
        np.testing.assert_array_equal(b, a)
    assert model.optimizer._learning_rate is original_lr
    if learning_rate == "float":
        assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    # training afterwards uses the original rate again
    finder_free = _bn_model()
    finder_free.compile(keras.optimizers.Adam(lr if learning_rate == "float" else
                                              CyclicalLearningRate(1e-3, 1e-2, 4)),
                        keras.losses.SparseCategoricalCrossentropy(True))
    finder_free.fit(x, y, batch_size=16, epochs=1, verbose=0)
    finder_free.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(finder_free.weights, model.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


def test_unbuilt_optimizer_is_left_fresh():
    x, y = _classification()
    model = _bn_model()
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(True))
    weights = [v.numpy().copy() for v in model.weights]
    tenfold.lr_find(model, x, y, batch_size=32, min_learning_rate=1e-3, max_learning_rate=1.0,
                    num_steps=12)
    for a, v in zip(weights, model.weights):
        np.testing.assert_array_equal(v.numpy(), a)
    assert int(model.optimizer.iterations.numpy()) == 0
    for v in model.optimizer.momentums:
        assert not np.any(v.numpy())


def test_sweep_values_and_callback_use_with_fit(tmp_path):
    x, y = _quadratic(1.0, n=256)
    model = _linear()
    finder = LRFinder(1e-4, 1e-1, 20, mode="linear")
    model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[finder])
    result = finder.result
    assert len(result.learning_rates) == 20 and not result.stopped_early
    np.testing.assert_allclose(result.learning_rates, np.linspace(1e-4, 1e-1, 20), rtol=1e-9)
    expo = LRFinder(1e-4, 1e-1, 4)
    np.testing.assert_allclose([expo.learning_rate_at(i) for i in range(4)],
                               [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-9)
    # the recorded losses are per-batch losses (not Keras' running epoch mean)
    model2 = _linear()
    model2.compile(keras.optimizers.SGD(0.0), "mse")
    probe = LRFinder(1e-12, 1e-11, 8, restore=True)
    model2.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[probe])
    per_batch = [float(np.mean((x[i:i + 32] @ np.zeros((4, 1)) - y[i:i + 32]) ** 2))
                 for i in range(0, 256, 32)]
    np.testing.assert_allclose(probe.result.losses, per_batch, rtol=1e-4)
    np.testing.assert_allclose(probe.result.smoothed_losses, smooth(per_batch), rtol=1e-4)
    # csv and plot
    result.to_csv(tmp_path / "curve.csv")
    with open(tmp_path / "curve.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["step", "learning_rate", "loss", "smoothed_loss"] and len(rows) == 21
    result.plot(tmp_path / "lr_finder.png")
    assert (tmp_path / "lr_finder.png").stat().st_size > 1000


def test_smooth_is_bias_corrected_moving_average():
    losses = np.array([4.0, 2.0, 3.0, 1.0])
    beta = 0.9
    expected, avg = [], 0.0
    for t, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        expected.append(avg / (1 - beta**t))
    np.testing.assert_allclose(smooth(losses, beta), expected)
    assert smooth([5.0, 5.0, 5.0])[0] == pytest.approx(5.0)


def test_suggest_bounds_on_a_curve_with_known_marks():
    u = np.linspace(np.log(1e-5), np.log(10.0), 400)
    u0, u1 = np.log(1e-2), np.log(0.5)  # steepest fall at 1e-2, minimum at 0.5
    loss = 2 - np.tanh(2 * (u - u0)) - 0.1 * u  # still falling (slowly) up to u1
    loss = np.where(u > u1, loss + 3 * (u - u1) ** 2, loss)  # then rising: minimum ~ u1
    marks = suggest_bounds(np.exp(u), loss)
    grid = np.exp(u[1] - u[0])
    assert 1e-2 / grid**2 <= marks["steepest"] <= 1e-2 * grid**2
    # the zero-lag smoothing (a few points wide) moves the minimum a little to the flat side
    assert 0.5 / 1.5 <= marks["minimum"] <= 0.5 * grid**3
    assert marks["maximal"] == pytest.approx(np.sqrt(marks["steepest"] * marks["minimum"] / 10))
    assert marks["initial"] == pytest.approx(min(marks["steepest"], marks["minimum"] / 10,
                                                 marks["maximal"] / 3))
    assert suggest_bounds([1e-3, 1e-2], [1.0, 0.5])["maximal"] is None


def test_result_gives_a_cyclical_schedule():
    result = _run(1.0)
    schedule = result.schedule(step_size=100, mode="triangular2")
    assert isinstance(schedule, CyclicalLearningRate)
    assert (schedule.initial_learning_rate, schedule.maximal_learning_rate) == result.bounds


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((0.0, 1.0, 10), {}, "min_learning_rate must be a number > 0, received 0.0"),
        ((1e-3, 1e-4, 10), {}, "min_learning_rate must be < max_learning_rate, received 0.001 and 0.0001"),
        ((1e-3, 1.0, 1), {}, "num_steps must be an integer >= 2, received 1"),
        ((1e-3, 1.0, 10), {"mode": "log"}, "mode must be one of"),
        ((1e-3, 1.0, 10), {"divergence_threshold": 1.0}, "divergence_threshold must be"),
        ((1e-3, 1.0, 10), {"smoothing": 1.0}, r"smoothing must be a number >= 0 and < 1, received 1.0"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRFinder(*args, **kwargs)


def test_lr_find_input_errors():
    x, y = _quadratic(1.0, n=64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compiled model"):
        tenfold.lr_find(model, x, y)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="y .* is required"):
        tenfold.lr_find(model, x)
    with pytest.raises(TypeError, match="keras.Model"):
        tenfold.lr_find("model", x, y)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, received 0"):
        tenfold.lr_find(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"verbose must be an integer >= 0 and <= 2, received 5"):
        tenfold.lr_find(model, x, y, verbose=5)
    with pytest.raises(ValueError, match=r"max_learning_rate must be a finite number, received inf"):
        tenfold.lr_find(model, x, y, max_learning_rate=float("inf"))

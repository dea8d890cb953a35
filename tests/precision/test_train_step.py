"""tenfold.precision.train_step: a custom-loop step with dynamic loss scaling under
mixed_float16 that unscales correctly and skips non-finite steps."""

import keras
import numpy as np
import pytest

from tenfold.precision import train_step


def _model(policy):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(4, dtype=policy),
        keras.layers.Dense(1, dtype="float32"),
    ])


def _data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")


def test_float32_step_matches_a_float64_numpy_sgd_step():
    model = _model("float32")
    x, y = _data()
    w1, b1, w2, b2 = (np.asarray(v, "float64") for v in model.trainable_variables)
    step = train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))
    logs = step(x, y)
    # reference: loss = mean((x W1 + b1) W2 + b2 - y)², gradient by hand, SGD lr 0.1
    h = x @ w1 + b1
    p = h @ w2 + b2
    d = 2 * (p - y) / len(x)
    g = [x.T @ (d @ w2.T), (d @ w2.T).sum(0), h.T @ d, d.sum(0)]
    assert float(logs["loss"]) == pytest.approx(float(np.mean((p - y) ** 2)), rel=1e-5)
    assert bool(logs["finite"]) and float(logs["loss_scale"]) == 1.0
    for v, w, grad in zip(model.trainable_variables, (w1, b1, w2, b2), g):
        np.testing.assert_allclose(np.asarray(v), w - 0.1 * grad, rtol=1e-5, atol=1e-6)


def test_mixed_float16_scales_unscales_and_matches_float32():
    x, y = _data()
    ref = _model("float32")
    train_step(ref, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))(x, y)
    model = _model("mixed_float16")
    step = train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))
    assert isinstance(step.optimizer, keras.optimizers.LossScaleOptimizer)
    logs = step(x, y)
    assert bool(logs["finite"])
    assert float(logs["loss_scale"]) == 2.0**15  # Keras' initial scale, kept after a good step
    for a, b in zip(ref.trainable_variables, model.trainable_variables):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-2, atol=2e-3)


def test_mixed_float16_skips_an_infinite_gradient_and_halves_the_scale():
    x, y = _data()
    model = _model("mixed_float16")
    step = train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))
    step(x, y)
    before = [np.asarray(v).copy() for v in model.trainable_variables]
    scale = float(step.optimizer.dynamic_scale)
    bad = x.copy()
    bad[0, 0] = np.inf
    logs = step(bad, y)
    assert not bool(logs["finite"])
    assert float(logs["loss_scale"]) == scale / 2
    for a, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(np.asarray(v), a)  # update skipped
    logs = step(x, y)
    assert bool(logs["finite"])
    assert any(not np.array_equal(np.asarray(v), a) for a, v in zip(before, model.trainable_variables))


def test_scale_grows_after_the_growth_interval():
    x, y = _data()
    model = _model("mixed_float16")
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.01), initial_scale=8.0, dynamic_growth_steps=3
    )
    step = train_step(model, keras.losses.MeanSquaredError(), optimizer, jit_compile=True)
    scales = [float(step(x, y)["loss_scale"]) for _ in range(4)]
    assert scales == [8.0, 8.0, 16.0, 16.0]


@pytest.mark.parametrize(
    "args,error,match",
    [
        (("model", "loss", "opt"), TypeError, "model must be a keras.Model, received 'model' of type str"),
        ((None, "loss", "opt"), TypeError, "optimizer must be a keras.optimizers.Optimizer"),
        ((None, 3, None), TypeError, "loss_fn must be callable"),
    ],
)
def test_bad_arguments(args, error, match):
    model = _model("float32")
    opt = keras.optimizers.SGD(0.1)
    real = [model if a is None and i == 0 else a for i, a in enumerate(args)]
    real = [opt if i == 2 and a is None else a for i, a in enumerate(real)]
    if args[1] == "loss":
        real[1] = keras.losses.MeanSquaredError()
    with pytest.raises(error, match=match):
        train_step(*real)
    with pytest.raises(ValueError, match="loss_scaling must be 'auto', True or False, received 'x'"):
        train_step(model, keras.losses.MeanSquaredError(), opt, loss_scaling="x")

"""CyclicalLearningRate and its TensorFlow Addons names against Smith's formula."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.schedules import (
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)


def reference(step, low, high, size, mode="triangular", gamma=1.0, scale_mode=None):
    """Smith 2017 eq. (1) in float64, written from the paper (independent of tenfold)."""
    step = np.asarray(step, dtype=np.float64)
    if scale_mode is None:
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    cycle = np.floor(1 + step / (2 * size))
    x = np.abs(step / size - 2 * cycle + 1)
    v = cycle if scale_mode == "cycle" else step
    scale = {"triangular": np.ones_like(v), "triangular2": 1 / 2.0 ** (v - 1),
             "exp_range": gamma**v}[mode]
    return low + (high - low) * np.maximum(0, 1 - x) * scale


STEPS = np.arange(0, 1000, 7)
CASES = [
    dict(mode="triangular"),
    dict(mode="triangular2"),
    dict(mode="exp_range", gamma=0.997),
    dict(mode="triangular2", scale_mode="iterations"),
    dict(mode="exp_range", gamma=0.9, scale_mode="cycle"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64", "python"])
def test_matches_formula_for_every_mode_and_step_dtype(case, dtype):
    schedule = CyclicalLearningRate(1e-3, 6e-3, 50, **case)
    expected = reference(STEPS, 1e-3, 6e-3, 50, **case)
    if dtype == "python":
        got = [float(schedule(int(s))) for s in STEPS]
    else:
        got = [float(schedule(tf.constant(s, dtype=dtype))) for s in STEPS]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_traces_in_tf_function_and_xla(jit, dtype):
    schedule = CyclicalLearningRate(0.01, 0.1, 20, mode="triangular2")
    step = tf.Variable(0, dtype=dtype)

    @tf.function(jit_compile=jit)
    def lr():
        return schedule(step)

    got = []
    for s in range(0, 200, 3):
        step.assign(s)
        got.append(float(lr()))
    np.testing.assert_allclose(got, reference(np.arange(0, 200, 3), 0.01, 0.1, 20, "triangular2"),
                               rtol=1e-5)


def test_int64_step_far_into_training():
    schedule = CyclicalLearningRate(0.01, 0.1, 2000)
    value = float(schedule(tf.constant(2**33 + 1000, tf.int64)))
    assert np.isfinite(value) and 0.01 <= value <= 0.1 + 1e-7


def test_float_step_size_and_iteration_variable_of_an_optimizer():
    schedule = CyclicalLearningRate(0.0, 1.0, 2.5)
    np.testing.assert_allclose(float(schedule(1.25)), 0.5, rtol=1e-6)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    optimizer.iterations.assign(4)
    np.testing.assert_allclose(float(optimizer.learning_rate), reference(4, 0.0, 1.0, 2.5),
                               rtol=1e-6)


@pytest.mark.parametrize(
    "cls,kwargs,mode",
    [
        (TriangularCyclicalLearningRate, {}, "triangular"),
        (Triangular2CyclicalLearningRate, {}, "triangular2"),
        (ExponentialCyclicalLearningRate, {"gamma": 0.995}, "exp_range"),
        (Triangular2CyclicalLearningRate, {"scale_mode": "iterations"}, "triangular2"),
        (ExponentialCyclicalLearningRate, {"gamma": 0.8, "scale_mode": "cycle"}, "exp_range"),
    ],
)
def test_addons_names_match_formula_and_general_class(cls, kwargs, mode):
    schedule = cls(2e-4, 2e-2, 30, **kwargs)
    expected = reference(STEPS, 2e-4, 2e-2, 30, mode=mode, gamma=kwargs.get("gamma", 1.0),
                         scale_mode=kwargs.get("scale_mode"))
    got = np.array([float(schedule(tf.constant(s, tf.int64))) for s in STEPS])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-10)
    general = CyclicalLearningRate(2e-4, 2e-2, 30, mode=mode, **kwargs)
    np.testing.assert_array_equal(got, [float(general(s)) for s in STEPS])


def test_addons_positional_signatures():
    # tfa: (initial, maximal, step_size, scale_mode, name) and, for Exponential, gamma after
    # scale_mode: positional calls written for Addons keep working.
    s = ExponentialCyclicalLearningRate(0.1, 1.0, 4, "iterations", 0.5, "lr")
    assert (s.scale_mode, s.gamma, s.name) == ("iterations", 0.5, "lr")
    t = Triangular2CyclicalLearningRate(0.1, 1.0, 4, "cycle", "tri2")
    assert t.name == "tri2"


@pytest.mark.parametrize(
    "schedule",
    [
        CyclicalLearningRate(1e-3, 1e-2, 10, mode="exp_range", gamma=0.99),
        TriangularCyclicalLearningRate(1e-3, 1e-2, 10),
        Triangular2CyclicalLearningRate(1e-3, 1e-2, 10),
        ExponentialCyclicalLearningRate(1e-3, 1e-2, 10, gamma=0.99),
    ],
    ids=lambda s: type(s).__name__,
)
def test_config_holds_only_json_and_round_trips(schedule):
    config = schedule.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule)
    np.testing.assert_array_equal([float(restored(s)) for s in range(40)],
                                  [float(schedule(s)) for s in range(40)])


def _model(schedule, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x @ rng.normal(size=(4, 1))).astype("float32")


class _RecordLR(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.lrs, self.steps = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))
        self.lrs.append(float(self.model.optimizer.learning_rate))


def test_compiled_model_saves_loads_and_resumes_mid_cycle(tmp_path):
    x, y = _data()
    make = lambda: CyclicalLearningRate(1e-3, 5e-2, 6, mode="triangular2")  # noqa: E731
    # one run of 4 epochs (8 steps each: 32 steps, mid-way through cycle 3) ...
    straight = _model(make())
    straight.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    # ... against 1 epoch, save, load with safe_mode, 3 more epochs
    first = _model(make())
    first.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    first.save(path)
    resumed = keras.saving.load_model(path, safe_mode=True)
    assert type(resumed.optimizer._learning_rate) is CyclicalLearningRate
    assert resumed.optimizer._learning_rate.get_config() == make().get_config()
    assert int(resumed.optimizer.iterations.numpy()) == 8
    recorder = _RecordLR()
    resumed.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[recorder])
    assert recorder.steps == list(range(8, 32))
    np.testing.assert_allclose(recorder.lrs, reference(np.arange(8, 32), 1e-3, 5e-2, 6,
                                                       "triangular2"), rtol=1e-5)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


def test_fit_with_jit_compile_follows_the_schedule():
    x, y = _data()
    model = _model(CyclicalLearningRate(1e-3, 1e-2, 3, mode="exp_range", gamma=0.9))
    model.compile(model.optimizer, "mse", jit_compile=True)
    recorder = _RecordLR()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[recorder])
    np.testing.assert_allclose(recorder.lrs, reference(np.arange(12), 1e-3, 1e-2, 3,
                                                       "exp_range", 0.9), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(step_size=0), "step_size must be a number > 0, received 0"),
        (dict(step_size=-3), "step_size must be a number > 0"),
        (dict(maximal_learning_rate=1e-4), "initial_learning_rate must be <= maximal_learning_rate"),
        (dict(gamma=0.0), "gamma must be a number > 0 and <= 1, received 0.0"),
        (dict(gamma=1.5), "gamma must be a number > 0 and <= 1"),
        (dict(mode="triangle"), "mode must be one of .*received 'triangle'.*Did you mean"),
        (dict(scale_mode="epoch"), "scale_mode must be one of"),
        (dict(initial_learning_rate=-1.0), "initial_learning_rate must be a number >= 0"),
        (dict(step_size=float("nan")), "step_size must be a finite number, received nan"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = dict(initial_learning_rate=1e-3, maximal_learning_rate=1e-2, step_size=10)
    args.update(kwargs)
    initial = args.pop("initial_learning_rate")
    maximal = args.pop("maximal_learning_rate")
    step_size = args.pop("step_size")
    with pytest.raises(ValueError, match=match):
        CyclicalLearningRate(initial, maximal, step_size, **args)


def test_non_numbers_raise_type_error():
    with pytest.raises(TypeError, match="step_size must be a finite number, received '10' of type str"):
        CyclicalLearningRate(1e-3, 1e-2, "10")
    with pytest.raises(TypeError, match="maximal_learning_rate"):
        CyclicalLearningRate(1e-3, True, 10)
    with pytest.raises(ValueError, match="gamma"):
        ExponentialCyclicalLearningRate(1e-3, 1e-2, 10, gamma=2.0)


def test_public_names():
    assert tenfold.schedules.CyclicalLearningRate is CyclicalLearningRate
    assert "CyclicalLearningRate" in tenfold.registry.list("schedules")


def test_triangular2_by_iterations_logs_to_tensorboard(tmp_path):
    # tensorflow/addons#2593: this schedule broke TensorBoard's learning-rate logging
    x, y = _data()
    model = _model(Triangular2CyclicalLearningRate(1e-3, 1e-2, 4, scale_mode="iterations"))
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    assert np.all(np.isfinite(history.history["loss"]))
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))


def test_exp_range_power_in_float64_log():
    # bckenstler/CLR's float64 formula at gamma 0.99994, step 17000 gives 0.0019014598;
    # rounding gamma to float32 before the power gave 0.0019011246
    base, high, step_size, gamma, step = 0.001, 0.006, 2000, 0.99994, 17000
    cycle = np.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    expected = base + (high - base) * max(0.0, 1 - x) * gamma**step
    assert round(expected, 10) == 0.0019014598
    for schedule in (
        ExponentialCyclicalLearningRate(base, high, step_size, gamma=gamma),
        CyclicalLearningRate(base, high, step_size, mode="exp_range", gamma=gamma),
    ):
        for dtype in ("int64", "float32"):
            got = float(schedule(np.asarray(step, dtype)))
            assert abs(got - expected) / expected < 1e-6

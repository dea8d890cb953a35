"""OneCycle against the 1cycle policy written out in NumPy."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tenfold.schedules import OneCycle


def reference(step, high, total, warm=0.3, div=25.0, final_div=1e4, anneal="cos"):
    """1cycle (Smith & Topin; PyTorch's OneCycleLR phases) in float64, independent of tenfold."""
    low, final = high / div, high / div / final_div
    peak, last = warm * total - 1, total - 1

    def interp(a, b, p):
        if anneal == "cos":
            return b + (a - b) / 2 * (1 + np.cos(np.pi * p))
        return a + (b - a) * p

    out = []
    for s in np.asarray(step, dtype=np.float64):
        s = min(s, last)
        if s <= peak:
            out.append(interp(low, high, s / peak))
        else:
            out.append(interp(high, final, (s - peak) / (last - peak)))
    return np.array(out)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_matches_reference(anneal, dtype):
    schedule = OneCycle(0.4, 500, warmup_fraction=0.25, anneal=anneal)
    steps = np.arange(0, 700, 9)
    got = [float(schedule(tf.constant(s, dtype))) for s in steps]
    np.testing.assert_allclose(got, reference(steps, 0.4, 500, 0.25, anneal=anneal),
                               rtol=2e-5, atol=1e-10)


def test_shape_of_the_cycle():
    s = OneCycle(1.0, 100)
    values = np.array([float(s(i)) for i in range(100)])
    assert values.argmax() == 29 and np.isclose(values.max(), 1.0)
    assert np.all(np.diff(values[:30]) > 0) and np.all(np.diff(values[29:]) < 0)
    np.testing.assert_allclose(values[0], 1.0 / 25, rtol=1e-6)
    np.testing.assert_allclose(values[-1], 1.0 / 25 / 1e4, rtol=1e-4)
    assert float(s(10_000)) == pytest.approx(values[-1], rel=1e-4)


def test_cycle_fraction_spans_zero_to_one_in_each_phase():
    s = OneCycle(1.0, 100)
    f = np.array([float(s.cycle_fraction(i)) for i in range(100)])
    assert f.min() >= 0 and f.max() <= 1
    np.testing.assert_allclose([f[0], f[29], f[99]], [0.0, 1.0, 0.0], atol=1e-6)


def test_jit_compiled():
    s = OneCycle(0.1, 50)
    step = tf.Variable(0, dtype=tf.int64)
    fn = tf.function(lambda: s(step), jit_compile=True)
    got = []
    for i in range(0, 60, 5):
        step.assign(i)
        got.append(float(fn()))
    np.testing.assert_allclose(got, reference(np.arange(0, 60, 5), 0.1, 50), rtol=2e-5)


def test_config_round_trip():
    s = OneCycle(0.3, 1000, warmup_fraction=0.4, div_factor=10.0, final_div_factor=100.0,
                 anneal="linear")
    config = s.get_config()
    assert json.loads(json.dumps(config)) == config
    assert OneCycle.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((0.0, 100), {}, "maximal_learning_rate must be a number > 0"),
        ((0.1, 1), {}, "total_steps must be an integer >= 2, received 1"),
        ((0.1, 10.5), {}, "total_steps must be an integer, received 10.5"),
        ((0.1, 100), {"warmup_fraction": 1.0}, "warmup_fraction must be a number > 0 and < 1, received 1.0"),
        ((0.1, 100), {"div_factor": 0.5}, "div_factor must be a number >= 1"),
        ((0.1, 100), {"final_div_factor": 0.0}, "final_div_factor must be a number >= 1"),
        ((0.1, 100), {"anneal": "cosine"}, "anneal must be one of .*received 'cosine'"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneCycle(*args, **kwargs)

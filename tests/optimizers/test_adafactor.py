"""Adafactor against an independent float64 NumPy version of Shazeer & Stern 2018."""

import keras
import numpy as np
import pytest

import tenfold
from tenfold.ops import factored_dims
from tenfold.optimizers import Adafactor, state_bytes


def rms(a):
    return np.sqrt(np.mean(np.square(a)))


def reference_adafactor(x0, grads, *, factor_axes=None, learning_rate=None, relative_step=True,
                        beta_1=None, decay_rate=0.8, eps1=1e-30, eps2=1e-3, clip=1.0,
                        scale=True):
    """Alg. 4 (factored, with the paper's row/column *sums*) and Alg. 5 (unfactored)."""
    x = np.asarray(x0, np.float64).copy()
    cap = 1e-2 if learning_rate is None else learning_rate
    R = C = V = m = None
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        b2 = 1.0 - t ** (-decay_rate)
        g2 = g * g + eps1
        if factor_axes is not None:
            a, b = factor_axes
            g2m = np.moveaxis(g2, (a, b), (-2, -1))  # (..., n, m)
            row = g2m.sum(-1)
            col = g2m.sum(-2)
            R = (1 - b2) * row if R is None else b2 * R + (1 - b2) * row
            C = (1 - b2) * col if C is None else b2 * C + (1 - b2) * col
            vm = R[..., :, None] * C[..., None, :] / R.sum(-1)[..., None, None]
            v_hat = np.moveaxis(vm, (-2, -1), (a, b))
        else:
            V = (1 - b2) * g2 if V is None else b2 * V + (1 - b2) * g2
            v_hat = V
        u = g / np.sqrt(v_hat)
        if clip is not None:
            u = u / max(1.0, rms(u) / clip)
        rho = min(cap, 1.0 / np.sqrt(t)) if relative_step else learning_rate
        alpha = max(eps2, rms(x)) * rho if scale else rho
        update = alpha * u
        if beta_1 is not None:
            m = (1 - beta_1) * update if m is None else beta_1 * m + (1 - beta_1) * update
            update = m
        x = x - update
    return x


def run(optimizer, x0, grads):
    var = keras.Variable(np.asarray(x0, "float32"))
    optimizer.build([var])
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(np.asarray(g, "float32"))], [var])
    return np.asarray(var)


def random_problem(shape, steps=4, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=shape)
    grads = [rng.normal(size=shape) * rng.uniform(0.1, 3.0) for _ in range(steps)]
    return x0, grads


CASES = [
    # shape, min_dim_size_to_factor, expected factored axes
    ((12, 9), 4, (0, 1)),            # dense kernel
    ((6, 2, 7), 5, (0, 2)),          # factored axes not the last two
    ((3, 3, 8, 16), 8, (2, 3)),      # conv kernel HWIO
    ((3, 3, 8, 16), 128, None),      # too small to factor: full second moment
    ((17,), 4, None),                # vector
    ((), 4, None),                   # scalar
]


@pytest.mark.parametrize("shape,min_dim,axes", CASES, ids=[str(c[0]) + f"-{c[1]}" for c in CASES])
def test_matches_paper_reference(shape, min_dim, axes):
    assert factored_dims(shape, min_dim_size_to_factor=min_dim) == axes
    x0, grads = random_problem(shape, seed=len(shape))
    got = run(Adafactor(min_dim_size_to_factor=min_dim), x0, grads)
    want = reference_adafactor(x0, grads, factor_axes=axes)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    "kwargs,ref",
    [
        (dict(beta_1=0.9), dict(beta_1=0.9)),
        (dict(learning_rate=0.3, relative_step=False), dict(learning_rate=0.3, relative_step=False)),
        (dict(learning_rate=0.5), dict(learning_rate=0.5)),  # cap above 1/sqrt(t) for t ≥ 4
        (dict(multiply_by_parameter_scale=False, clip_threshold=None, decay_rate=0.5),
         dict(scale=False, clip=None, decay_rate=0.5)),
        (dict(epsilon_1=1e-3, epsilon_2=0.5, clip_threshold=0.2),
         dict(eps1=1e-3, eps2=0.5, clip=0.2)),
    ],
)
def test_options_match_reference(kwargs, ref):
    x0, grads = random_problem((10, 6), steps=6, seed=3)
    got = run(Adafactor(min_dim_size_to_factor=4, **kwargs), x0, grads)
    want = reference_adafactor(x0, grads, factor_axes=(0, 1), **ref)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_factored_false_keeps_full_moment():
    x0, grads = random_problem((10, 6), seed=4)
    got = run(Adafactor(factored=False, min_dim_size_to_factor=1), x0, grads)
    np.testing.assert_allclose(got, reference_adafactor(x0, grads), rtol=2e-5, atol=2e-6)


def test_schedule_is_used_as_is():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5)
    x0, grads = random_problem((5,), steps=3, seed=5)
    got = run(Adafactor(schedule, multiply_by_parameter_scale=False, clip_threshold=None), x0, grads)
    x = np.asarray(x0, np.float64)
    V = None
    for t, g in enumerate(grads, start=1):
        b2 = 1 - t ** -0.8
        V = (1 - b2) * (g * g + 1e-30) if V is None else b2 * V + (1 - b2) * (g * g + 1e-30)
        x = x - 0.05 * 0.5 ** (t - 1) * g / np.sqrt(V)
    np.testing.assert_allclose(got, x, rtol=2e-5, atol=2e-6)


def test_equals_keras_adafactor_where_keras_is_the_paper():
    # Keras factors the last two axes and uses the same relative step: with both axes of a
    # matrix ≥ 128 (factored here too) and for a vector the updates coincide.
    rng = np.random.default_rng(6)
    shapes = [(130, 129), (7,)]
    x0 = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(3)]
    results = []
    for opt in (Adafactor(0.01), keras.optimizers.Adafactor(0.01)):
        variables = [keras.Variable(x) for x in x0]
        opt.build(variables)
        for g in grads:
            opt.apply([keras.ops.convert_to_tensor(a) for a in g], variables)
        results.append([np.asarray(v) for v in variables])
        opt_bytes = state_bytes(opt)
        if isinstance(opt, Adafactor):
            ours = opt_bytes
        else:
            theirs = opt_bytes
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours < theirs / 50


def test_state_is_only_what_the_paper_keeps():
    model = keras.Sequential([
        keras.Input((256,)),
        keras.layers.Dense(512, name="hidden"),
        keras.layers.Dense(10, name="classifier"),
    ])
    opt = Adafactor()
    opt.build(model.trainable_variables)
    shapes = sorted(tuple(v.shape) for v in opt.variables)
    # step, lr; hidden kernel → row (256,) and col (512,); hidden bias (512,) full;
    # classifier kernel (512, 10) too small to factor → full; classifier bias (10,)
    assert shapes == sorted([(), (), (256,), (512,), (512,), (512, 10), (10,)])
    floats = 256 + 512 + 512 + 512 * 10 + 10
    assert state_bytes(opt) == 4 * floats + 8 + 4
    opt_m = Adafactor(beta_1=0.9)
    opt_m.build(model.trainable_variables)
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert state_bytes(opt_m) == state_bytes(opt) + 4 * params
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32"
               for v in opt.variables if v.name != "iteration")


def test_float32_statistics_for_bfloat16_weights():
    var = keras.Variable(np.ones((8, 4), "float32"), dtype="bfloat16")
    opt = Adafactor(min_dim_size_to_factor=2, beta_1=0.5)
    opt.build([var])
    stats = [v for v in opt.variables if v.name not in ("iteration", "learning_rate")]
    assert stats and all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in stats)
    opt.apply([keras.ops.ones((8, 4), "bfloat16")], [var])
    assert keras.backend.standardize_dtype(var.dtype) == "bfloat16"
    assert np.all(np.asarray(keras.ops.cast(var, "float32")) < 1.0)


def test_gradient_accumulation_averages_then_steps():
    x0, grads = random_problem((9, 6), steps=2, seed=7)
    got = run(Adafactor(min_dim_size_to_factor=4, gradient_accumulation_steps=2), x0, grads)
    want = reference_adafactor(x0, [(grads[0] + grads[1]) / 2], factor_axes=(0, 1))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_under_loss_scale_optimizer():
    x0, grads = random_problem((9, 6), steps=3, seed=8)
    opt = keras.optimizers.LossScaleOptimizer(Adafactor(min_dim_size_to_factor=4))
    scale = float(opt.initial_scale)
    got = run(opt, x0, [g * scale for g in grads])
    want = reference_adafactor(x0, grads, factor_axes=(0, 1))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_get_config_has_every_argument_and_default_learning_rate_is_none():
    config = Adafactor().get_config()
    for key in ("learning_rate", "relative_step", "beta_1", "decay_rate", "epsilon_1",
                "epsilon_2", "clip_threshold", "multiply_by_parameter_scale", "factored",
                "min_dim_size_to_factor"):
        assert key in config
    assert config["learning_rate"] is None
    assert Adafactor.from_config(config).get_config() == config
    assert tenfold.registry.get("optimizers", "Adafactor") is Adafactor


@pytest.mark.parametrize(
    "kwargs,exc,text",
    [
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(learning_rate="fast"), TypeError, "learning_rate"),
        (dict(learning_rate=None, relative_step=False), ValueError, "relative_step"),
        (dict(beta_1=1.0), ValueError, "beta_1"),
        (dict(decay_rate=0.0), ValueError, "decay_rate"),
        (dict(epsilon_1=-1.0), ValueError, "epsilon_1"),
        (dict(clip_threshold=0.0), ValueError, "clip_threshold"),
        (dict(min_dim_size_to_factor=0), ValueError, "min_dim_size_to_factor"),
        (dict(relative_step="yes"), TypeError, "relative_step"),
    ],
)
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        Adafactor(**kwargs)


def test_zero_gradient_rows_and_columns_stay_finite():
    # dead input pixels (zero rows) and dead ReLU units (zero columns): V̂ = R C / mean(R)
    # would underflow to 0 in float32 there and give 0/0 = NaN
    rng = np.random.default_rng(9)
    x0 = rng.normal(size=(8, 6)) * 0.05
    g = rng.normal(size=(8, 6)) * 1e-3
    g[:3] = 0.0
    g[:, :2] = 0.0
    got = run(Adafactor(min_dim_size_to_factor=4), x0, [g, g])
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[:3], np.asarray(x0[:3], "float32"))
    np.testing.assert_allclose(got, reference_adafactor(x0, [g, g], factor_axes=(0, 1)), rtol=2e-5, atol=1e-7)

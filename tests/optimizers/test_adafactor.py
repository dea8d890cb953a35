"""Adafactor against an independent float64 NumPy version of Shazeer & Stern 2018."""

import keras
import numpy as np
import pytest

import tenfold
from tenfold.ops import factored_dims
from tenfold.ops.factored import factored_split
from tenfold.optimizers import Adafactor, state_bytes


def rms(a):
    return np.sqrt(np.mean(np.square(a)))


def bfloat16_round(a):
    """float64 → float32 → bfloat16 (round to nearest, ties to even), back as float64."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def bfloat16_truncate(a):
    bits = np.asarray(a, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32).astype(np.float64)


def reference_adafactor(x0, grads, *, factor_axes=None, learning_rate=None, relative_step=True,
                        beta_1=None, decay_rate=0.8, eps1=1e-30, eps2=1e-3, clip=1.0,
                        scale=True, momentum_store=None, state=None):
    """Alg. 4 (factored, with the paper's row/column *sums*) and Alg. 5 (unfactored).

    ``momentum_store`` rounds the stored momentum (the applied update stays exact);
    ``state`` (a dict) receives the final R, C (as sums), V and m.
    """
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
            update = (1 - beta_1) * update if m is None else beta_1 * m + (1 - beta_1) * update
            m = update if momentum_store is None else momentum_store(update)
        x = x - update
    if state is not None:
        state.update(R=R, C=C, V=V, m=m)
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


@pytest.mark.all_backends
@pytest.mark.parametrize("shape,min_dim,axes", CASES, ids=[str(c[0]) + f"-{c[1]}" for c in CASES])
def test_matches_paper_reference(shape, min_dim, axes):
    assert factored_dims(shape, min_dim_size_to_factor=min_dim) == axes
    x0, grads = random_problem(shape, seed=len(shape))
    got = run(Adafactor(min_dim_size_to_factor=min_dim, factoring="largest_axes"), x0, grads)
    want = reference_adafactor(x0, grads, factor_axes=axes)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.all_backends
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


@pytest.mark.all_backends
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
                "min_dim_size_to_factor", "momentum_dtype", "factoring"):
        assert key in config
    assert config["learning_rate"] is None
    assert (config["momentum_dtype"], config["factoring"]) == ("float32", "by_layer")
    other = Adafactor(beta_1=0.9, momentum_dtype="bfloat16", factoring="largest_axes")
    assert Adafactor.from_config(other.get_config()).get_config() == other.get_config()
    assert Adafactor.from_config(config).get_config() == config
    assert tenfold.registry.get("optimizers", "Adafactor") is Adafactor


@pytest.mark.all_backends
@pytest.mark.parametrize(
    "kwargs,exc,message",
    [
        (dict(learning_rate=-0.1), ValueError, "learning_rate must be a number > 0, received -0.1."),
        (dict(learning_rate=float("inf")), ValueError,
         "learning_rate must be a finite number, received inf."),
        (dict(learning_rate="fast"), TypeError,
         "learning_rate must be a finite number, received 'fast' of type str. None or a "
         "LearningRateSchedule is accepted too."),
        (dict(learning_rate=None, relative_step=False), ValueError,
         "learning_rate=None means the relative step min(1e-2, 1/sqrt(t)), which needs "
         "relative_step=True; received relative_step=False."),
        (dict(relative_step="yes"), TypeError,
         "relative_step must be True or False, received 'yes' of type str."),
        (dict(beta_1=1.0), ValueError, "beta_1 must be a number >= 0 and < 1, received 1.0."),
        (dict(beta_1=-0.1), ValueError, "beta_1 must be a number >= 0 and < 1, received -0.1."),
        (dict(beta_1=float("nan")), ValueError,
         "beta_1 must be a finite number or None, received nan."),
        (dict(decay_rate=0.0), ValueError,
         "decay_rate must be a number > 0 and <= 1, received 0.0."),
        (dict(decay_rate=1.5), ValueError,
         "decay_rate must be a number > 0 and <= 1, received 1.5."),
        (dict(epsilon_1=0.0), ValueError, "epsilon_1 must be a number > 0, received 0.0."),
        (dict(epsilon_1=-1.0), ValueError, "epsilon_1 must be a number > 0, received -1.0."),
        (dict(epsilon_2=float("inf")), ValueError,
         "epsilon_2 must be a finite number, received inf."),
        (dict(clip_threshold=0.0), ValueError,
         "clip_threshold must be a number > 0, received 0.0."),
        (dict(clip_threshold=float("inf")), ValueError,
         "clip_threshold must be a finite number or None, received inf."),
        (dict(multiply_by_parameter_scale=1), TypeError,
         "multiply_by_parameter_scale must be True or False, received 1 of type int."),
        (dict(factored="no"), TypeError, "factored must be True or False, received 'no'"),
        (dict(min_dim_size_to_factor=0), ValueError,
         "min_dim_size_to_factor must be an integer >= 1, received 0."),
        (dict(min_dim_size_to_factor=2.5), ValueError,
         "min_dim_size_to_factor must be an integer, received 2.5."),
        (dict(min_dim_size_to_factor=True), TypeError,
         "min_dim_size_to_factor must be an integer, received the bool True."),
        (dict(momentum_dtype="float16"), ValueError,
         "momentum_dtype must be one of 'float32', 'bfloat16', received 'float16'."),
        (dict(factoring="by_layers"), ValueError,
         "factoring must be one of 'by_layer', 'largest_axes', received 'by_layers'. "
         "Did you mean 'by_layer'?"),
    ],
)
def test_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc) as info:
        Adafactor(**kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_accepted_edge_values():
    opt = Adafactor(np.float32(0.5), beta_1=0.0, decay_rate=1.0, min_dim_size_to_factor=3.0)
    assert (opt.beta_1, opt.decay_rate, opt.min_dim_size_to_factor) == (0.0, 1.0, 3)
    assert isinstance(opt.min_dim_size_to_factor, int)
    opt.build([keras.Variable(np.ones((4, 4), "float32"))])
    assert not any(v.name.endswith("_m") for v in opt.variables)  # beta_1 = 0: no slot


@pytest.mark.all_backends
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


# ---- factoring by layer -------------------------------------------------------------------

GROUPED = [
    # shape, min_dim, cut: (d1..d_cut) x (rest)
    ((16, 4, 5), 8, 1),          # EinsumDense / MHA query kernel (in, heads, dim): 16 x 20
    ((4, 5, 16), 8, 2),          # MHA output kernel (heads, dim, out): 20 x 16
    ((3, 3, 4, 12), 8, 3),       # Conv2D (kh, kw, in, out): 36 x 12
    ((3, 6, 10), 8, 2),          # Conv1D (k, in, out): 18 x 10
    ((9, 14), 8, 1),             # Dense
]


@pytest.mark.all_backends
@pytest.mark.parametrize("shape,min_dim,cut", GROUPED, ids=[str(c[0]) for c in GROUPED])
def test_by_layer_factors_the_grouped_matrix(shape, min_dim, cut):
    assert factored_split(shape, min_dim_size_to_factor=min_dim) == cut
    n = int(np.prod(shape[:cut]))
    x0, grads = random_problem(shape, steps=5, seed=len(shape) + 10)
    opt = Adafactor(min_dim_size_to_factor=min_dim, beta_1=0.5)
    got = run(opt, x0, grads)
    # the reference sees the tensor as the (input group) x (output group) matrix
    state = {}
    want = reference_adafactor(
        x0.reshape(n, -1), [g.reshape(n, -1) for g in grads], factor_axes=(0, 1), beta_1=0.5,
        state=state,
    ).reshape(shape)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    m_cols = int(np.prod(shape[cut:]))
    row, col = np.asarray(opt._row[0]), np.asarray(opt._col[0])
    assert row.shape == (n,) and col.shape == (m_cols,)
    np.testing.assert_allclose(row, state["R"] / m_cols, rtol=2e-5)  # means, the paper's sums
    np.testing.assert_allclose(col, state["C"] / n, rtol=2e-5)
    # and it is not the largest-axes rule (which keeps the small axes in R and C)
    other = run(Adafactor(min_dim_size_to_factor=min_dim, beta_1=0.5, factoring="largest_axes"),
                x0, grads)
    if len(shape) > 2:
        assert np.max(np.abs(other - got)) > 1e-4


def test_by_layer_rule_on_keras_layers():
    seq = keras.Input((16, 256))
    x = keras.layers.MultiHeadAttention(8, 32, name="mha")(seq, seq)
    x = keras.layers.Conv1D(512, 3, name="conv1d")(x)
    image = keras.Input((8, 8, 256))
    y = keras.layers.Conv2D(128, 3, name="conv2d")(image)
    y = keras.layers.Conv2D(64, 1, name="narrow")(y)
    y = keras.layers.DepthwiseConv2D(3, name="depthwise")(y)
    model = keras.Model([seq, image], [x, y])
    cuts = {v.path: factored_split(v.shape) for v in model.trainable_variables
            if len(v.shape) >= 2}
    assert cuts == {
        "mha/query/kernel": 1, "mha/key/kernel": 1, "mha/value/kernel": 1,  # 256 x (8·32)
        "mha/query/bias": None, "mha/key/bias": None, "mha/value/bias": None,  # 8 x 32
        "mha/attention_output/kernel": 2,                                 # (8·32) x 256
        "conv1d/kernel": 2,                                                # (3·256) x 512
        "conv2d/kernel": 3,                                                # (3·3·256) x 128
        "narrow/kernel": None,                                             # 128 x 64
        "depthwise/kernel": None,                                          # 9 x 64
    }
    assert factored_split((3, 3, 1, 128)) is None  # 9 x 128: 9 < 128
    assert factored_split((128, 128, 128)) == 2    # a tie goes to the later cut
    assert factored_split((256, 8, 32), factored=False) is None
    assert factored_split((300,)) is None
    assert factored_split(()) is None


def _mha_encoder(blocks, d_model=256, heads=8, ff=1024, seq=16, vocab=1000, classes=10):
    inputs = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(vocab, d_model, name="embed")(inputs)
    for i in range(blocks):
        attn = keras.layers.MultiHeadAttention(heads, d_model // heads, name=f"mha{i}")(x, x)
        x = keras.layers.LayerNormalization(name=f"norm{i}a")(x + attn)
        h = keras.layers.Dense(ff, activation="gelu", name=f"ff{i}a")(x)
        x = keras.layers.LayerNormalization(name=f"norm{i}b")(x + keras.layers.Dense(
            d_model, name=f"ff{i}b")(h))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="classifier")(x))


def _state_ratio(model, make):
    adam = keras.optimizers.Adam()
    adam.build(model.trainable_variables)
    opt = make()
    opt.build(model.trainable_variables)
    return state_bytes(opt) / state_bytes(adam)


def test_state_on_attention_encoders():
    two, six = _mha_encoder(2), _mha_encoder(6)
    free = _state_ratio(two, Adafactor)
    paper = _state_ratio(two, lambda: Adafactor(factoring="largest_axes"))
    assert free < 0.02 < 0.1 < paper   # the paper's rule keeps the attention kernels' V
    assert _state_ratio(six, Adafactor) <= 0.02
    bf16 = _state_ratio(six, lambda: Adafactor(beta_1=0.9, momentum_dtype="bfloat16"))
    f32 = _state_ratio(six, lambda: Adafactor(beta_1=0.9))
    assert bf16 <= 0.26 < 0.5 <= f32


def test_state_on_resnet50_with_bfloat16_momentum():
    model = keras.applications.ResNet50(weights=None)
    assert _state_ratio(model, lambda: Adafactor(beta_1=0.9, momentum_dtype="bfloat16")) <= 0.26


# ---- bfloat16 momentum --------------------------------------------------------------------

@pytest.mark.all_backends
@pytest.mark.parametrize("shape,min_dim", [((12, 10), 4), ((7,), 4), ((3, 3, 4, 8), 8)], ids=str)
def test_bfloat16_momentum_matches_rounded_reference(shape, min_dim):
    x0, grads = random_problem(shape, steps=6, seed=20 + len(shape))
    opt = Adafactor(0.05, beta_1=0.9, momentum_dtype="bfloat16", min_dim_size_to_factor=min_dim)
    got = run(opt, x0, grads)
    m = opt._momentum[0]
    assert keras.backend.standardize_dtype(m.dtype) == "bfloat16"
    cut = factored_split(shape, min_dim_size_to_factor=min_dim)
    n = int(np.prod(shape[:cut])) if cut else None
    as_matrix = (lambda a: a.reshape(n, -1)) if cut else (lambda a: a)
    kw = dict(factor_axes=(0, 1) if cut else None, learning_rate=0.05, beta_1=0.9)
    state = {}
    want = reference_adafactor(as_matrix(x0), [as_matrix(g) for g in grads],
                               momentum_store=bfloat16_round, state=state, **kw).reshape(shape)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    stored = np.asarray(keras.ops.cast(m, "float32"), np.float64)
    np.testing.assert_allclose(stored, state["m"].reshape(shape), rtol=1e-6, atol=0)
    # the rounding matters and is to nearest even, not truncation nor float32
    truncated = reference_adafactor(as_matrix(x0), [as_matrix(g) for g in grads],
                                    momentum_store=bfloat16_truncate, **kw).reshape(shape)
    full = reference_adafactor(as_matrix(x0), [as_matrix(g) for g in grads], **kw).reshape(shape)
    assert np.max(np.abs(truncated - got)) > 20 * np.max(np.abs(want - got))
    assert np.max(np.abs(full - got)) > 20 * np.max(np.abs(want - got))


@pytest.mark.all_backends
def test_bfloat16_momentum_state_bytes():
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512)])
    params = model.count_params()
    sizes = {}
    for dtype in ("float32", "bfloat16"):
        opt = Adafactor(beta_1=0.9, momentum_dtype=dtype)
        opt.build(model.trainable_variables)
        sizes[dtype] = state_bytes(opt)
    free = Adafactor()
    free.build(model.trainable_variables)
    assert sizes["float32"] - state_bytes(free) == 4 * params
    assert sizes["bfloat16"] - state_bytes(free) == 2 * params


def test_bfloat16_momentum_trains_in_fit_with_jit():
    rng = np.random.default_rng(30)
    x = rng.normal(size=(64, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(Adafactor(0.1, beta_1=0.9, momentum_dtype="bfloat16", min_dim_size_to_factor=4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


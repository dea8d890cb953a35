"""unitwise_norm and adaptive_clip against NumPy versions of Brock et al. 2021, Eq. 3."""

import numpy as np
import pytest

from tenfold.ops import adaptive_clip, factored_dims, factored_second_moment, unitwise_norm

pytestmark = pytest.mark.all_backends  # pure keras.ops: also under JAX and PyTorch


def np_unitwise_norm(x, axes):
    return np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=axes, keepdims=True))


def np_agc(g, w, clipping, eps, axes):
    g = np.asarray(g, np.float64)
    w_norm = np.maximum(np_unitwise_norm(w, axes), eps)
    g_norm = np_unitwise_norm(g, axes)
    out = g.copy()
    # unit by unit, the way the paper states it
    ratio = g_norm / w_norm
    factor = np.where(ratio > clipping, clipping * w_norm / np.where(g_norm > 0, g_norm, 1), 1.0)
    return out * factor


SHAPES = {
    "scalar": ((), ()),
    "vector": ((7,), (0,)),
    "dense": ((6, 5), (0,)),
    "conv1d": ((3, 4, 5), (0, 1)),
    "conv2d": ((3, 3, 4, 8), (0, 1, 2)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_unitwise_norm_default_axes(name):
    shape, axes = SHAPES[name]
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    got = np.asarray(unitwise_norm(x))
    want = np.abs(x) if not axes else np_unitwise_norm(x, axes)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_unitwise_norm_axis_override():
    x = np.random.default_rng(1).normal(size=(3, 3, 8, 1)).astype("float32")  # depthwise
    np.testing.assert_allclose(np.asarray(unitwise_norm(x, axis=[0, 1])), np_unitwise_norm(x, (0, 1)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(unitwise_norm(x, axis=-2)), np_unitwise_norm(x, (2,)), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("clipping", [0.01, 0.5])
def test_adaptive_clip_matches_reference(name, clipping):
    shape, axes = SHAPES[name]
    rng = np.random.default_rng(2)
    w = rng.normal(size=shape).astype("float32")
    # some units far above the threshold, some below
    g = (rng.normal(size=shape) * rng.choice([1e-4, 1.0], size=shape)).astype("float32")
    got = np.asarray(adaptive_clip(g, w, clipping=clipping, epsilon=1e-3))
    want = np_agc(g, w, clipping, 1e-3, axes if axes else None) if axes else None
    if not axes:  # scalar: the unit is the scalar itself
        ratio = abs(float(g)) / max(abs(float(w)), 1e-3)
        want = g * (clipping * max(abs(float(w)), 1e-3) / abs(float(g)) if ratio > clipping else 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_adaptive_clip_properties():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(10, 4)).astype("float32")
    g = rng.normal(size=(10, 4)).astype("float32")
    clipped = np.asarray(adaptive_clip(g, w, clipping=0.1))
    ratio = np_unitwise_norm(clipped, (0,)) / np.maximum(np_unitwise_norm(w, (0,)), 1e-3)
    assert np.all(ratio <= 0.1 * (1 + 1e-5))
    # a huge threshold leaves the gradient as is; directions are never changed
    np.testing.assert_array_equal(np.asarray(adaptive_clip(g, w, clipping=1e9)), g)
    cos = np.sum(clipped * g, 0) / (np.linalg.norm(clipped, axis=0) * np.linalg.norm(g, axis=0))
    np.testing.assert_allclose(cos, 1.0, rtol=1e-6)
    # zero weights: epsilon floors the weight norm; zero gradients stay zero
    np.testing.assert_array_equal(np.asarray(adaptive_clip(np.zeros((3, 2), "float32"), np.zeros((3, 2), "float32"))), 0)
    tiny = np.asarray(adaptive_clip(np.ones((4, 1), "float32"), np.zeros((4, 1), "float32"), clipping=0.01, epsilon=1e-3))
    np.testing.assert_allclose(np.linalg.norm(tiny), 1e-5, rtol=1e-5)


def test_adaptive_clip_keeps_dtype():
    import keras

    g = keras.ops.ones((4, 3), dtype="bfloat16")
    w = keras.ops.ones((4, 3), dtype="float32")
    assert keras.backend.standardize_dtype(adaptive_clip(g, w, clipping=0.1).dtype) == "bfloat16"


@pytest.mark.parametrize(
    "kwargs,text",
    [(dict(clipping=0.0), "clipping"), (dict(clipping=-1.0), "clipping"), (dict(epsilon=-1.0), "epsilon"),
     (dict(axis=5), "axis")],
)
def test_bad_arguments(kwargs, text):
    x = np.ones((3, 2), "float32")
    with pytest.raises(ValueError, match=text):
        adaptive_clip(x, x, **kwargs)


def test_factored_helpers():
    assert factored_dims((4096, 4096)) == (0, 1)
    assert factored_dims((128, 4, 200)) == (0, 2)
    assert factored_dims((5, 5), min_dim_size_to_factor=5) == (0, 1)
    assert factored_dims((5, 5), factored=False) is None
    assert factored_dims((300,)) is None
    rng = np.random.default_rng(4)
    g2 = rng.uniform(0.5, 2.0, size=(3, 5, 4))  # factor axes 0 and 2 (kept axis 1)
    r, c = g2.mean(axis=2), g2.mean(axis=0)
    got = np.asarray(factored_second_moment(r.astype("float32"), c.astype("float32"), (0, 2)))
    rs, cs = g2.sum(axis=2), g2.sum(axis=0)  # the paper's sums, per slice of axis 1
    want = np.stack([np.outer(rs[:, j], cs[j]) / rs[:, j].sum() for j in range(5)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_clip_factor_times_gradient_is_the_clip_and_is_linear_in_parts():
    from tenfold.ops.clipping import clip_factor

    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 3, 4, 2)).astype("float32")
    parts = [(rng.normal(size=w.shape) * 2).astype("float32") for _ in range(2)]
    total = parts[0] + parts[1]
    factor = np.asarray(clip_factor(total, w, clipping=0.05, axis=[0, 1]))
    assert factor.shape == (1, 1, 4, 2) and np.all(factor <= 1.0) and np.any(factor < 1.0)
    want = np_agc(total, w, 0.05, 1e-3, (0, 1))
    # the clip of the sum is the sum of the parts times the factor of the sum (what AGC
    # relies on under a multi-replica strategy)
    np.testing.assert_allclose(factor * parts[0] + factor * parts[1], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(adaptive_clip(total, w, clipping=0.05, axis=[0, 1])), want,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "equation,axes",
    [("ab,bc->ac", (0,)), ("abc,cde->abde", (0,)), ("abcd,cde->abe", (0, 1)),
     ("abc,cd->abd", (0,)), ("...b,bc->...c", (0,)), ("ab,bcd->acd", (0,)), ("abc,bcd->ad", (0, 1)),
     ("abc,ced->abde", (0,))],
)
def test_einsum_kernel_axes(equation, axes):
    from tenfold.ops.clipping import einsum_kernel_axes

    assert einsum_kernel_axes(equation) == axes


def test_unit_axes_rule_and_errors():
    from tenfold.ops.clipping import einsum_kernel_axes, unit_axes

    assert unit_axes(0, None) == () and unit_axes(2, None) == (0,) and unit_axes(5, None) == (0, 1, 2, 3)
    assert unit_axes(4, [-1, 1, 1]) == (1, 3)
    for bad in ([2], [0, 1.0], "0", [True]):
        with pytest.raises(ValueError, match="axis"):
            unit_axes(2, bad)
    with pytest.raises(ValueError, match="equation must be an einsum string"):
        einsum_kernel_axes("ab->b")


@pytest.mark.parametrize("kwargs", [dict(clipping=float("nan")), dict(clipping=float("inf")),
                                    dict(epsilon=float("nan")), dict(clipping=True)])
def test_non_finite_arguments(kwargs):
    x = np.ones((3, 2), "float32")
    with pytest.raises(ValueError, match="must be a finite number"):
        adaptive_clip(x, x, **kwargs)

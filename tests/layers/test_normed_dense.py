"""NormedDense: cosine similarity between inputs and class weight vectors."""

import keras
import numpy as np
import pytest

from tenfold.layers import NormedDense
from tenfold.testing import to_numpy

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends


def test_cosine_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    layer = NormedDense(3)
    out = to_numpy(layer(x.astype("float32")))
    w = layer.kernel.numpy().astype(np.float64)
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(out) <= 1 + 1e-6)


def test_invariant_to_input_and_column_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = NormedDense(2)
    a = to_numpy(layer(x))
    layer.kernel.assign(layer.kernel.numpy() * np.array([[3.0, 0.2]], "float32"))
    np.testing.assert_allclose(to_numpy(layer(5.0 * x)), a, rtol=1e-5, atol=1e-6)


def test_zero_input_is_finite_and_bf16_output():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = NormedDense(3)
    out = layer(np.zeros((2, 4), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert np.all(np.isfinite(to_numpy(keras.ops.cast(out, "float32"))))


def test_bad_input():
    with pytest.raises(ValueError, match=r"units must be an integer >= 1, received 0"):
        NormedDense(0)
    with pytest.raises(ValueError, match=r"epsilon must be a number > 0 and < 1, received 0"):
        NormedDense(3, epsilon=0)

"""The pure functions of tenfold.ops refuse bad hyper-parameters by name (tenfold._validate)."""

import math

import numpy as np
import pytest

from tenfold.ops import (
    class_balanced_weights,
    cyclical_learning_rate,
    ldam_margins,
    progressive_weights,
    sampling_weights,
    standardize_kernel,
    tau_norm_kernel,
    validate_class_counts,
)

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends

KERNEL = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: standardize_kernel(KERNEL, epsilon=0.0), ValueError, r"epsilon must be a number > 0 and < 1, received 0.0"),
        (lambda: standardize_kernel(KERNEL, epsilon=math.inf), ValueError, r"epsilon must be a finite number"),
        (lambda: class_balanced_weights([5, 2], 1.0), ValueError, r"beta must be a number >= 0 and < 1, received 1.0"),
        (lambda: class_balanced_weights([5, 2], "0.9"), TypeError, r"beta must be a finite number, received '0.9'"),
        (lambda: ldam_margins([5, 2], -1), ValueError, r"max_margin must be a number >= 0, received -1"),
        (lambda: sampling_weights([5, 2], math.nan), ValueError, r"exponent must be a finite number, received nan"),
        (lambda: progressive_weights([5, 2], 0, 0), ValueError, r"epochs must be an integer >= 1, received 0"),
        (lambda: progressive_weights([5, 2], 0.5, 3), ValueError, r"epoch must be an integer, received 0.5"),
        (lambda: tau_norm_kernel(KERNEL, math.inf), ValueError, r"tau must be a finite number, received inf"),
        (lambda: tau_norm_kernel(KERNEL, 1.0, epsilon=0), ValueError, r"epsilon must be a number > 0, received 0"),
        (lambda: cyclical_learning_rate(3, 0.1, 1.0, 10, mode="exp_range", gamma=0.0), ValueError,
         r"gamma must be a number > 0, received 0.0"),
        (lambda: validate_class_counts([3]), ValueError, r"class_counts must list the training examples of at least 2 classes"),
        (lambda: validate_class_counts(np.array([3, 0])), ValueError, r"class_counts\[1\] must be an integer >= 1, received 0"),
    ],
)
def test_bad_hyper_parameters_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_valid_values_come_back_as_python_types():
    assert validate_class_counts(np.array([[4], [2]])) == [4, 2]
    assert validate_class_counts([4.0, np.int64(2)]) == [4, 2]
    np.testing.assert_allclose(class_balanced_weights([5, 5], np.float32(0.5)), [1.0, 1.0])

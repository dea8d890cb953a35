"""The data the benchmarks train on: the bundled digits, fixed batches, synthetic arrays.

Example:
>>> x, y = synthetic((4,), 6, seed=0)
>>> x.shape, y.dtype.name
((6, 4), 'int32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tenfold._tf import tensorflow
from tenfold.data import load
from tenfold.data.loaders import load_digits_arrays


def digits(seed: int = 0) -> Any:
    """scikit-learn's bundled digits as stratified train / validation / test splits."""
    return load("digits", seed=seed)


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as ``(N, 8, 8)`` float32 images in [0, 1] and int32 labels."""
    x, y, _ = load_digits_arrays()
    return np.asarray(x, "float32").reshape(len(x), 8, 8), np.asarray(y, "int32")


def batches(x: np.ndarray, y: np.ndarray, steps: int, batch: int, seed: int) -> list[tuple[Any, Any]]:
    """``steps`` batches of ``batch`` examples as TensorFlow constants, epochs of a seeded
    permutation, so that every variant of a comparison trains on the same batches."""
    tf = tensorflow("the benchmarks' batches")
    rng = np.random.default_rng(seed)
    out = []
    order = np.array([], int)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(len(x))])
        idx, order = order[:batch], order[batch:]
        out.append((tf.constant(x[idx]), tf.constant(y[idx])))
    return out


def synthetic(shape: tuple[int, ...], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` normal inputs of ``shape`` with learnable labels: the arg-max of a fixed random
    projection of the input into 10 classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    w = rng.normal(size=(int(np.prod(shape)), 10))
    y = np.argmax(x.reshape(n, -1) @ w, axis=1).astype("int32")
    return x, y

"""Honest optimizer-state accounting."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

_ITEMSIZE = {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}


def _itemsize(dtype: Any) -> int:
    name = keras.backend.standardize_dtype(dtype)
    if name in _ITEMSIZE:
        return _ITEMSIZE[name]
    return int(np.dtype(name).itemsize)


def state_bytes(optimizer: keras.optimizers.Optimizer) -> int:
    """Bytes of every variable ``optimizer`` owns after ``build``.

    Counted from each variable's shape and dtype (bfloat16 and float16 slots, such as
    ``momentum_dtype="bfloat16"`` momentum, at 2 bytes an entry): slots, factored
    statistics, the step counter and the learning-rate variable, and those of a wrapped
    inner optimizer (``LossScaleOptimizer``, ``tenfold.optimizers.AGC``). Each variable is
    counted once.

    Raises:
        ValueError: when the optimizer has not been built yet.
        TypeError: when ``optimizer`` is not a Keras optimizer.

    Example:
    >>> opt = keras.optimizers.Adam()
    >>> opt.build([keras.Variable(np.zeros((10, 10), "float32"))])
    >>> tenfold.optimizers.state_bytes(opt)  # m and v: 2 × 100 × 4, + step (8) + lr (4)
    812
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"optimizer must be a keras.optimizers.Optimizer, received {type(optimizer).__name__}."
        )
    if not optimizer.built:
        raise ValueError(
            f"optimizer {optimizer.name!r} is not built yet: call "
            "optimizer.build(model.trainable_variables) (or train one step) first."
        )
    seen: set[int] = set()
    total = 0
    for variable in optimizer.variables:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        total += math.prod(int(d) for d in variable.shape) * _itemsize(variable.dtype)
    return total

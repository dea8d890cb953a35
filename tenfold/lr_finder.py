"""``tenfold.lr_find``: run a learning-rate range test on a compiled model.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", WACV,
    https://arxiv.org/abs/1506.01186, section 3.3 ("How can one estimate reasonable
    minimum and maximum boundary values?").
"""

from __future__ import annotations

import math
from typing import Any

import keras

from tenfold import _validate as v
from tenfold.callbacks.lr_finder import LRFinder, LRFinderResult

MAX_COUNT = 10**9  # batch sizes and steps beyond this overflow Keras' counters or never end


def _at_most(name: str, value: int) -> int:
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be at most {MAX_COUNT:,}, received {value}.")
    return value


def _is_dataset(data: Any) -> bool:
    return hasattr(data, "element_spec") and hasattr(data, "repeat")


def _check_arrays(data: Any, y: Any) -> None:
    """``data`` and ``y``: arrays (or lists / dicts of arrays) of examples, as many labels as
    examples where both say how many."""
    if y is None:
        raise ValueError("y (the labels) is required when data is an array.")
    counts = []
    for name, value in (("data", data), ("y", y)):
        shape = getattr(value, "shape", None)
        sized = hasattr(value, "__len__") if shape is None else len(shape) > 0
        if isinstance(value, (str, bytes)) or not sized:
            raise TypeError(f"{name} must be {'a batched tf.data.Dataset of (x, y) or ' if name == 'data' else ''}"
                            f"an array of examples, received {value!r} of type {type(value).__name__}.")
        count = int(shape[0]) if shape is not None else len(value)
        if not count:
            raise ValueError(f"{name} must hold at least one example, received an empty {type(value).__name__}.")
        counts.append(count if shape is not None else None)
    if None not in counts and counts[0] != counts[1]:
        raise ValueError(f"y must have one label per example of data: {counts[0]} examples, received {counts[1]} labels.")


def lr_find(
    model: keras.Model,
    data: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    min_learning_rate: float = 1e-7,
    max_learning_rate: float = 10.0,
    num_steps: int = 100,
    mode: str = "exponential",
    smoothing: float = 0.98,
    divergence_threshold: float = 4.0,
    verbose: int | str = 0,
) -> LRFinderResult:
    """Sweep the learning rate of a compiled model and suggest bounds for a cyclical schedule.

    Trains ``model`` for up to ``num_steps`` steps while the rate grows from
    ``min_learning_rate`` to ``max_learning_rate`` (see :class:`tenfold.callbacks.LRFinder`),
    stops early when the smoothed loss diverges, then restores the model's weights and its
    optimizer's state and learning rate exactly.

    Args:
        model: a compiled ``keras.Model`` (its optimizer and loss are used as they are).
        data: a batched ``tf.data.Dataset`` of ``(x, y)`` (repeated as needed), or an array
            ``x`` with labels ``y``.
        y: labels when ``data`` is an array.
        batch_size: int. Batch size for arrays. Defaults to 32.
        min_learning_rate, max_learning_rate: float. Range of the sweep.
        num_steps: int >= 2. Steps of the sweep. Defaults to 100.
        mode: ``"exponential"`` (default) or ``"linear"``.
        smoothing: float in [0, 1). Loss moving-average factor. Defaults to 0.98.
        divergence_threshold: float > 1. Stop at this multiple of the best loss. Defaults to 4.
        verbose: ``"auto"``, 0, 1 or 2. Passed to ``fit``.

    Returns:
        A :class:`tenfold.callbacks.LRFinderResult`: the curve, the steepest-descent rate,
        the rate at the minimum, and suggested ``(initial, maximal)`` bounds.

    Example:
    >>> x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    >>> y = x @ np.ones((4, 1), "float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(), "mse")
    >>> result = tenfold.lr_find(model, x, y, min_learning_rate=1e-4, max_learning_rate=10.0,
    ...                          num_steps=40, batch_size=32, verbose=0)
    >>> low, high = result.bounds
    >>> 1e-4 <= low < high <= 10.0
    True
    """
    v.instance("model", model, keras.Model, "a compiled keras.Model")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ValueError("lr_find needs a compiled model: call model.compile(optimizer, loss) first.")
    batch_size = _at_most("batch_size", v.integer("batch_size", batch_size, low=1))
    _at_most("num_steps", v.integer("num_steps", num_steps, low=2))  # fit loops over them
    if not (isinstance(verbose, str) and verbose == "auto"):  # Keras fit's values
        verbose = v.integer("verbose", verbose, low=0, high=2)
    finder = LRFinder(
        min_learning_rate, max_learning_rate, num_steps, mode=mode, smoothing=smoothing,
        divergence_threshold=divergence_threshold,
    )
    if _is_dataset(data):
        if y is not None:
            raise ValueError("y must be None when data is a tf.data.Dataset of (x, y) pairs.")
        model.fit(data.repeat(), steps_per_epoch=num_steps, epochs=1, callbacks=[finder],
                  shuffle=False, verbose=verbose)
    else:
        _check_arrays(data, y)
        steps_per_epoch = max(1, math.ceil(len(data) / batch_size))
        epochs = math.ceil(num_steps / steps_per_epoch)
        model.fit(data, y, batch_size=batch_size, epochs=epochs, shuffle=True,
                  callbacks=[finder], verbose=verbose)
    assert finder.result is not None
    return finder.result

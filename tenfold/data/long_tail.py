"""Long-tailed subsampling with the exponential profile of CIFAR-10-LT.

References:
    Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", https://arxiv.org/abs/1906.07413 (the CIFAR-10/100-LT protocol);
    Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples".
"""

from __future__ import annotations

import numpy as np

from tenfold import _validate as v


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """Examples kept per class: ``int(n_max · IF^(−c/(C−1)))`` for class ``c``.

    Example:
    >>> long_tail_counts(100, 3, 100)
    [100, 10, 1]
    """
    imbalance_factor = v.number("imbalance_factor", imbalance_factor, low=1)
    n_max = v.integer("n_max", n_max, low=1)
    num_classes = v.integer("num_classes", num_classes, low=1)
    if num_classes < 2:
        return [int(n_max)] * num_classes
    # the small epsilon keeps exact powers (e.g. 100·100^-1 = 1) from flooring to 0
    return [
        max(1, int(n_max * imbalance_factor ** (-c / (num_classes - 1)) + 1e-9))
        for c in range(num_classes)
    ]


def long_tailed(
    x: np.ndarray,
    y: np.ndarray,
    imbalance_factor: float,
    *,
    n_max: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Subsample ``(x, y)`` to an exponentially long-tailed class profile.

    Class ``c`` (in label order: class 0 is the head) keeps
    ``int(n_max · imbalance_factor^(−c/(C−1)))`` randomly chosen examples, so the largest
    class has ``imbalance_factor`` times as many as the smallest. Apply it to the training
    split only: validation and test splits stay balanced.

    Args:
        x: array of examples.
        y: 1-D integer labels in ``[0, C)``.
        imbalance_factor: float ≥ 1. Ratio of the largest to the smallest class.
        n_max: examples of the head class; defaults to the size of the smallest class of
            the input, so that every class can supply its share.
        seed: seed of the subsampling.

    Returns:
        ``(x_lt, y_lt, class_counts)`` with ``class_counts`` a list of ints.

    Example:
    >>> x, y = np.arange(300), np.repeat([0, 1, 2], 100)
    >>> _, y_lt, counts = long_tailed(x, y, 10, seed=0)
    >>> counts
    [100, 31, 10]
    """
    imbalance_factor = v.number("imbalance_factor", imbalance_factor, low=1)
    n_max = v.integer("n_max", n_max, low=1, allow_none=True)
    seed = v.integer("seed", seed, low=0)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must be 1-D and as long as x, received y of shape {y.shape} for {len(x)} examples.")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(f"y must hold integer labels >= 0, received dtype {y.dtype}.")
    num_classes = int(y.max()) + 1
    available = np.bincount(y, minlength=num_classes)
    if n_max is None:
        n_max = int(available.min())
    counts = long_tail_counts(int(n_max), num_classes, imbalance_factor)
    short = [c for c in range(num_classes) if counts[c] > available[c]]
    if short:
        raise ValueError(
            f"n_max={n_max} asks for more examples than classes {short} have "
            f"({[int(available[c]) for c in short]}); lower n_max."
        )
    rng = np.random.default_rng(seed)
    keep = np.concatenate([
        np.sort(rng.choice(np.flatnonzero(y == c), size=counts[c], replace=False))
        for c in range(num_classes)
    ])
    keep = np.sort(keep)
    return np.asarray(x)[keep], y[keep], counts

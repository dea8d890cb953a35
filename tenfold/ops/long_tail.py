"""Pure math of long-tailed learning: class priors, re-weighting, margins, logit adjustment.

Constants that depend only on the training class counts (a prior, a per-class weight, a
per-class margin) are computed once in float64 NumPy from a plain list of ints; functions
of tensors (logits, kernels) are written in ``keras.ops``.

References:
    Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples",
    https://arxiv.org/abs/1901.05555 (effective number, eq. 3-4);
    Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", https://arxiv.org/abs/1906.07413 (margins Δ_j = C / n_j^{1/4}, eq. 12);
    Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
    https://arxiv.org/abs/2007.10740 (logits + log n_j);
    Menon et al. 2021, "Long-tail learning via logit adjustment",
    https://arxiv.org/abs/2007.07314 (logits + τ log π_j, eq. 9-10);
    Kang et al. 2020, "Decoupling Representation and Classifier for Long-Tailed
    Recognition", https://arxiv.org/abs/1910.09217 (τ-normalization, sampling q).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from tenfold._validate import fraction, integer, integers, non_negative, number, positive

SAMPLING_EXPONENTS = {"instance": 1.0, "square_root": 0.5, "class_balanced": 0.0}


def validate_class_counts(class_counts: Any, name: str = "class_counts") -> list[int]:
    """``class_counts`` (training examples per class) as a list of at least 2 positive ints.

    A NumPy array is accepted; a wrong type is a TypeError, a count below 1 a ValueError,
    both naming the entry.

    Example:
    >>> validate_class_counts([5, 2])
    [5, 2]
    >>> validate_class_counts([5, 0])
    Traceback (most recent call last):
    ...
    ValueError: class_counts[1] must be an integer >= 1, received 0.
    """
    if isinstance(class_counts, np.ndarray):
        class_counts = class_counts.reshape(-1).tolist()
    counts = integers(name, class_counts, low=1)
    if len(counts) < 2:
        raise ValueError(
            f"{name} must list the training examples of at least 2 classes, received {class_counts!r}."
        )
    return counts


def class_prior(class_counts: Sequence[int]) -> np.ndarray:
    """The training label prior ``π_j = n_j / Σ n`` (float64).

    Example:
    >>> class_prior([3, 1]).tolist()
    [0.75, 0.25]
    """
    n = np.asarray(validate_class_counts(class_counts), dtype="float64")
    return n / n.sum()


def log_prior(class_counts: Sequence[int]) -> np.ndarray:
    """``log π_j`` (float64)."""
    return np.log(class_prior(class_counts))


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.9999) -> np.ndarray:
    """Class-balanced weights ``w_j ∝ (1 − β) / (1 − β^{n_j})``, normalized to ``Σ_j w_j = C``.

    ``(1 − β^n) / (1 − β)`` is the *effective number* of ``n`` samples (Cui et al. 2019,
    eq. 3); β = 0 gives equal weights, β → 1 inverse-frequency weights.

    Example:
    >>> class_balanced_weights([10, 10, 10]).tolist()
    [1.0, 1.0, 1.0]
    """
    n = np.asarray(validate_class_counts(class_counts), dtype="float64")
    beta = fraction("beta", beta, open_high=True)
    # 1 - β^n computed as -expm1(n·log β) stays accurate for β close to 1
    effective = -np.expm1(n * np.log(beta)) / (1.0 - beta) if beta > 0 else np.ones_like(n)
    weights = 1.0 / effective
    return weights * len(n) / weights.sum()


def ldam_margins(class_counts: Sequence[int], max_margin: float = 0.5) -> np.ndarray:
    """LDAM margins ``Δ_j = K / n_j^{1/4}``, with K chosen so that ``max_j Δ_j = max_margin``.

    Example:
    >>> ldam_margins([16, 1], 0.5).tolist()
    [0.25, 0.5]
    """
    n = np.asarray(validate_class_counts(class_counts), dtype="float64")
    max_margin = non_negative("max_margin", max_margin)
    m = n ** -0.25
    return m * (max_margin / m.max())


def sampling_weights(class_counts: Sequence[int], exponent: float) -> np.ndarray:
    """Class sampling probabilities ``p_j = n_j^q / Σ_i n_i^q`` (Kang et al. 2020, eq. 1).

    ``q = 1`` instance-balanced, ``q = 1/2`` square-root, ``q = 0`` class-balanced.

    Example:
    >>> sampling_weights([4, 1], 0.5).round(4).tolist()
    [0.6667, 0.3333]
    """
    n = np.asarray(validate_class_counts(class_counts), dtype="float64")
    w = n ** number("exponent", exponent)
    return w / w.sum()


def progressive_weights(class_counts: Sequence[int], epoch: int, epochs: int) -> np.ndarray:
    """Progressively-balanced sampling: ``p(t) = (1 − t/T) p^IB + (t/T) p^CB``.

    ``t`` is the 0-based epoch; the last epoch (``t = T − 1``) is fully class-balanced when
    ``T > 1``.

    Example:
    >>> progressive_weights([3, 1], 0, 3).tolist(), progressive_weights([3, 1], 2, 3).tolist()
    ([0.75, 0.25], [0.5, 0.5])
    """
    epochs = integer("epochs", epochs, low=1)
    epoch = integer("epoch", epoch)
    alpha = 1.0 if epochs == 1 else min(max(float(epoch), 0.0), epochs - 1.0) / (epochs - 1.0)
    return (1.0 - alpha) * sampling_weights(class_counts, 1.0) + alpha * sampling_weights(
        class_counts, 0.0
    )


def logit_adjust(logits: Any, log_prior_: Any, tau: float = 1.0) -> Any:
    """``logits + τ · log π`` in ``keras.ops`` (the logit-adjusted loss's training logits).

    Subtract instead (``tau=-τ``) for post-hoc adjustment of a model trained with plain
    cross-entropy. The result has the dtype of ``logits``.
    """
    logits = ops.convert_to_tensor(logits)
    shift = ops.cast(ops.convert_to_tensor(np.asarray(log_prior_, "float32")), logits.dtype)
    return logits + ops.cast(tau, logits.dtype) * shift


def tau_norm_kernel(kernel: Any, tau: float = 1.0, *, epsilon: float = 1e-12) -> Any:
    """Rescale each class's weight vector (a column of a ``(features, classes)`` kernel).

    ``w_j ← w_j / ‖w_j‖^τ`` (Kang et al. 2020, eq. 3); τ = 0 returns the kernel unchanged,
    τ = 1 gives unit-norm columns. The norm is computed in float32.
    """
    tau, epsilon = number("tau", tau), positive("epsilon", epsilon)
    kernel = ops.convert_to_tensor(kernel)
    k32 = ops.cast(kernel, "float32")
    norms = ops.sqrt(ops.sum(ops.square(k32), axis=0, keepdims=True))
    scale = ops.power(ops.maximum(norms, epsilon), -tau)
    return ops.cast(k32 * scale, kernel.dtype)

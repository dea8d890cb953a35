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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

SAMPLING_EXPONENTS = {"instance": 1.0, "square_root": 0.5, "class_balanced": 0.0}


def validate_class_counts(class_counts: Any, name: str = "class_counts") -> list[int]:
    """``class_counts`` as a list of positive Python ints, or a ValueError saying why not.

    Example:
    >>> validate_class_counts([5, 2])
    [5, 2]
    >>> validate_class_counts([5, 0])
    Traceback (most recent call last):
    ...
    ValueError: class_counts must be a list of positive ints (training examples per class); entry 1 is 0, received [5, 0].
    """
    head = (
        f"{name} must be a list of positive ints (training examples per class)"
    )
    if isinstance(class_counts, (str, bytes, dict)) or not hasattr(class_counts, "__len__"):
        raise ValueError(f"{head}, received {class_counts!r}.")
    values = list(np.asarray(class_counts).reshape(-1).tolist()) if isinstance(
        class_counts, np.ndarray) else list(class_counts)
    if len(values) < 2:
        raise ValueError(f"{head} with at least 2 classes, received {class_counts!r}.")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)):
            raise ValueError(  # noqa: TRY004 - the issue asks for one ValueError for any bad count
                f"{head}; entry {i} is {v!r} of type {type(v).__name__}, received {values!r}."
            )
        if isinstance(v, (float, np.floating)) and (not math.isfinite(v) or v != int(v)):
            raise ValueError(f"{head}; entry {i} is {v!r}, not a whole number, received {values!r}.")
        if v <= 0:
            raise ValueError(f"{head}; entry {i} is {v!r}, received {values!r}.")
        out.append(int(v))
    return out


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
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be a float in [0, 1), received {beta!r}.")
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
    if isinstance(max_margin, bool) or not isinstance(max_margin, (int, float)) or max_margin < 0:
        raise ValueError(f"max_margin must be a float >= 0, received {max_margin!r}.")
    m = n ** -0.25
    return m * (float(max_margin) / m.max())


def sampling_weights(class_counts: Sequence[int], exponent: float) -> np.ndarray:
    """Class sampling probabilities ``p_j = n_j^q / Σ_i n_i^q`` (Kang et al. 2020, eq. 1).

    ``q = 1`` instance-balanced, ``q = 1/2`` square-root, ``q = 0`` class-balanced.

    Example:
    >>> sampling_weights([4, 1], 0.5).round(4).tolist()
    [0.6667, 0.3333]
    """
    n = np.asarray(validate_class_counts(class_counts), dtype="float64")
    w = n ** float(exponent)
    return w / w.sum()


def progressive_weights(class_counts: Sequence[int], epoch: int, epochs: int) -> np.ndarray:
    """Progressively-balanced sampling: ``p(t) = (1 − t/T) p^IB + (t/T) p^CB``.

    ``t`` is the 0-based epoch; the last epoch (``t = T − 1``) is fully class-balanced when
    ``T > 1``.

    Example:
    >>> progressive_weights([3, 1], 0, 3).tolist(), progressive_weights([3, 1], 2, 3).tolist()
    ([0.75, 0.25], [0.5, 0.5])
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be a positive int, received {epochs!r}.")
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
    kernel = ops.convert_to_tensor(kernel)
    k32 = ops.cast(kernel, "float32")
    norms = ops.sqrt(ops.sum(ops.square(k32), axis=0, keepdims=True))
    scale = ops.power(ops.maximum(norms, epsilon), -float(tau))
    return ops.cast(k32 * scale, kernel.dtype)

"""Kernel weight standardization (Scaled Weight Standardization, NFNets).

References:
    Qiao et al. 2019, "Micro-Batch Training with Batch-Channel Normalization and Weight
    Standardization", https://arxiv.org/abs/1903.10520
    Brock et al. 2021, "High-Performance Large-Scale Image Recognition Without
    Normalization", https://arxiv.org/abs/2102.06171 (official code: deepmind-research
    ``nfnets/base.py``, ``WSConv2D``)
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold._validate import number


def standardize_kernel(kernel: Any, *, gain: Any = None, epsilon: float = 1e-4) -> Any:
    """Standardize a kernel per output channel (the last axis).

    For every output channel ``o``, with ``N = fan_in`` the product of all other axes::

        W_hat[..., o] = gain[o] * (W[..., o] - mean_o) / sqrt(max(N * var_o, epsilon))

    where ``mean_o`` and ``var_o`` (biased) are taken over all axes but the last. The
    statistics are computed in float32 (or float64 for a float64 kernel) and the result is
    cast back to the kernel's dtype, so a ``bfloat16`` kernel is standardized accurately.
    After standardization each output channel has mean 0 and ``fan_in * variance = 1``
    (times ``gain**2``), which keeps the activations' variance constant from layer to
    layer for a unit-variance input.

    Args:
        kernel: tensor of rank >= 2, output channels last (Keras' Conv/Dense layout).
        gain: optional tensor broadcastable to ``kernel.shape[-1:]``: the learnable
            per-channel scale. ``None`` means 1.
        epsilon: float in (0, 1). Floor on ``fan_in * variance``, which standardization
            brings to 1 (a floor at 1 or more would stop it). Defaults to ``1e-4``.

    Returns:
        The standardized kernel, same shape and dtype as ``kernel``.

    Example:
    >>> import numpy as np
    >>> w = standardize_kernel(np.random.normal(size=(3, 3, 4, 8)).astype("float32"))
    >>> bool(np.allclose(np.mean(np.asarray(w), axis=(0, 1, 2)), 0.0, atol=1e-5))
    True
    """
    epsilon = number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True)
    kernel = ops.convert_to_tensor(kernel)
    rank = len(kernel.shape)
    if rank < 2:
        raise ValueError(
            f"kernel must have rank >= 2 (output channels last), received shape {tuple(kernel.shape)}."
        )
    dtype = keras.backend.standardize_dtype(kernel.dtype)
    stat_dtype = "float64" if dtype == "float64" else "float32"
    w = ops.cast(kernel, stat_dtype)
    axes = tuple(range(rank - 1))
    fan_in = 1
    for dim in kernel.shape[:-1]:
        fan_in *= int(dim)
    mean = ops.mean(w, axis=axes, keepdims=True)
    var = ops.var(w, axis=axes, keepdims=True)
    scale = ops.rsqrt(ops.maximum(var * float(fan_in), float(epsilon)))
    if gain is not None:
        scale = scale * ops.cast(gain, stat_dtype)
    return ops.cast((w - mean) * scale, dtype)

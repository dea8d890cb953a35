"""Unit-wise norms and adaptive gradient clipping (AGC), as pure math.

References:
    Brock, De, Smith & Simonyan 2021, "High-Performance Large-Scale Image Recognition
    Without Normalization", https://arxiv.org/abs/2102.06171 (Section 4, Eq. 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras import ops


def unit_axes(rank: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    """The reduced axes of a rank-``rank`` tensor, sorted and non-negative.

    ``axis=None`` is the rank rule: all axes but the last (one unit per output unit of a
    Dense ``(in, out)`` or conv ``(..., in, out)`` kernel); the whole tensor for rank <= 1.
    A ValueError names the axes and the rank when an axis does not fit.

    Example:
    >>> unit_axes(4, None), unit_axes(1, None), unit_axes(3, [-1, 0])
    ((0, 1, 2), (0,), (0, 2))
    """
    if axis is None:
        return tuple(range(rank)) if rank <= 1 else tuple(range(rank - 1))
    axes = (axis,) if isinstance(axis, int) and not isinstance(axis, bool) else axis
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Sequence):
        raise ValueError(f"axis must be None, an int or a list of ints, received {axis!r}.")
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int) or not -rank <= a < max(rank, 1):
            raise ValueError(
                f"axis must be ints in [-{rank}, {rank}) for a rank-{rank} tensor, "
                f"received {axis!r}."
            )
        out.append(a % rank if rank else 0)
    return tuple(sorted(set(out)))


def einsum_kernel_axes(equation: str) -> tuple[int, ...]:
    """The axes of an ``EinsumDense`` kernel that one output unit sums over.

    In ``"inputs,kernel->output"`` a kernel axis whose letter is not in the output is an
    input axis (it is contracted); the other kernel axes index output units. So
    ``"ab,bc->ac"`` (Dense) gives ``(0,)``, a ``MultiHeadAttention`` query kernel
    ``"abc,cde->abde"`` (model dim, heads, head dim) gives ``(0,)`` — one unit per head and
    head unit — and its output kernel ``"abcd,cde->abe"`` (heads, head dim, model dim)
    gives ``(0, 1)``.

    Example:
    >>> einsum_kernel_axes("abc,cde->abde"), einsum_kernel_axes("abcd,cde->abe")
    ((0,), (0, 1))
    """
    if not isinstance(equation, str) or equation.count(",") != 1 or "->" not in equation:
        raise ValueError(
            f"equation must be an einsum string 'inputs,kernel->output', received {equation!r}."
        )
    operands, output = equation.replace(" ", "").split("->")
    kernel = operands.split(",")[1].replace("...", "")
    output = output.replace("...", "")
    return tuple(i for i, letter in enumerate(kernel) if letter not in output)


def unitwise_norm(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """The L2 norm of each unit of ``x``, kept broadcastable against ``x``.

    A *unit* is one output unit: by default the norm is taken over all axes but the last
    (Dense kernels ``(in, out)`` → axis 0, Conv kernels ``(..., in, out)`` → all but the
    output axis); scalars and vectors use the whole tensor. ``axis`` gives the reduced
    axes instead (depthwise, einsum, embedding kernels: see :func:`unit_axes`). Computed
    in float32.

    Example:
    >>> import numpy as np
    >>> unitwise_norm(np.array([[3.0, 0.0], [4.0, 1.0]], "float32")).numpy().tolist()
    [[5.0, 1.0]]
    """
    x = ops.cast(x, "float32")
    axes = unit_axes(len(x.shape), axis)
    if not axes:
        return ops.abs(x)
    return ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=True))


def _check(clipping: Any, epsilon: Any) -> None:
    for name, value, low in (("clipping", clipping, "> 0"), ("epsilon", epsilon, ">= 0")):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (value <= 0 if name == "clipping" else value < 0):
            raise ValueError(f"{name} must be a finite number {low}, received {value!r}.")


def clip_factor(
    gradient: Any,
    parameter: Any,
    *,
    clipping: float = 0.01,
    epsilon: float = 1e-3,
    axis: int | Sequence[int] | None = None,
) -> Any:
    """The float32 factor of each unit that AGC multiplies ``gradient`` by (1 if unclipped).

    ``min(1, λ·max(‖W_i‖, ε) / ‖G_i‖)`` per unit ``i``, shaped like
    ``unitwise_norm(gradient, axis)`` (broadcastable against the gradient). Because AGC
    only rescales units, ``clip_factor(G) * G`` is :func:`adaptive_clip` and, for a sum of
    gradients ``G = Σ G_r`` (replicas, micro-batches), ``Σ clip_factor(G) * G_r`` is the
    clipped sum.

    Example:
    >>> import numpy as np
    >>> clip_factor(np.full((4, 1), 2.0, "float32"), np.ones((4, 1), "float32"),
    ...             clipping=0.5).numpy().tolist()
    [[0.25]]
    """
    _check(clipping, epsilon)
    p_norm = ops.maximum(unitwise_norm(parameter, axis), float(epsilon))
    g_norm = unitwise_norm(gradient, axis)
    max_norm = p_norm * float(clipping)
    trigger = g_norm > max_norm
    return ops.where(trigger, max_norm / ops.where(trigger, g_norm, 1.0), 1.0)


def adaptive_clip(
    gradient: Any,
    parameter: Any,
    *,
    clipping: float = 0.01,
    epsilon: float = 1e-3,
    axis: int | Sequence[int] | None = None,
) -> Any:
    """AGC (Brock et al. 2021, Eq. 3): rescale each unit whose gradient is too large.

    For each unit ``i``, with ``‖·‖`` the :func:`unitwise_norm`::

        G_i ← λ · max(‖W_i‖, ε) / ‖G_i‖ · G_i   if ‖G_i‖ / max(‖W_i‖, ε) > λ
        G_i ← G_i                                otherwise

    with ``λ = clipping`` and ``ε = epsilon``. The norms are computed in float32; the
    result has the dtype of ``gradient``.

    Example:
    >>> import numpy as np
    >>> g = adaptive_clip(np.ones((2, 1), "float32"), np.ones((2, 1), "float32"), clipping=0.5)
    >>> [round(v, 4) for v in g.numpy().ravel().tolist()]
    [0.5, 0.5]
    """
    dtype = gradient.dtype if hasattr(gradient, "dtype") else "float32"
    g = ops.cast(gradient, "float32")
    factor = clip_factor(g, parameter, clipping=clipping, epsilon=epsilon, axis=axis)
    return ops.cast(g * factor, dtype)

"""Unit-wise norms and adaptive gradient clipping (AGC), as pure math.

References:
    Brock, De, Smith & Simonyan 2021, "High-Performance Large-Scale Image Recognition
    Without Normalization", https://arxiv.org/abs/2102.06171 (Section 4, Eq. 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops


def _unit_axes(rank: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(rank)) if rank <= 1 else tuple(range(rank - 1))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int) or not -rank <= a < max(rank, 1):
            raise ValueError(
                f"axis must be ints in [-{rank}, {rank}) for a rank-{rank} tensor, "
                f"received {axis!r}."
            )
        out.append(a % rank if rank else 0)
    return tuple(sorted(set(out)))


def unitwise_norm(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """The L2 norm of each unit of ``x``, kept broadcastable against ``x``.

    A *unit* is one output unit: by default the norm is taken over all axes but the last
    (Dense kernels ``(in, out)`` → axis 0, Conv kernels ``(..., in, out)`` → all but the
    output axis); scalars and vectors use the whole tensor. ``axis`` overrides the reduced
    axes (e.g. for depthwise or einsum kernels). Computed in float32.

    Example:
    >>> import numpy as np
    >>> unitwise_norm(np.array([[3.0, 0.0], [4.0, 1.0]], "float32")).numpy().tolist()
    [[5.0, 1.0]]
    """
    x = ops.cast(x, "float32")
    axes = _unit_axes(len(x.shape), axis)
    if not axes:
        return ops.abs(x)
    return ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=True))


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
    if not isinstance(clipping, (int, float)) or isinstance(clipping, bool) or clipping <= 0:
        raise ValueError(f"clipping must be a number > 0, received {clipping!r}.")
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon < 0:
        raise ValueError(f"epsilon must be a number >= 0, received {epsilon!r}.")
    dtype = gradient.dtype if hasattr(gradient, "dtype") else "float32"
    g = ops.cast(gradient, "float32")
    p_norm = ops.maximum(unitwise_norm(parameter, axis), float(epsilon))
    g_norm = unitwise_norm(g, axis)
    max_norm = p_norm * float(clipping)
    trigger = g_norm > max_norm
    scale = ops.where(trigger, max_norm / ops.where(trigger, g_norm, 1.0), 1.0)
    return ops.cast(g * scale, dtype)

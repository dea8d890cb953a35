"""Factored second-moment statistics (Adafactor) and per-axis covers (SM3), as pure math.

References:
    Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
    https://arxiv.org/abs/1804.04235 (Algorithms 4 and 5).
    Anil, Gupta, Koren & Singer 2019, "Memory-Efficient Adaptive Optimization" (SM3),
    https://arxiv.org/abs/1901.11150 (Algorithm SM3-II).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras import ops


def factored_dims(
    shape: Sequence[int], *, factored: bool = True, min_dim_size_to_factor: int = 128
) -> tuple[int, int] | None:
    """The two axes Adafactor factors for a tensor of ``shape``, or None.

    The two largest axes are factored when the smaller of them has at least
    ``min_dim_size_to_factor`` entries (ties go to the later axis). The result is sorted,
    ``(row_axis, col_axis)``: row statistics reduce over ``col_axis``, column statistics
    over ``row_axis``.

    Example:
    >>> factored_dims((3, 3, 256, 512))
    (2, 3)
    >>> factored_dims((4096, 10)) is None
    True
    """
    shape = tuple(int(d) for d in shape)
    if not factored or len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda i: (shape[i], i))
    first, second = order[-2], order[-1]
    if shape[first] < min_dim_size_to_factor:
        return None
    return (min(first, second), max(first, second))


def factored_split(
    shape: Sequence[int], *, factored: bool = True, min_dim_size_to_factor: int = 128
) -> int | None:
    """Where Adafactor's ``factoring="by_layer"`` cuts ``shape`` into (input) × (output).

    A kernel of shape ``(d₁, …, d_k)`` is seen as the matrix ``(d₁⋯d_s) × (d_{s+1}⋯d_k)``
    for the cut ``s`` (1 ≤ s < k) whose smaller side is largest (ties go to the later cut);
    the result is that ``s``, or None when the smaller side is below
    ``min_dim_size_to_factor`` (or the tensor has rank < 2). The optimizer sees variables,
    not layers, and this rule recovers the layers' axis groups from the shape alone:

    - Dense ``(in, out)``: the one cut, ``in × out``;
    - EinsumDense / MultiHeadAttention query, key and value ``(in, heads, dim)``:
      ``in × (heads·dim)``; attention output ``(heads, dim, out)``: ``(heads·dim) × out``;
    - ConvND ``(k₁, …, in, out)``: ``(k₁⋯in) × out`` (spatial × input, then output), since
      a spatial extent is smaller than the channel counts.

    Example:
    >>> factored_split((256, 8, 32))   # query kernel: 256 × 256
    1
    >>> factored_split((8, 32, 256))   # attention output kernel: 256 × 256
    2
    >>> factored_split((3, 3, 256, 512))   # conv: 2304 × 512
    3
    >>> factored_split((3, 3, 64, 64)) is None   # 576 × 64: 64 < 128
    True
    """
    shape = tuple(int(d) for d in shape)
    if not factored or len(shape) < 2:
        return None
    best, best_side = None, -1
    for cut in range(1, len(shape)):
        side = min(math.prod(shape[:cut]), math.prod(shape[cut:]))
        if side >= best_side:
            best, best_side = cut, side
    return best if best_side >= min_dim_size_to_factor else None


def grouped_shape(shape: Sequence[int], cut: int) -> tuple[int, int]:
    """``(d₁⋯d_cut, d_{cut+1}⋯d_k)``: the matrix :func:`factored_split` factors."""
    shape = tuple(int(d) for d in shape)
    return math.prod(shape[:cut]), math.prod(shape[cut:])


def rms(x: Any) -> Any:
    """Root mean square of all entries: ``sqrt(mean(x²))``."""
    return ops.sqrt(ops.mean(ops.square(x)))


def factored_second_moment(row: Any, col: Any, dims: tuple[int, int]) -> Any:
    """Rank-1 reconstruction ``V̂ = R Cᵀ / (1ᵀR)`` of Adafactor (Alg. 4, line 6).

    ``row`` holds the mean of ``G²`` over ``dims[1]`` (that axis removed), ``col`` the mean
    over ``dims[0]``. With means instead of the paper's sums the formula reads
    ``V̂ = R · C / mean(R)``, the mean taken over the row axis; it is the same matrix.

    Example:
    >>> import numpy as np
    >>> g2 = np.outer([1.0, 2.0], [3.0, 4.0])  # a rank-1 G² is reconstructed exactly
    >>> v = factored_second_moment(g2.mean(1), g2.mean(0), (0, 1))
    >>> bool(np.allclose(v, g2))
    True
    """
    d_row, d_col = dims
    r = ops.expand_dims(row, d_col)
    c = ops.expand_dims(col, d_row)
    r_mean = ops.mean(r, axis=d_row, keepdims=True)
    return r * c / r_mean


def factored_rsqrt(row: Any, col: Any, dims: tuple[int, int]) -> Any:
    """``1/√V̂`` of :func:`factored_second_moment`, as ``rsqrt(R / mean(R)) · rsqrt(C)``.

    Forming ``V̂`` first underflows in float32 where a whole row and a whole column of the
    gradient are zero (``V̂ ≈ ε₁² = 1e-60 → 0``, then ``0 · ∞ = NaN``: dead input pixels
    and dead ReLU units do exactly this); the product of the two factors stays finite. This
    is how the reference implementation (mesh_tensorflow) computes it.
    """
    d_row, d_col = dims
    r = ops.expand_dims(row, d_col)
    c = ops.expand_dims(col, d_row)
    r_mean = ops.mean(r, axis=d_row, keepdims=True)
    return ops.rsqrt(r / r_mean) * ops.rsqrt(c)


def sm3_cover_min(accumulators: Sequence[Any], shape: Sequence[int]) -> Any:
    """SM3-II's ``min_i μ_i(j_i)`` broadcast to the full ``shape``.

    ``accumulators[i]`` is a vector of length ``shape[i]``; a scalar tensor has a single
    scalar accumulator.
    """
    rank = len(shape)
    if rank == 0:
        return accumulators[0]
    result = None
    for axis, acc in enumerate(accumulators):
        view = [1] * rank
        view[axis] = int(shape[axis])
        term = ops.reshape(acc, view)
        result = term if result is None else ops.minimum(result, term)
    return ops.broadcast_to(result, tuple(int(d) for d in shape))


def sm3_cover_max(nu: Any) -> list[Any]:
    """The new SM3 accumulators: the max of ``nu`` over each slice along each axis."""
    rank = len(nu.shape)
    if rank == 0:
        return [nu]
    out = []
    for axis in range(rank):
        others = tuple(a for a in range(rank) if a != axis)
        out.append(ops.max(nu, axis=others) if others else nu)
    return out

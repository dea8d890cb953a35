"""Branch fusion for structural re-parameterization (ACNet, RepVGG, Conv+BN folding).

In inference a BatchNormalization is an affine map per channel, so a convolution followed
by it is one convolution with a rescaled kernel and a new bias; convolutions that read the
same (aligned) input and are summed are one convolution whose kernel is the sum of their
kernels, each zero-padded to the largest size around its centre.

References:
    Ding et al. 2019, "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
    Asymmetric Convolution Blocks", https://arxiv.org/abs/1908.03930
    Ding et al. 2021, "RepVGG: Making VGG-style ConvNets Great Again",
    https://arxiv.org/abs/2101.03697
"""

from __future__ import annotations

from typing import Any

from keras import ops


def fold_batch_norm(
    kernel: Any,
    bias: Any = None,
    *,
    mean: Any,
    variance: Any,
    gamma: Any = None,
    beta: Any = None,
    epsilon: float = 1e-3,
) -> tuple[Any, Any]:
    """Fold an inference-mode BatchNormalization into the convolution before it.

    With ``s = gamma / sqrt(variance + epsilon)`` (per output channel)::

        kernel' = kernel * s            (broadcast over the last axis)
        bias'   = (bias - mean) * s + beta

    ``gamma=None`` means 1 and ``beta=None`` / ``bias=None`` mean 0 (a BN with
    ``scale=False`` / ``center=False``, a bias-free conv).

    Args:
        kernel: tensor, output channels last.
        bias: optional tensor of shape ``(out,)``.
        mean, variance: the BN's moving statistics, shape ``(out,)``.
        gamma, beta: the BN's scale and offset, or None.
        epsilon: float. The BN's epsilon.

    Returns:
        ``(kernel', bias')``.

    Example:
    >>> import numpy as np
    >>> k, b = fold_batch_norm(np.ones((1, 1, 1, 2)), mean=np.zeros(2), variance=np.full(2, 3.0),
    ...                        gamma=np.full(2, 2.0), beta=np.ones(2), epsilon=1.0)
    >>> np.asarray(k).ravel().tolist(), np.asarray(b).tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """
    kernel = ops.convert_to_tensor(kernel)
    dtype = kernel.dtype
    scale = ops.rsqrt(ops.cast(variance, dtype) + ops.cast(epsilon, dtype))
    if gamma is not None:
        scale = scale * ops.cast(gamma, dtype)
    new_bias = -ops.cast(mean, dtype)
    if bias is not None:
        new_bias = new_bias + ops.cast(bias, dtype)
    new_bias = new_bias * scale
    if beta is not None:
        new_bias = new_bias + ops.cast(beta, dtype)
    return kernel * scale, new_bias


def pad_kernel(kernel: Any, kernel_size: tuple[int, int]) -> Any:
    """Zero-pad a 2D kernel ``(kh, kw, in, out)`` to ``kernel_size`` around its centre.

    ``kernel_size - (kh, kw)`` must be even in both axes (odd sizes into odd sizes): a
    ``1×k`` kernel lands on the centre row of a ``k×k`` one, a ``1×1`` on its centre.

    Example:
    >>> import numpy as np
    >>> k = pad_kernel(np.ones((1, 3, 1, 1)), (3, 3))
    >>> np.asarray(k)[..., 0, 0].tolist()
    [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    """
    kernel = ops.convert_to_tensor(kernel)
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    th, tw = int(kernel_size[0]), int(kernel_size[1])
    dh, dw = th - kh, tw - kw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(
            f"cannot centre a {kh}x{kw} kernel in {th}x{tw}: the size differences must be "
            "non-negative and even."
        )
    return ops.pad(kernel, [[dh // 2, dh // 2], [dw // 2, dw // 2], [0, 0], [0, 0]])


def identity_kernel(channels: int, kernel_size: tuple[int, int] = (1, 1), dtype: str = "float32") -> Any:
    """The ``(kh, kw, channels, channels)`` kernel of the identity map (1 at the centre).

    Example:
    >>> import numpy as np
    >>> np.asarray(identity_kernel(2))[0, 0].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    kh, kw = int(kernel_size[0]), int(kernel_size[1])
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd to have a centre, received {kernel_size!r}.")
    eye = ops.reshape(ops.eye(int(channels), dtype=dtype), (1, 1, int(channels), int(channels)))
    return pad_kernel(eye, (kh, kw))

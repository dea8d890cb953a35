"""Asymmetric Convolution Block (ACNet).

References:
    Ding et al. 2019, "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
    Asymmetric Convolution Blocks", https://arxiv.org/abs/1908.03930 (official code:
    DingXiaoH/ACNet, ``acb.py``)
"""

from __future__ import annotations

from typing import Any

from tenfold._api import export
from tenfold.layers._branches import BranchBlock
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: ACBlock(4, 3, strides=2), input_shape=(8, 8, 3))


@export("tenfold.layers.ACBlock", example=_example)
class ACBlock(BranchBlock):
    """A ``k×k``, a ``1×k`` and a ``k×1`` convolution, each with its own BN, summed.

    In training the three branches strengthen the kernel's "skeleton" (its centre row and
    column); for inference :func:`tenfold.reparam.deploy` folds each BN into its branch and
    adds the ``1×k`` and ``k×1`` kernels onto the centre row and column of the ``k×k`` one,
    giving one ``Conv2D`` (with a bias) and exactly the same outputs — extra capacity in
    training at no inference cost. ``padding="same"`` pads symmetrically by
    ``(k - 1) // 2`` (output size ``ceil(size / strides)``, as Keras' "same"), so the fusion
    is exact for any stride and input size.

    Args:
        filters: int. Output channels.
        kernel_size: int, odd. Defaults to `3`.
        strides: int. Defaults to `1`.
        padding: ``"same"`` (symmetric) or ``"valid"``. Defaults to `"same"`.
        use_bias: bool. Biases in the branch convolutions (redundant before BN).
            Defaults to `False`.
        kernel_initializer, kernel_regularizer: of the branch convolutions.
        momentum: float in [0, 1). Momentum of the branch BatchNormalizations' moving
            statistics. Defaults to `0.99`.
        epsilon: float in (0, 1). Added to the branch norms' variance; a guard against a
            zero variance (at 1 or more it would outweigh the variance of unit-scale
            activations and the norms would stop normalizing). Defaults to `1e-3`.
        deploy: bool. The fused form (one ``Conv2D`` named ``fused``); set by
            :func:`tenfold.reparam.deploy`. Defaults to `False`.

    Example:
    >>> block = tenfold.layers.ACBlock(8)
    >>> tuple(block(np.zeros((2, 8, 8, 3))).shape)
    (2, 8, 8, 8)
    """

    def __init__(self, filters: int, kernel_size: int = 3, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, **kwargs)

    def _branch_specs(self, in_channels: int) -> list[tuple[str, tuple[int, int], bool]]:
        k = self.kernel_size
        return [("square", (k, k), False), ("hor", (1, k), False), ("ver", (k, 1), False)]

"""RepVGG block: ``k×k`` + ``1×1`` + identity branches, each with BN.

References:
    Ding et al. 2021, "RepVGG: Making VGG-style ConvNets Great Again",
    https://arxiv.org/abs/2101.03697 (official code: DingXiaoH/RepVGG, ``repvgg.py``)
"""

from __future__ import annotations

from typing import Any

from tenfold._api import export
from tenfold.layers._branches import BranchBlock
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: RepVGGBlock(3, 3), input_shape=(8, 8, 3))


@export("tenfold.layers.RepVGGBlock", example=_example)
class RepVGGBlock(BranchBlock):
    """A ``k×k`` conv + BN, a ``1×1`` conv + BN and, when the shape allows, an identity BN.

    The identity branch (a BatchNormalization of the input itself) exists when the input
    has ``filters`` channels and ``strides == 1``. All branches fuse into one ``k×k``
    ``Conv2D`` with :func:`tenfold.reparam.deploy` (the identity becomes a kernel with 1 at
    the centre of each channel's own slice). Padding as in :class:`ACBlock`.

    Args:
        filters: int. Output channels.
        kernel_size: int, odd. Defaults to `3`.
        strides, padding, use_bias, kernel_initializer, kernel_regularizer, momentum,
        epsilon, deploy: as in :class:`ACBlock`.

    Example:
    >>> block = tenfold.layers.RepVGGBlock(3)
    >>> tuple(block(np.zeros((2, 8, 8, 3))).shape)
    (2, 8, 8, 3)
    """

    def __init__(self, filters: int, kernel_size: int = 3, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, **kwargs)

    def _branch_specs(self, in_channels: int) -> list[tuple[str, tuple[int, int], bool]]:
        k = self.kernel_size
        specs = [("square", (k, k), False), ("point", (1, 1), False)]
        if in_channels == self.filters and self.strides == 1:
            specs.append(("identity", (1, 1), True))
        return specs

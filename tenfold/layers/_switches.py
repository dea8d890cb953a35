"""Model switches contributed by the layers: ``conv`` ws | acnet | repvgg, ``norm`` ebn | none | gn.

Factories follow :mod:`tenfold.models.blocks`: a conv factory is
``f(filters, kernel_size, *, strides, name)`` returning a bias-free convolution with
"same" output size; a norm factory is ``f(*, name)`` returning a layer or None.
"""

from __future__ import annotations

import keras

from tenfold import registry
from tenfold.layers.acblock import ACBlock
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.repvgg_block import RepVGGBlock
from tenfold.layers.ws_conv import WSConv2D


def _plain_1x1(filters: int, strides: int, name: str | None) -> keras.layers.Layer:
    return keras.layers.Conv2D(
        filters, 1, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )


@registry.registrar("conv", "ws")
def ws_conv(filters: int, kernel_size: int, *, strides: int = 1, name: str | None = None) -> keras.layers.Layer:
    """A bias-free :class:`~tenfold.layers.WSConv2D` with "same" padding."""
    return WSConv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name)


@registry.registrar("conv", "acnet")
def acnet_conv(filters: int, kernel_size: int, *, strides: int = 1, name: str | None = None) -> keras.layers.Layer:
    """An :class:`~tenfold.layers.ACBlock` for ``k > 1``; a plain 1×1 Conv2D for ``k = 1``."""
    if kernel_size == 1:
        return _plain_1x1(filters, strides, name)
    return ACBlock(filters, kernel_size, strides=strides, name=name)


@registry.registrar("conv", "repvgg")
def repvgg_conv(filters: int, kernel_size: int, *, strides: int = 1, name: str | None = None) -> keras.layers.Layer:
    """A :class:`~tenfold.layers.RepVGGBlock` for ``k > 1``; a plain 1×1 Conv2D for ``k = 1``."""
    if kernel_size == 1:
        return _plain_1x1(filters, strides, name)
    return RepVGGBlock(filters, kernel_size, strides=strides, name=name)


@registry.registrar("norm", "ebn")
def extended_batch_norm(*, name: str | None = None) -> keras.layers.Layer | None:
    """:class:`~tenfold.layers.ExtendedBatchNormalization` (one variance per batch)."""
    return ExtendedBatchNormalization(name=name)


@registry.registrar("norm", "none")
def no_norm(*, name: str | None = None) -> keras.layers.Layer | None:
    """No normalization layer (``small_resnet`` then builds a normalizer-free ResNet)."""
    return None


@registry.registrar("norm", "gn")
def group_norm(*, name: str | None = None) -> keras.layers.Layer | None:
    """Keras' GroupNormalization with 4 groups (batch-independent; for comparisons)."""
    return keras.layers.GroupNormalization(groups=4, name=name)

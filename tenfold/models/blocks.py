"""Model building blocks chosen by string switches.

``conv`` and ``norm`` switches are looked up in :mod:`tenfold.registry` (kinds ``"conv"``
and ``"norm"``), so a later technique adds an option by registering a factory, without
editing the models:

* a ``conv`` factory is ``f(filters, kernel_size, *, strides, name) -> keras.layers.Layer``
  producing a bias-free convolution with ``"same"`` padding;
* a ``norm`` factory is ``f(*, name) -> keras.layers.Layer | None`` (``None``: no layer).
"""

from __future__ import annotations

from typing import Any

import keras

from tenfold import _validate as v
from tenfold import registry
from tenfold._api import export
from tenfold.layers._fused import fused_counterpart
from tenfold.testing import ContractExample


@registry.registrar("conv", "plain")
def plain_conv(filters: int, kernel_size: int, *, strides: int = 1, name: str | None = None) -> keras.layers.Layer:
    """Keras' own Conv2D, bias-free, ``"same"`` padding."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )


@registry.registrar("norm", "bn")
def batch_norm(*, name: str | None = None) -> keras.layers.Layer | None:
    """Batch normalization: :class:`tenfold.layers.FusedBatchNormalization`, Keras'
    ``BatchNormalization`` computed by TensorFlow's fused kernel (same weights and results;
    1.3× faster training in float32 and no float32 round trip under mixed precision)."""
    from tenfold.layers.fused_batch_norm import FusedBatchNormalization

    return FusedBatchNormalization(name=name)


@registry.registrar("norm", "keras_bn")
def keras_batch_norm(*, name: str | None = None) -> keras.layers.Layer | None:
    """Keras' own ``BatchNormalization`` (separate ops, float32 under mixed precision)."""
    return keras.layers.BatchNormalization(name=name)


def make_conv(conv: str, filters: int, kernel_size: int, *, strides: int = 1, name: str | None = None) -> keras.layers.Layer:
    return registry.get("conv", conv)(filters, kernel_size, strides=strides, name=name)


def make_norm(norm: str, *, name: str | None = None) -> keras.layers.Layer | None:
    return registry.get("norm", norm)(name=name)


def check_switch(kind: str, value: Any) -> str:
    """A registered ``conv`` / ``norm`` switch name, or an error naming the argument."""
    return v.choice(kind, v.string(kind, value), registry.list(kind))


def activation_function(activation: Any) -> Any:
    """The Keras activation named ``activation``, or an error naming the argument."""
    v.string("activation", activation)
    return v.keras_object(
        "activation", activation, keras.activations.get,
        "a Keras activation name such as 'relu', 'gelu' or 'silu'",
    )


def check_block_args(filters: Any, strides: Any) -> tuple[int, int]:
    """A residual block's ``filters`` (int >= 1) and ``strides`` (1 or 2), checked."""
    filters = v.integer("filters", filters, low=1)
    strides = v.choice("strides", v.integer("strides", strides), (1, 2))
    return filters, strides


def check_stages(num_classes: Any, width: Any, blocks: Any) -> tuple[int, int, list[int]]:
    """The stage layout shared by ``small_resnet`` and ``nf_resnet``, checked."""
    return (
        v.integer("num_classes", num_classes, low=2),
        v.integer("width", width, low=1),
        v.integers("blocks", blocks, low=1),
    )


def _example() -> ContractExample:
    return ContractExample(make=lambda: ResidualBlock(4, strides=2), input_shape=(8, 8, 3))


@export("tenfold.models.ResidualBlock", example=_example)
class ResidualBlock(keras.layers.Layer):
    """A pre-activation-free basic residual block: conv-norm-act-conv-norm + shortcut, act.

    The convolution and normalization are picked by the ``conv`` and ``norm`` switches
    (registry kinds ``"conv"`` / ``"norm"``). When the block changes the width or the
    resolution, the shortcut is a 1×1 strided convolution followed by the same norm.

    Args:
        filters: int. Output channels.
        strides: int. Stride of the first convolution (1 or 2).
        conv: str. Convolution switch, e.g. ``"plain"``.
        norm: str. Normalization switch, e.g. ``"bn"``.
        activation: str. Keras activation name.
        fused: bool. The inference form made by :func:`tenfold.reparam.deploy`: each conv
            is its fused form with a bias (an ACBlock in ``deploy=True`` form, a WSConv2D
            frozen to a Conv2D) with the norm after it folded in, and no norm layers.
            Defaults to ``False``.

    Example:
    >>> block = ResidualBlock(8, strides=2)
    >>> tuple(block(np.zeros((1, 8, 8, 4), "float32")).shape)
    (1, 4, 4, 8)
    """

    def __init__(
        self,
        filters: int,
        *,
        strides: int = 1,
        conv: str = "plain",
        norm: str = "bn",
        activation: str = "relu",
        fused: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.strides = check_block_args(filters, strides)
        self.conv = check_switch("conv", conv)
        self.norm = check_switch("norm", norm)
        activation_function(activation)
        self.activation = activation
        self.fused = v.boolean("fused", fused)
        self.conv1 = self._make_conv(3, strides, "conv1")
        self.norm1 = self._make_norm("norm1")
        self.conv2 = self._make_conv(3, 1, "conv2")
        self.norm2 = self._make_norm("norm2")
        self.act = keras.layers.Activation(activation)
        self.shortcut_conv: keras.layers.Layer | None = None
        self.shortcut_norm: keras.layers.Layer | None = None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if input_shape[-1] != self.filters or self.strides != 1:
            self.shortcut_conv = self._make_conv(1, self.strides, "shortcut_conv")
            self.shortcut_norm = self._make_norm("shortcut_norm")
        shape = tuple(input_shape)
        for layer in (self.conv1, self.norm1, self.act, self.conv2, self.norm2):
            if layer is not None:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        if self.shortcut_conv is not None:
            self.shortcut_conv.build(tuple(input_shape))
            if self.shortcut_norm is not None:
                self.shortcut_norm.build(self.shortcut_conv.compute_output_shape(tuple(input_shape)))

    def _make_conv(self, kernel_size: int, strides: int, name: str) -> keras.layers.Layer:
        layer = make_conv(self.conv, self.filters, kernel_size, strides=strides, name=name)
        if self.fused:
            layer = fused_counterpart(layer)
        return layer

    def _make_norm(self, name: str) -> keras.layers.Layer | None:
        return None if self.fused else make_norm(self.norm, name=name)

    def fusion_pairs(self) -> list[tuple[str, str | None]]:
        """(conv attribute, norm attribute) pairs that :func:`tenfold.reparam.deploy` fuses."""
        return [("conv1", "norm1"), ("conv2", "norm2"), ("shortcut_conv", "shortcut_norm")]

    @staticmethod
    def _apply(layer: keras.layers.Layer | None, x: Any, training: Any) -> Any:
        # Keras' call context passes `training` on to sub-layers that take it.
        return x if layer is None else layer(x)

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = self._apply(self.conv1, inputs, training)
        x = self._apply(self.norm1, x, training)
        x = self.act(x)
        x = self._apply(self.conv2, x, training)
        x = self._apply(self.norm2, x, training)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self._apply(self.shortcut_conv, inputs, training)
            shortcut = self._apply(self.shortcut_norm, shortcut, training)
        return self.act(x + shortcut)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        h, w = input_shape[1], input_shape[2]
        if self.strides == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (input_shape[0], h, w, self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters, strides=self.strides, conv=self.conv, norm=self.norm,
            activation=self.activation, fused=self.fused,
        )
        return config

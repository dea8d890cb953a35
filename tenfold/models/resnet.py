"""A small residual CNN for 8×8 to 32×32 inputs, and an MLP baseline."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold.models.blocks import (
    ResidualBlock,
    activation_function,
    check_stages,
    check_switch,
    make_conv,
    make_norm,
)


@export("tenfold.models.small_resnet")
def small_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
    conv: str = "plain",
    norm: str = "bn",
    activation: str = "relu",
    name: str = "small_resnet",
) -> keras.Model:
    """A ResNet with ``len(blocks)`` stages; stage ``i`` has ``width·2^i`` channels.

    Stem (3×3 conv, norm, activation) → stages of :class:`ResidualBlock` (stride 2 at the
    start of every stage but the first) → global average pooling → a float32 ``Dense``
    head named ``"classifier"`` producing logits. ``conv`` and ``norm`` are switches looked
    up in the registry (``tenfold.registry.list("conv")`` / ``list("norm")``).
    ``norm="none"`` builds a normalizer-free ResNet instead
    (:func:`tenfold.models.nf_resnet`: scaled residual branches, zero-initialized skip
    gains, gamma-scaled activations; use it with ``conv="ws"``).

    Example:
    >>> model = small_resnet((8, 8, 1), 10)
    >>> tuple(model(np.zeros((2, 8, 8, 1))).shape)
    (2, 10)
    """
    input_shape = v.integers("input_shape", input_shape, low=1)
    num_classes, width, blocks = check_stages(num_classes, width, blocks)
    conv, norm = check_switch("conv", conv), check_switch("norm", norm)
    activation_function(activation)
    if norm == "none":
        from tenfold.models.nf import nf_resnet

        return nf_resnet(
            input_shape, num_classes, width=width, blocks=blocks, conv=conv,
            activation=activation, name=name,
        )
    inputs = keras.Input(tuple(input_shape), name="image")
    x = make_conv(conv, width, 3, name="stem_conv")(inputs)
    stem_norm = make_norm(norm, name="stem_norm")
    if stem_norm is not None:
        x = stem_norm(x)
    x = keras.layers.Activation(activation, name="stem_act")(x)
    for stage, count in enumerate(blocks):
        for index in range(int(count)):
            strides = 2 if stage > 0 and index == 0 else 1
            x = ResidualBlock(
                width * 2**stage, strides=strides, conv=conv, norm=norm,
                activation=activation, name=f"stage{stage + 1}_block{index + 1}",
            )(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


@export("tenfold.models.mlp")
def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    dropout: float = 0.0,
    name: str = "mlp",
) -> keras.Model:
    """A multilayer perceptron baseline with a float32 ``"classifier"`` head.

    Example:
    >>> tuple(mlp((8, 8, 1), 10)(np.zeros((2, 8, 8, 1))).shape)
    (2, 10)
    """
    input_shape = v.integers("input_shape", input_shape, low=1)
    num_classes = v.integer("num_classes", num_classes, low=2)
    hidden = v.integers("hidden", hidden, low=1, non_empty=False)
    activation_function(activation)
    dropout = v.fraction("dropout", dropout, open_high=True)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(int(units), activation=activation, name=f"dense{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)

"""Normalizer-free ResNets (NF-ResNets): signal-propagation-preserving residual blocks.

Without normalization, a residual block ``h + f(h)`` adds the branch's variance at every
block and the signal grows with depth. An NF-ResNet instead computes
``h_{i+1} = h_i + alpha * g * f_i(h_i / beta_i)``, where ``beta_i`` is the *expected*
standard deviation of ``h_i`` (``Var(h_{i+1}) = Var(h_i) + alpha^2``, reset to ``1 +
alpha^2`` after a projection shortcut, which reads the normalized input), ``alpha = 0.2``
and ``g`` is a learnable scalar initialized at zero (SkipInit). Convolutions are
weight-standardized (:class:`tenfold.layers.WSConv2D`) and every activation is multiplied by
its ``gamma``, the constant that gives it unit output variance for a unit Gaussian input.

References:
    Brock et al. 2021a, "Characterizing signal propagation to close the performance gap in
    unnormalized ResNets", https://arxiv.org/abs/2101.08692
    Brock et al. 2021b, "High-Performance Large-Scale Image Recognition Without
    Normalization", https://arxiv.org/abs/2102.06171 (official code: deepmind-research
    ``nfnets/base.py`` and ``nf_resnet.py``)
    De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity
    Function in Deep Networks" (SkipInit), https://arxiv.org/abs/2002.10444
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.layers._fused import fused_counterpart
from tenfold.models.blocks import (
    activation_function,
    check_block_args,
    check_stages,
    check_switch,
    make_conv,
)
from tenfold.testing import ContractExample

#: ``gamma = 1 / std(g(x))`` for ``x ~ N(0, 1)``, for Keras' own activations with their
#: default arguments (``leaky_relu`` has Keras' slope 0.2; ``gelu`` is the exact erf form).
#: Computed by numerical integration of ``E[g(x)^2] - E[g(x)]^2`` on a fine grid; ReLU's is
#: ``sqrt(2 / (1 - 1/pi))`` in closed form.
ACTIVATION_GAMMAS: dict[str, float] = {
    "linear": 1.0,
    "relu": 1.7128585505,
    "relu6": 1.7128585550,
    "leaky_relu": 1.5464600579,
    "elu": 1.2708434179,
    "selu": 1.0,
    "celu": 1.2708434179,
    "gelu": 1.7009262452,
    "silu": 1.7871872221,
    "swish": 1.7871872221,
    "tanh": 1.5925374198,
    "sigmoid": 4.8013133716,
    "softplus": 1.9191259801,
    "softsign": 2.3375333632,
    "mish": 1.5920253811,
}


def estimate_gamma(activation: str, *, samples: int = 1 << 20, seed: int = 0) -> float:
    """Monte-Carlo estimate of ``1 / std(g(x))``, ``x ~ N(0, 1)``, for a Keras activation.

    Args:
        activation: str. A name ``keras.activations.get`` accepts.
        samples: int. Number of Gaussian samples (error about ``1/sqrt(samples)``).
        seed: int. Seed of the samples.

    Example:
    >>> round(estimate_gamma("relu"), 2)
    1.71
    """
    samples = v.integer("samples", samples, low=1000)
    seed = v.integer("seed", seed, low=0)
    fn = activation_function(activation)
    x = np.random.default_rng(seed).standard_normal(samples)
    y = np.asarray(fn(ops.convert_to_tensor(x, "float64")), "float64")
    std = float(np.std(y))
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"activation {activation!r} has no finite positive output variance.")
    return 1.0 / std


def activation_gamma(activation: str) -> float:
    """The ``gamma`` of ``activation``: from :data:`ACTIVATION_GAMMAS`, else estimated.

    Example:
    >>> activation_gamma("relu")
    1.7128585505
    """
    name = activation if isinstance(activation, str) else None
    if name in ACTIVATION_GAMMAS:
        return ACTIVATION_GAMMAS[name]
    return estimate_gamma(activation)


def _scaled_activation_example() -> ContractExample:
    return ContractExample(make=lambda: ScaledActivation("gelu"), input_shape=(6,))


@export("tenfold.models.ScaledActivation", example=_scaled_activation_example)
class ScaledActivation(keras.layers.Layer):
    """``gamma * g(x)``: an activation rescaled to unit output variance for unit input.

    Args:
        activation: str. Keras activation name.
        gamma: float or None. The scale; ``None`` takes it from
            :func:`activation_gamma` (table, else Monte-Carlo estimate).

    Example:
    >>> layer = ScaledActivation("relu")
    >>> round(layer.gamma, 3)
    1.713
    """

    def __init__(self, activation: str = "relu", *, gamma: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fn = activation_function(activation)
        self.activation = activation
        gamma = v.positive("gamma", gamma, allow_none=True)
        self.gamma = activation_gamma(activation) if gamma is None else gamma

    def call(self, inputs: Any) -> Any:
        return self._fn(inputs) * ops.cast(self.gamma, inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation, "gamma": self.gamma}


def _block_example() -> ContractExample:
    return ContractExample(
        make=lambda: NFResidualBlock(4, strides=2, conv="ws", beta=1.02), input_shape=(8, 8, 3)
    )


@export("tenfold.models.NFResidualBlock", example=_block_example)
class NFResidualBlock(keras.layers.Layer):
    """A normalizer-free basic residual block.

    ``out = shortcut + alpha * skip_gain * conv2(act(conv1(act(x / beta))))`` with ``act``
    the gamma-scaled activation; ``shortcut = x``, or a 1×1 strided conv of
    ``act(x / beta)`` when the width or resolution changes. ``skip_gain`` is a scalar
    weight initialized at 0, so every block starts as the identity.

    Args:
        filters: int. Output channels.
        strides: int. 1 or 2.
        conv: str. Convolution switch (``"ws"`` for an NF-ResNet).
        activation: str. Keras activation name (scaled by its gamma).
        alpha: float. Residual branch scale. Defaults to `0.2`.
        beta: float. Expected standard deviation of the block's input. Defaults to `1.0`.
        fused: bool. Deploy form (convs fused, see :func:`tenfold.reparam.deploy`).

    Example:
    >>> block = NFResidualBlock(8, strides=2)
    >>> tuple(block(np.zeros((1, 8, 8, 4), "float32")).shape)
    (1, 4, 4, 8)
    """

    def __init__(
        self,
        filters: int,
        *,
        strides: int = 1,
        conv: str = "ws",
        activation: str = "relu",
        alpha: float = 0.2,
        beta: float = 1.0,
        fused: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.strides = check_block_args(filters, strides)
        self.conv = check_switch("conv", conv)
        self.activation = activation
        self.alpha = v.positive("alpha", alpha)
        self.beta = v.positive("beta", beta)
        self.fused = v.boolean("fused", fused)
        self.act = ScaledActivation(activation, name="act")
        self.conv1 = self._make_conv(3, self.strides, "conv1")
        self.conv2 = self._make_conv(3, 1, "conv2")
        self.shortcut_conv: keras.layers.Layer | None = None
        self.skip_gain = None

    def _make_conv(self, kernel_size: int, strides: int, name: str) -> keras.layers.Layer:
        layer = make_conv(self.conv, self.filters, kernel_size, strides=strides, name=name)
        if self.fused:
            layer = fused_counterpart(layer)
        return layer

    def fusion_pairs(self) -> list[tuple[str, str | None]]:
        """(conv attribute, norm attribute) pairs that :func:`tenfold.reparam.deploy` fuses."""
        return [("conv1", None), ("conv2", None), ("shortcut_conv", None)]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = tuple(input_shape)
        if shape[-1] != self.filters or self.strides != 1:
            self.shortcut_conv = self._make_conv(1, self.strides, "shortcut_conv")
            self.shortcut_conv.build(shape)
        self.conv1.build(shape)
        mid = self.conv1.compute_output_shape(shape)
        self.conv2.build(mid)
        self.skip_gain = self.add_weight(
            name="skip_gain", shape=(), initializer="zeros", trainable=True, autocast=False
        )

    def call(self, inputs: Any) -> Any:
        out = self.act(inputs * ops.cast(1.0 / self.beta, inputs.dtype))
        shortcut = inputs if self.shortcut_conv is None else self.shortcut_conv(out)
        out = self.conv2(self.act(self.conv1(out)))
        scale = ops.cast(self.skip_gain * self.alpha, out.dtype)
        return shortcut + out * scale

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        h, w = input_shape[1], input_shape[2]
        if self.strides == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (input_shape[0], h, w, self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters, strides=self.strides, conv=self.conv,
            activation=self.activation, alpha=self.alpha, beta=self.beta, fused=self.fused,
        )
        return config


def expected_stds(blocks: Sequence[int], *, alpha: float = 0.2) -> list[float]:
    """The ``beta`` (expected input std) of every block of an NF-ResNet, in order.

    Starts at 1 after the stem; each block adds ``alpha^2`` to the variance; a block with a
    projection shortcut (stride 2 or a width change: the first block of every stage but
    the first, whose stem has the same width) reads the normalized input, so its output
    variance is ``1 + alpha^2`` whatever its input's.

    Example:
    >>> [round(b, 4) for b in expected_stds((2, 1))]
    [1.0, 1.0198, 1.0392]
    """
    var = 1.0
    betas = []
    for stage, count in enumerate(blocks):
        for index in range(int(count)):
            betas.append(var**0.5)
            if stage > 0 and index == 0:
                var = 1.0
            var += alpha**2
    return betas


@export("tenfold.models.nf_resnet")
def nf_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
    conv: str = "ws",
    activation: str = "relu",
    alpha: float = 0.2,
    name: str = "nf_resnet",
) -> keras.Model:
    """A normalizer-free ResNet with the shape of :func:`tenfold.models.small_resnet`.

    Stem conv → :class:`NFResidualBlock` stages (stride 2 at the start of every stage but
    the first, ``beta`` from :func:`expected_stds`) → scaled activation → global average
    pooling → float32 ``Dense`` head ``"classifier"``. ``small_resnet(..., norm="none")``
    builds this.

    Example:
    >>> model = nf_resnet((8, 8, 1), 10)
    >>> tuple(model(np.zeros((2, 8, 8, 1))).shape)
    (2, 10)
    """
    input_shape = v.integers("input_shape", input_shape, low=1)
    num_classes, width, blocks = check_stages(num_classes, width, blocks)
    conv = check_switch("conv", conv)
    activation_function(activation)
    alpha = v.positive("alpha", alpha)
    betas = iter(expected_stds(blocks, alpha=alpha))
    inputs = keras.Input(tuple(input_shape), name="image")
    x = make_conv(conv, width, 3, name="stem_conv")(inputs)
    for stage, count in enumerate(blocks):
        for index in range(int(count)):
            strides = 2 if stage > 0 and index == 0 else 1
            x = NFResidualBlock(
                width * 2**stage, strides=strides, conv=conv, activation=activation,
                alpha=alpha, beta=next(betas), name=f"stage{stage + 1}_block{index + 1}",
            )(x)
    x = ScaledActivation(activation, name="final_act")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)

"""Weight-standardized convolutions and dense layer (Scaled Weight Standardization).

References:
    Brock et al. 2021, "High-Performance Large-Scale Image Recognition Without
    Normalization", https://arxiv.org/abs/2102.06171 (official code: deepmind-research
    ``nfnets/base.py``, ``WSConv2D``)
    Qiao et al. 2019, "Micro-Batch Training with Batch-Channel Normalization and Weight
    Standardization", https://arxiv.org/abs/1903.10520
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.standardize import standardize_kernel
from tenfold.testing import ContractExample


def _ws_arguments(use_gain: Any, epsilon: Any) -> tuple[bool, float]:
    """``use_gain`` and ``epsilon`` of the WS layers, checked.

    ``epsilon`` floors ``fan_in * variance``, which standardization brings to 1: a floor at
    1 or above would stop standardizing every kernel whose ``fan_in * variance`` is below
    it, so it must be in (0, 1).
    """
    return (
        v.boolean("use_gain", use_gain),
        v.number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True),
    )


class _Standardized:
    """Shared parts of the WS layers: a float32 kernel read, the gain and its saving.

    Keras' Conv and Dense layers save only ``kernel`` (and ``bias``) in their
    ``save_own_variables``; the ``gain`` weight is appended after them here, so a saved
    model keeps it (without this, loading fails with "expected 3 variables, but received
    2" or, worse, silently resets the gain).
    """

    use_gain: bool
    epsilon: float
    gain: Any

    def add_weight(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # The kernel is read in float32 even under a mixed policy: the statistics are
        # computed on full-precision weights, then the result is cast to the compute dtype.
        if kwargs.get("name") == "kernel":
            kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)  # type: ignore[misc]

    def _build_gain(self, units: int) -> None:
        self.gain = None
        if self.use_gain:
            self.gain = self.add_weight(
                name="gain", shape=(units,), initializer="ones", trainable=True, autocast=False,
            )

    def standardized_kernel(self) -> Any:
        """The kernel actually applied: standardized, times the gain, in the compute dtype."""
        kernel = standardize_kernel(
            self._kernel,
            gain=self.gain, epsilon=self.epsilon,
        )
        return ops.cast(kernel, self.compute_dtype)

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)  # type: ignore[misc]
        if self.built and self.gain is not None:
            store[str(1 + int(self.use_bias))] = self.gain

    def load_own_variables(self, store: Any) -> None:
        super().load_own_variables(store)  # type: ignore[misc]
        if self.built and self.gain is not None:
            self.gain.assign(store[str(1 + int(self.use_bias))])

    def _ws_config(self) -> dict[str, Any]:
        return {"use_gain": self.use_gain, "epsilon": self.epsilon}


def _conv_call(layer: Any, inputs: Any, padding: str) -> Any:
    outputs = ops.conv(
        inputs, layer.standardized_kernel(), strides=list(layer.strides), padding=padding,
        dilation_rate=layer.dilation_rate, data_format=layer.data_format,
    )
    if layer.use_bias:
        if layer.data_format == "channels_last":
            shape = (1,) * (layer.rank + 1) + (layer.filters,)
        else:
            shape = (1, layer.filters) + (1,) * layer.rank
        outputs = ops.add(outputs, ops.reshape(layer.bias, shape))
    if layer.activation is not None:
        return layer.activation(outputs)
    return outputs


def _conv2d_example() -> ContractExample:
    return ContractExample(make=lambda: WSConv2D(4, 3, padding="same"), input_shape=(8, 8, 3))


@export("tenfold.layers.WSConv2D", example=_conv2d_example)
class WSConv2D(_Standardized, keras.layers.Conv2D):
    """Conv2D whose kernel is standardized per output channel on every call.

    Each output channel of the kernel is shifted to mean 0 and scaled to
    ``fan_in · variance = 1``, then multiplied by a learnable per-channel ``gain``
    (Scaled WS, NFNets). This keeps the signal variance constant through the network and,
    with scaled activations and scaled residual branches, lets ResNets train without
    batch normalization (see :func:`tenfold.models.small_resnet` with ``norm="none"``).
    The cost is a reduction over the kernel per step — small next to the convolution. The
    statistics are computed in float32 under mixed precision; the result is cast to the
    compute dtype. Any ``keras.layers.Conv2D`` argument works (``groups``,
    ``dilation_rate``, ``padding``, ``activation``, ``use_bias``, ...).

    Args:
        filters: int. Number of output channels.
        kernel_size: int or pair of ints.
        use_gain: bool. Learn a per-output-channel gain (weight ``gain``, initialized to
            1). Defaults to `True`.
        epsilon: float in (0, 1). Floor on ``fan_in * variance`` (which standardization
            brings to 1; a floor at 1 or more would stop it). Defaults to `1e-4`.
        **kwargs: any other `keras.layers.Conv2D` argument; ``kernel_initializer``
            defaults to ``"he_normal"`` (the scale is removed by standardization).

    Example:
    >>> layer = tenfold.layers.WSConv2D(8, 3)
    >>> tuple(layer(np.ones((2, 16, 16, 3))).shape)
    (2, 14, 14, 8)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        *args: Any,
        use_gain: bool = True,
        epsilon: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        use_gain, epsilon = _ws_arguments(use_gain, epsilon)
        kwargs.setdefault("kernel_initializer", "he_normal")
        super().__init__(
            v.integer("filters", filters, low=1), v.int_or_ints("kernel_size", kernel_size, low=1),
            *args, **kwargs,
        )
        self.use_gain, self.epsilon = use_gain, epsilon
        self.gain = None

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._build_gain(self.filters)

    def call(self, inputs: Any) -> Any:
        return _conv_call(self, inputs, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._ws_config()}


def _conv1d_example() -> ContractExample:
    def build(layer: Any, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = keras.Input(input_shape)
        x = layer(inputs)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, dtype="float32")(x))

    return ContractExample(
        make=lambda: WSConv1D(4, 3, padding="causal", activation="relu"),
        input_shape=(10, 3), build_model=build,
    )


@export("tenfold.layers.WSConv1D", example=_conv1d_example)
class WSConv1D(_Standardized, keras.layers.Conv1D):
    """Conv1D with a weight-standardized kernel (see :class:`WSConv2D`).

    Args:
        filters: int. Number of output channels.
        kernel_size: int.
        use_gain: bool. Learn a per-output-channel ``gain``. Defaults to `True`.
        epsilon: float in (0, 1). Floor on ``fan_in * variance`` (which standardization
            brings to 1; a floor at 1 or more would stop it). Defaults to `1e-4`.
        **kwargs: any other `keras.layers.Conv1D` argument.

    Example:
    >>> tuple(tenfold.layers.WSConv1D(4, 3)(np.ones((2, 10, 3))).shape)
    (2, 8, 4)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int],
        *args: Any,
        use_gain: bool = True,
        epsilon: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        use_gain, epsilon = _ws_arguments(use_gain, epsilon)
        kwargs.setdefault("kernel_initializer", "he_normal")
        super().__init__(
            v.integer("filters", filters, low=1), v.int_or_ints("kernel_size", kernel_size, low=1),
            *args, **kwargs,
        )
        self.use_gain, self.epsilon = use_gain, epsilon
        self.gain = None

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._build_gain(self.filters)

    def call(self, inputs: Any) -> Any:
        padding = self.padding
        if padding == "causal":
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        return _conv_call(self, inputs, padding)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._ws_config()}


def _dense_example() -> ContractExample:
    return ContractExample(make=lambda: WSDense(6, activation="relu"), input_shape=(5,))


@export("tenfold.layers.WSDense", example=_dense_example)
class WSDense(_Standardized, keras.layers.Dense):
    """Dense layer with a weight-standardized kernel (statistics over the input axis).

    Args:
        units: int. Output size.
        use_gain: bool. Learn a per-unit ``gain``. Defaults to `True`.
        epsilon: float in (0, 1). Floor on ``fan_in * variance`` (which standardization
            brings to 1; a floor at 1 or more would stop it). Defaults to `1e-4`.
        **kwargs: any other `keras.layers.Dense` argument.

    Example:
    >>> tuple(tenfold.layers.WSDense(4)(np.ones((2, 3))).shape)
    (2, 4)
    """

    def __init__(
        self,
        units: int,
        *args: Any,
        use_gain: bool = True,
        epsilon: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        use_gain, epsilon = _ws_arguments(use_gain, epsilon)
        kwargs.setdefault("kernel_initializer", "he_normal")
        super().__init__(v.integer("units", units, low=1), *args, **kwargs)
        self.use_gain, self.epsilon = use_gain, epsilon
        self.gain = None

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self._build_gain(self.units)

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = ops.matmul(inputs, self.standardized_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._ws_config()}

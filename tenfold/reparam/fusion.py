"""Layer-level fusion: which layers fold a following norm, and their folded weights.

A *producer* is a layer whose inference output is linear in its input plus a bias, with
output channels on one axis: Keras' ``Conv1D``/``Conv2D``/``Conv3D``,
``DepthwiseConv1D``/``DepthwiseConv2D``, ``SeparableConv1D``/``SeparableConv2D`` (the
pointwise part) and ``Dense`` (linear activation, not quantized, no LoRA), tenfold's
weight-standardized :class:`~tenfold.layers.WSConv1D` / :class:`~tenfold.layers.WSConv2D` /
:class:`~tenfold.layers.WSDense` (their standardized kernel, frozen) and the multi-branch
:class:`~tenfold.layers.ACBlock` / :class:`~tenfold.layers.RepVGGBlock` (one ``k×k``
convolution once fused). A *norm* is a BatchNormalization-like layer, a per-channel affine
map in inference (``keras.layers.BatchNormalization``,
:class:`~tenfold.layers.FusedBatchNormalization`,
:class:`~tenfold.layers.ExtendedBatchNormalization`: moving statistics). A producer
followed by a norm on its channel axis is one producer with a rescaled kernel and a new
bias (:func:`tenfold.ops.fusion.fold_batch_norm`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from tenfold.layers._branches import BranchBlock
from tenfold.layers._fused import WS_ONLY_KEYS
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.fused_batch_norm import FusedBatchNormalization
from tenfold.layers.ws_conv import WSConv1D, WSConv2D, WSDense
from tenfold.ops.fusion import fold_batch_norm
from tenfold.ops.standardize import standardize_kernel

_L = keras.layers
_CONVS = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
#: tenfold layer → the plain Keras layer of its deploy form
_WS_PLAIN = {WSConv1D: _L.Conv1D, WSConv2D: _L.Conv2D, WSDense: _L.Dense}
PRODUCER_NAMES = (
    "Conv1D, Conv2D, Conv3D, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, "
    "SeparableConv2D, Dense (linear activation), WSConv1D, WSConv2D, WSDense, ACBlock, RepVGGBlock"
)


def plain_class(layer: Any) -> type | None:
    """The plain Keras class of ``layer``'s deploy form, or None if it is no producer type."""
    kind = type(layer)
    if kind in _WS_PLAIN:
        return _WS_PLAIN[kind]
    if kind in (*_CONVS, *_DEPTHWISE, *_SEPARABLE, _L.Dense):
        return kind
    return None


def is_producer(layer: Any) -> bool:
    """Whether ``layer`` is a linear map plus a bias that a following norm can fold into."""
    if isinstance(layer, BranchBlock):
        return True
    if plain_class(layer) is None:
        return False
    return (
        getattr(layer, "quantization_mode", None) is None
        and not getattr(layer, "lora_enabled", False)
        and keras.activations.serialize(layer.activation) == "linear"
    )


def is_norm(layer: Any) -> bool:
    """Whether ``layer`` is a batch normalization that is a per-channel affine map in inference."""
    if isinstance(layer, ExtendedBatchNormalization):
        return True
    if type(layer) in (keras.layers.BatchNormalization, FusedBatchNormalization):
        return not getattr(layer, "renorm", False)
    return False


def channel_axis(layer: Any, rank: int) -> int:
    """The output-channel axis (non-negative) of producer ``layer`` for outputs of ``rank``."""
    if isinstance(layer, BranchBlock):
        return 3
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return rank - 1


def norm_axis(norm: Any, rank: int) -> int | None:
    """The (non-negative) channel axis of ``norm`` for inputs of ``rank``, None if several."""
    axis = norm.axis
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return None
        axis = axis[0]
    return int(axis) % rank


def norm_statistics(norm: Any) -> dict[str, Any]:
    """The inference affine map of a norm (any channel axis), as float64 arrays."""
    return {
        "mean": np.asarray(norm.moving_mean, "float64"),
        "variance": np.asarray(norm.moving_variance, "float64"),
        "gamma": None if norm.gamma is None else np.asarray(norm.gamma, "float64"),
        "beta": None if norm.beta is None else np.asarray(norm.beta, "float64"),
        "epsilon": float(norm.epsilon),
    }


def _folded(kernel: np.ndarray, bias: np.ndarray | None, norm: Any) -> tuple[np.ndarray, np.ndarray]:
    k, b = fold_batch_norm(kernel, bias, **norm_statistics(norm))
    return np.asarray(k, "float64"), np.asarray(b, "float64")


def _bias(layer: Any, size: int) -> np.ndarray:
    return np.asarray(layer.bias, "float64") if layer.use_bias else np.zeros(size)


def producer_weights(layer: Any, norm: Any = None) -> list[np.ndarray]:
    """Float64 weights of the deploy form of producer ``layer`` with ``norm`` folded in.

    In the order of the deploy-form layer's ``weights`` (:func:`deploy_form`):
    ``[kernel, bias]``; ``[depthwise_kernel, pointwise_kernel, bias]`` for separable
    convolutions; without ``norm`` the bias only where the layer has one (always for
    ACBlock / RepVGGBlock). A depthwise kernel ``(..., in, multiplier)`` has output channel
    ``c · multiplier + m``, so it is folded flattened to ``(..., in · multiplier)``.

    Example:
    >>> conv = keras.layers.Conv2D(2, 1, use_bias=False)
    >>> _ = conv(np.zeros((1, 4, 4, 1)))
    >>> [w.shape for w in producer_weights(conv)]
    [(1, 1, 1, 2)]
    """
    # without a norm only the class matters (a WSConv2D with an activation is still frozen)
    if not (is_producer(layer) if norm is not None else isinstance(layer, BranchBlock) or plain_class(layer)):
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__} is not a fusable linear layer; "
            f"accepted: {PRODUCER_NAMES}."
        )
    if norm is not None and not is_norm(norm):
        raise TypeError(f"layer {norm.name!r} of type {type(norm).__name__} cannot be folded into {layer.name!r}.")
    if isinstance(layer, BranchBlock):
        kernel, bias = layer.fused_weights()
        return list(_folded(kernel, bias, norm)) if norm is not None else [kernel, bias]
    if isinstance(layer, tuple(_WS_PLAIN)):
        gain = None if layer.gain is None else np.asarray(layer.gain, "float64")
        kernel = np.asarray(
            standardize_kernel(np.asarray(layer._kernel, "float64"), gain=gain, epsilon=layer.epsilon), "float64"
        )
        return _finish(layer, kernel, norm)
    if isinstance(layer, _SEPARABLE):
        depthwise = np.asarray(layer.depthwise_kernel, "float64")
        return [depthwise, *_finish(layer, np.asarray(layer.pointwise_kernel, "float64"), norm)]
    kernel = np.asarray(layer.kernel, "float64")
    if isinstance(layer, _DEPTHWISE):
        shape = kernel.shape
        flat = _finish(layer, kernel.reshape(*shape[:-2], shape[-2] * shape[-1]), norm)
        return [flat[0].reshape(shape), *flat[1:]]
    return _finish(layer, kernel, norm)


def _finish(layer: Any, kernel: np.ndarray, norm: Any) -> list[np.ndarray]:
    out = kernel.shape[-1]
    if norm is None:
        return [kernel, _bias(layer, out)] if layer.use_bias else [kernel]
    return list(_folded(kernel, _bias(layer, out), norm))


def deploy_form(layer: Any, *, folded: bool, dtype: Any, name: str, padded: bool = False) -> keras.layers.Layer:
    """A new, unbuilt plain Keras layer computing producer ``layer`` (a norm folded in or not).

    ``ACBlock``/``RepVGGBlock`` → a ``Conv2D`` (``k×k``, the block's strides and padding;
    ``padded``: ``"valid"`` after the block's symmetric padding, which the caller adds as a
    ``ZeroPadding2D``, see :func:`branch_padding`); ``WSConv*``
    / ``WSDense`` → ``Conv*`` / ``Dense``; every other producer → its own class. With
    ``folded`` the layer has a bias.
    """
    if isinstance(layer, BranchBlock):
        return keras.layers.Conv2D(
            layer.filters, layer.kernel_size, strides=layer.strides,
            padding="same" if layer.padding == "same" and not padded else "valid",
            use_bias=True, dtype=dtype, name=name,
        )
    config = {k: v for k, v in layer.get_config().items() if k not in WS_ONLY_KEYS}
    if folded:
        config.update(use_bias=True, bias_initializer="zeros")
    config.update(dtype=dtype, name=name)
    return plain_class(layer).from_config(config)


def keras_same_is_symmetric(size: int | None, kernel: int, stride: int) -> bool:
    """Whether Keras' ``"same"`` pads ``(kernel - 1) / 2`` on both sides of an axis of ``size``.

    Always at stride 1 (odd kernel); at stride ``s`` only for sizes where the total padding
    ``(ceil(size / s) - 1) · s + kernel - size`` is ``kernel - 1`` or ``kernel`` (stride 2:
    odd sizes).

    Example:
    >>> keras_same_is_symmetric(9, 3, 2), keras_same_is_symmetric(8, 3, 2)
    (True, False)
    """
    if stride == 1:
        return True
    if size is None:
        return False
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2 == (kernel - 1) // 2


def branch_padding(block: BranchBlock, input_shape: tuple[int | None, ...]) -> int:
    """Padding a block's fused ``Conv2D`` needs in a ``ZeroPadding2D`` before it.

    0 where the conv can pad itself: ``"valid"``, or ``"same"`` where Keras' padding is the
    block's symmetric one for this input (:func:`keras_same_is_symmetric`).
    """
    if block.padding != "same":
        return 0
    if all(keras_same_is_symmetric(size, block.kernel_size, block.strides) for size in input_shape[1:3]):
        return 0
    return block.pad


def effective_weights(layer: keras.layers.Layer, norm: keras.layers.Layer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(kernel, bias)`` of producer ``layer`` in inference, ``norm`` folded in.

    (For separable convolutions: the pointwise kernel.)

    Example:
    >>> conv = keras.layers.Conv2D(2, 1, use_bias=False)
    >>> _ = conv(np.zeros((1, 4, 4, 1)))
    >>> k, b = effective_weights(conv)
    >>> k.shape, b.tolist()
    ((1, 1, 1, 2), [0.0, 0.0])
    """
    weights = producer_weights(layer, norm)
    if isinstance(layer, _SEPARABLE):
        weights = weights[1:]
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else np.zeros(kernel.shape[-1])
    return kernel, bias


def set_fused_weights(layer: keras.layers.Layer, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Write ``kernel``/``bias`` into a built fused-form layer (see :func:`fused_counterpart`)."""
    target = layer.fused if isinstance(layer, BranchBlock) else layer
    target.kernel.assign(kernel.astype(target.kernel.dtype))
    target.bias.assign(bias.astype(target.bias.dtype))

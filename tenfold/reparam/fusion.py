"""Layer-level fusion: the deploy form of a convolution and its effective weights.

A *producer* is a layer whose inference output is a convolution of its input plus a bias:
``keras.layers.Conv2D`` (linear activation, channels last, not quantized),
:class:`tenfold.layers.WSConv2D` (its standardized kernel) and the multi-branch blocks
:class:`tenfold.layers.ACBlock` / :class:`tenfold.layers.RepVGGBlock`. A *norm* is a
BatchNormalization-like layer that is a per-channel affine map in inference
(``keras.layers.BatchNormalization``, :class:`tenfold.layers.ExtendedBatchNormalization`).
A producer followed by a norm is one producer with a rescaled kernel and a new bias.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tenfold.layers._branches import BranchBlock, bn_statistics
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.fused_batch_norm import FusedBatchNormalization
from tenfold.layers.ws_conv import WSConv2D
from tenfold.ops.fusion import fold_batch_norm
from tenfold.ops.standardize import standardize_kernel

_WS_ONLY_KEYS = ("use_gain", "epsilon")


def is_producer(layer: Any) -> bool:
    """Whether ``layer`` can be replaced by a convolution with a bias (see module doc)."""
    if isinstance(layer, BranchBlock):
        return True
    if type(layer) not in (keras.layers.Conv2D, WSConv2D):
        return False
    return (
        layer.data_format == "channels_last"
        and getattr(layer, "quantization_mode", None) is None
        and not getattr(layer, "lora_enabled", False)
        and keras.activations.serialize(layer.activation) == "linear"
    )


def is_norm(layer: Any) -> bool:
    """Whether ``layer`` is a foldable channels-last batch normalization."""
    if isinstance(layer, ExtendedBatchNormalization):
        return layer.axis in (-1, 3)
    if type(layer) in (keras.layers.BatchNormalization, FusedBatchNormalization):
        return layer.axis in (-1, 3) and not layer.renorm
    return False


def fused_counterpart(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new, unbuilt layer of the deploy form of producer ``layer`` (same name, dtype).

    ``Conv2D`` → ``Conv2D`` with a bias; ``WSConv2D`` → plain ``Conv2D`` with a bias (the
    standardized kernel is frozen); ``ACBlock``/``RepVGGBlock`` → the same block with
    ``deploy=True`` (one ``Conv2D`` named ``fused``).

    Example:
    >>> new = fused_counterpart(keras.layers.Conv2D(4, 3, use_bias=False, name="c"))
    >>> new.use_bias, new.name
    (True, 'c')
    """
    if isinstance(layer, BranchBlock):
        return type(layer).from_config({**layer.get_config(), "deploy": True})
    if not is_producer(layer):
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__} has no fused form; accepted: "
            "Conv2D (linear activation, channels_last), WSConv2D, ACBlock, RepVGGBlock."
        )
    config = {k: v for k, v in layer.get_config().items() if k not in _WS_ONLY_KEYS}
    config["use_bias"] = True
    config["bias_initializer"] = "zeros"
    return keras.layers.Conv2D.from_config(config)


def effective_weights(layer: keras.layers.Layer, norm: keras.layers.Layer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(kernel, bias)`` of producer ``layer`` in inference, ``norm`` folded in.

    Example:
    >>> conv = keras.layers.Conv2D(2, 1, use_bias=False)
    >>> _ = conv(np.zeros((1, 4, 4, 1)))
    >>> k, b = effective_weights(conv)
    >>> k.shape, b.tolist()
    ((1, 1, 1, 2), [0.0, 0.0])
    """
    if isinstance(layer, BranchBlock):
        kernel, bias = layer.fused_weights()
    elif isinstance(layer, WSConv2D):
        gain = None if layer.gain is None else np.asarray(layer.gain, "float64")
        kernel = np.asarray(
            standardize_kernel(np.asarray(layer._kernel, "float64"), gain=gain, epsilon=layer.epsilon)
        )
        bias = np.asarray(layer.bias, "float64") if layer.use_bias else np.zeros(layer.filters)
    elif is_producer(layer):
        kernel = np.asarray(layer.kernel, "float64")
        bias = np.asarray(layer.bias, "float64") if layer.use_bias else np.zeros(layer.filters)
    else:
        raise TypeError(f"layer {layer.name!r} of type {type(layer).__name__} is not a fusable convolution.")
    if norm is not None:
        if not is_norm(norm):
            raise TypeError(f"layer {norm.name!r} of type {type(norm).__name__} cannot be folded into a convolution.")
        kernel, bias = fold_batch_norm(kernel, bias, **bn_statistics(norm))
        kernel, bias = np.asarray(kernel, "float64"), np.asarray(bias, "float64")
    return kernel, bias


def set_fused_weights(layer: keras.layers.Layer, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Write ``kernel``/``bias`` into a built deploy-form layer (see :func:`fused_counterpart`)."""
    target = layer.fused if isinstance(layer, BranchBlock) else layer
    target.kernel.assign(kernel.astype(target.kernel.dtype))
    target.bias.assign(bias.astype(target.bias.dtype))

"""``convert(model)``: a copy of any functional model with tenfold's layers swapped in.

The Keras counterpart of timm's ``convert_sync_batchnorm`` / layer-swapping helpers: the
same graph (:func:`tenfold.reparam.graph.rebuild`), with every ``Conv2D`` that the chosen
block can compute replaced by a :class:`~tenfold.layers.WSConv2D`,
:class:`~tenfold.layers.ACBlock` or :class:`~tenfold.layers.RepVGGBlock`, and every
``BatchNormalization`` by an :class:`~tenfold.layers.ExtendedBatchNormalization` or a
:class:`~tenfold.layers.FusedBatchNormalization`, weights carried wherever the swap keeps
the inference math (see :func:`convert`).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tenfold import _validate
from tenfold.layers.acblock import ACBlock
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.fused_batch_norm import FusedBatchNormalization
from tenfold.layers.repvgg_block import RepVGGBlock
from tenfold.layers.ws_conv import WSConv2D
from tenfold.reparam.fusion import keras_same_is_symmetric
from tenfold.reparam.graph import (
    Graph,
    clone_operation,
    compile_patterns,
    copy_layer,
    copy_weights,
    functional_graph,
    is_graph_model,
    rebuild,
)

CONVS = ("ws", "acnet", "repvgg")
NORMS = ("ebn", "fused_bn")


def block_refusal(conv: Any, input_shape: tuple[int | None, ...]) -> str | None:
    """Why ``conv`` (a ``Conv2D``) cannot become an ACBlock / RepVGGBlock, or None if it can.

    The block computes the same function as the conv (same filters, kernel size, strides,
    padding, dilation, activation) when the kernel is square, odd and larger than 1×1, the
    strides equal on both axes, dilation 1, one group, channels last, linear activation, and
    the padding ``"valid"``, or ``"same"`` where Keras pads symmetrically (stride 1, or a
    known input size where ``(size - 1) % stride`` leaves the same padding on both sides).
    """
    kh, kw = conv.kernel_size
    if kh != kw or kh % 2 == 0 or kh == 1:
        return f"kernel {kh}x{kw} (needs a square odd kernel larger than 1x1)"
    if conv.strides[0] != conv.strides[1]:
        return f"strides {conv.strides} (needs equal strides)"
    if tuple(conv.dilation_rate) != (1, 1):
        return f"dilation_rate {conv.dilation_rate} (needs 1)"
    if conv.groups != 1:
        return f"groups={conv.groups} (needs 1)"
    if conv.data_format != "channels_last":
        return "channels_first (needs channels_last)"
    if keras.activations.serialize(conv.activation) != "linear":
        return f"activation {keras.activations.serialize(conv.activation)!r} (the blocks have none)"
    if getattr(conv, "quantization_mode", None) is not None or getattr(conv, "lora_enabled", False):
        return "quantized or LoRA kernel"
    stride = conv.strides[0]
    if conv.padding == "same" and not all(
        keras_same_is_symmetric(size, kh, stride) for size in input_shape[1:3]
    ):
        return (
            f"'same' padding with stride {stride} on input size {tuple(input_shape[1:3])}: Keras pads "
            "asymmetrically there, the blocks symmetrically"
        )
    return None


class _Converter:
    """The handler of :func:`tenfold.reparam.graph.rebuild` that swaps layers."""

    def __init__(self, conv: str | None, norm: str | None, exclude: list[Any]) -> None:
        self.conv = conv
        self.norm = norm
        self.exclude = exclude
        self.models: dict[int, keras.Model] = {}
        self.layers: dict[int, Any] = {}

    def model(self, model: Any, path: str) -> keras.Model:
        if id(model) not in self.models:
            self.models[id(model)] = rebuild(model, self, path=path)
        return self.models[id(model)]

    def __call__(self, graph: Graph, op: Any, node: Any, args: tuple, kwargs: dict) -> Any:
        if not isinstance(op, keras.layers.Layer):
            new = self.layers.setdefault(id(op), clone_operation(op))
            return new(*args, **kwargs)
        if is_graph_model(op):
            return self.model(op, graph.layer_path(op))(*args, **kwargs)
        if id(op) in self.layers:
            return self.layers[id(op)](*args, **kwargs)
        path = graph.layer_path(op)
        swap = None
        if not any(p.search(path) for p in self.exclude):
            swap = self.swap(op, node)
        if swap is None:
            new = copy_layer(op)
            outputs = new(*args, **kwargs)
            copy_weights(op, new)
        else:
            new, carry = swap
            outputs = new(*args, **kwargs)
            carry(new)
        self.layers[id(op)] = new
        return outputs

    def swap(self, layer: Any, node: Any) -> tuple[Any, Any] | None:
        if self.conv is not None and type(layer) is keras.layers.Conv2D:
            if self.conv == "ws":
                return self.ws(layer)
            refusal = block_refusal(layer, tuple(node.input_tensors[0].shape))
            if refusal is None:
                return self.block(layer)
        if self.norm is not None and type(layer) in (keras.layers.BatchNormalization, FusedBatchNormalization):
            if self.norm == "fused_bn" and type(layer) is keras.layers.BatchNormalization:
                new = FusedBatchNormalization.from_config(layer.get_config())
                return new, lambda n: copy_weights(layer, n)
            if self.norm == "ebn":
                if getattr(layer, "renorm", False) or not isinstance(layer.axis, int):
                    return None  # EBN has neither renorm nor several axes
                return self.ebn(layer), lambda n: copy_weights(layer, n)
        return None

    @staticmethod
    def ws(conv: Any) -> tuple[Any, Any]:
        """WSConv2D with the conv's config; kernel and bias carried, gain 1.

        The kernel is standardized on every call, so the outputs change: the carried
        kernel is a starting point, not the same function.
        """
        new = WSConv2D.from_config(conv.get_config())

        def carry(n: Any) -> None:
            by_name = {v.name: v for v in n.weights}
            by_name["kernel"].assign(keras.ops.convert_to_numpy(conv.kernel))
            if conv.use_bias:
                by_name["bias"].assign(keras.ops.convert_to_numpy(conv.bias))

        return new, carry

    def block(self, conv: Any) -> tuple[Any, Any]:
        """ACBlock / RepVGGBlock computing the conv in inference.

        The square branch gets the kernel; its norm the identity in inference (moving mean
        0, moving variance ``1 - epsilon``, gamma 1) with the conv's bias as beta; every
        other branch's norm gets gamma 0 (zero-initialised, Goyal et al. 2017), so the block
        outputs the conv's values and the other branches start learning from step one
        (a zero kernel behind a BatchNormalization would get gradients scaled by
        ``1 / sqrt(epsilon)``).
        """
        cls = ACBlock if self.conv == "acnet" else RepVGGBlock
        new = cls(
            conv.filters, conv.kernel_size[0], strides=conv.strides[0], padding=conv.padding,
            use_bias=False, kernel_initializer=conv.kernel_initializer,
            kernel_regularizer=conv.kernel_regularizer, dtype=conv.dtype_policy, name=conv.name,
        )

        def carry(block: Any) -> None:
            square = block.square_bn
            channels = (conv.filters,)
            block.square.kernel.assign(keras.ops.convert_to_numpy(conv.kernel))
            square.moving_mean.assign(np.zeros(channels, "float32"))
            square.moving_variance.assign(np.full(channels, 1.0 - square.epsilon, "float32"))
            square.gamma.assign(np.ones(channels, "float32"))
            square.beta.assign(keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else np.zeros(channels, "float32"))
            for branch in block.branches:
                if branch.bn is not square:
                    branch.bn.gamma.assign(np.zeros(channels, "float32"))

        return new, carry

    @staticmethod
    def ebn(bn: Any) -> Any:
        """ExtendedBatchNormalization (``variance_groups=1``) with the BN's settings.

        All four statistics are carried: in inference EBN uses them exactly as BN does, so
        the outputs are unchanged until training updates the pooled variance.
        """
        ser = keras.saving.serialize_keras_object
        return ExtendedBatchNormalization(
            axis=bn.axis, momentum=bn.momentum, epsilon=bn.epsilon, center=bn.center, scale=bn.scale,
            variance_groups=1,
            beta_initializer=ser(bn.beta_initializer), gamma_initializer=ser(bn.gamma_initializer),
            moving_mean_initializer=ser(bn.moving_mean_initializer),
            moving_variance_initializer=ser(bn.moving_variance_initializer),
            beta_regularizer=ser(bn.beta_regularizer), gamma_regularizer=ser(bn.gamma_regularizer),
            beta_constraint=ser(bn.beta_constraint), gamma_constraint=ser(bn.gamma_constraint),
            dtype=bn.dtype_policy, name=bn.name,
        )


def convert(
    model: keras.Model,
    *,
    conv: str | None = None,
    norm: str | None = None,
    exclude: str | list[str] | tuple[str, ...] = (),
) -> keras.Model:
    """A copy of any functional model with its ``Conv2D`` / ``BatchNormalization`` layers swapped.

    ``conv``:

    * ``"ws"``: every ``Conv2D`` → :class:`~tenfold.layers.WSConv2D` with the same
      config; kernel and bias carried (the kernel is standardized, so outputs change);
    * ``"acnet"`` / ``"repvgg"``: every ``Conv2D`` the block computes exactly (square odd
      kernel larger than 1×1, equal strides, no dilation, one group, channels last,
      linear activation, ``"valid"`` padding or ``"same"`` where Keras pads symmetrically:
      stride 1, or stride 2 on odd input sizes; see :func:`block_refusal`) →
      :class:`~tenfold.layers.ACBlock` / :class:`~tenfold.layers.RepVGGBlock` with the same
      filters, kernel size, strides and padding. 1×1 convolutions stay. The square branch
      carries the kernel (its norm the identity, the conv's bias as beta), the other
      branches' norms start at gamma 0: the outputs are unchanged in inference (RepVGG's
      identity branch exists where the conv keeps the width at stride 1).

    ``norm``: every ``BatchNormalization`` (and ``FusedBatchNormalization`` for ``"ebn"``)
    → :class:`~tenfold.layers.ExtendedBatchNormalization` (``variance_groups=1``) or
    :class:`~tenfold.layers.FusedBatchNormalization`, with all four statistics: the same
    outputs in inference.

    Layers whose path (``name``, or ``inner_model/name`` in a nested model) matches a
    regex of ``exclude`` (``re.search``) stay. Every other layer, ``keras.ops`` node,
    shared layer and nested model (converted too, as a Functional model) is copied with
    its weights; the result is not compiled. ``deploy(convert(m, conv="acnet"))`` has the
    parameter count and layer classes of ``deploy(m)`` when every converted conv has a
    bias or a BatchNormalization after it.

    Args:
        model: a Functional or Sequential ``keras.Model``.
        conv: None, ``"ws"``, ``"acnet"`` or ``"repvgg"``. Defaults to `None`.
        norm: None, ``"ebn"`` or ``"fused_bn"``. Defaults to `None`.
        exclude: a regex or a list of them. Defaults to `()`.

    Returns:
        A new Functional ``keras.Model``.

    Example:
    >>> i = keras.Input((8, 8, 3))
    >>> h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding="same")(i))
    >>> m = tenfold.reparam.convert(keras.Model(i, h), conv="acnet", norm="ebn")
    >>> [type(layer).__name__ for layer in m.layers[1:]]
    ['ACBlock', 'ExtendedBatchNormalization']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, received {model!r} of type {type(model).__name__}.")
    conv = _validate.choice("conv", conv, (None, *CONVS))
    norm = _validate.choice("norm", norm, (None, *NORMS))
    patterns = compile_patterns("exclude", exclude)
    functional_graph(model, what="convert")
    return _Converter(conv, norm, patterns).model(model, "")

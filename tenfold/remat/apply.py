"""Wrap a model's sequence of blocks into recomputed segments (Chen et al. 2016, √n policy).

References:
    Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost",
    https://arxiv.org/abs/1604.06174 — with n blocks cut into k segments, the forward pass
    keeps k segment inputs and the backward pass holds one segment's activations at a time:
    memory O(k + n/k), smallest at k ≈ √n, for one extra forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from tenfold._api import export
from tenfold.models.blocks import ResidualBlock
from tenfold.remat.recompute import Recompute

_BLOCK_TYPES: tuple[type, ...] = (ResidualBlock,)
_WEIGHTED_TYPES: tuple[type, ...] = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
)


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order, if the model is a single chain; else ValueError."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if not isinstance(model, keras.Model) or not hasattr(model, "_operations"):
        raise TypeError(
            f"model must be a functional or Sequential keras.Model, received {type(model).__name__}."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"remat.apply needs a model with one input and one output (a chain of layers); "
            f"{model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs. "
            "Wrap its segments with tenfold.remat.Recompute yourself."
        )
    layers = [op for op in model._operations if not isinstance(op, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in layers:
        # a layer shared with another model (e.g. after an earlier apply) has more nodes
        node = next(
            (n for n in layer._inbound_nodes
             if len(n.input_tensors) == 1 and n.input_tensors[0] is previous and len(n.outputs) == 1),
            None,
        )
        if node is None:
            raise ValueError(
                f"remat.apply needs a chain of layers (each layer feeding the next); layer "
                f"{layer.name!r} of model {model.name!r} breaks the chain. Wrap its segments "
                "with tenfold.remat.Recompute yourself."
            )
        previous = node.outputs[0]
    if previous is not model.outputs[0]:
        raise ValueError(
            f"remat.apply needs a chain of layers; model {model.name!r} does not end with its "
            "last layer's output."
        )
    return layers


def _blocks(layers: list[keras.layers.Layer]) -> list[int]:
    """Indices of the layers that count as blocks."""
    blocks = [i for i, layer in enumerate(layers) if isinstance(layer, _BLOCK_TYPES)]
    if blocks:
        return blocks
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, _WEIGHTED_TYPES)]
    # the last weighted layer is the head: it stays out of the segments
    return weighted[:-1]


def segments_for(policy: str | int | Sequence[str], num_blocks: int) -> int:
    """Number of segments for ``policy`` over ``num_blocks`` blocks (``"sqrt"`` → ≈√n).

    Example:
    >>> segments_for("sqrt", 16), segments_for(3, 16)
    (4, 3)
    """
    if isinstance(policy, bool) or not isinstance(policy, (str, int)):
        raise TypeError(f"policy must be 'sqrt', an int or a list of layer names, received {policy!r}.")
    if isinstance(policy, str):
        if policy != "sqrt":
            raise ValueError(
                f"policy must be 'sqrt', a positive int or a list of layer names, received {policy!r}."
            )
        return max(1, min(num_blocks, round(math.sqrt(num_blocks))))
    if policy < 1:
        raise ValueError(f"policy as a segment count must be >= 1, received {policy!r}.")
    if policy > num_blocks:
        raise ValueError(
            f"policy asks for {policy} segments but the model has only {num_blocks} blocks."
        )
    return policy


def _output_sizes(layers: list[keras.layers.Layer], blocks: list[int]) -> list[float]:
    """Elements per example of each block's output (its activations scale with it)."""
    sizes = []
    for i in blocks:
        try:
            shape = layers[i].output.shape
            sizes.append(float(math.prod(int(d) for d in shape[1:] if d is not None)) or 1.0)
        except (AttributeError, ValueError, TypeError):
            sizes.append(1.0)
    return sizes


def balanced_cuts(sizes: Sequence[float], count: int) -> list[int]:
    """Start indices of ``count`` contiguous segments of ``sizes`` with near-equal sums.

    Chen et al. segment by memory cost, not by layer count: a ResNet's early blocks hold
    larger activations than its late ones, so equal-count segments would leave the first
    segment (recomputed whole) as large as the plain model's early stages.

    Example:
    >>> balanced_cuts([1, 1, 1, 1], 2), balanced_cuts([4, 4, 2, 2, 1, 1, 1, 1], 3)
    ([0, 2], [0, 2, 4])
    """
    n = len(sizes)
    if not 1 <= count <= n:
        raise ValueError(f"count must be between 1 and {n}, received {count}.")
    total = float(sum(sizes))
    starts = [0]
    running = 0.0
    for i, size in enumerate(sizes[:-1]):
        running += size
        remaining_cuts = count - len(starts)
        if remaining_cuts == 0:
            break
        # cut after block i when the running sum reaches the next share, keeping enough
        # blocks for the cuts still to come
        if running >= total * len(starts) / count - 1e-9 or n - (i + 1) == remaining_cuts:
            starts.append(i + 1)
    return starts


@export("tenfold.remat.apply")
def apply(model: keras.Model, policy: str | int | Sequence[str] = "sqrt") -> keras.Model:
    """A copy of ``model`` whose blocks run inside :class:`Recompute` segments.

    The model must be a chain of layers (Sequential, or functional with one path), like
    :func:`tenfold.models.small_resnet` (its ``ResidualBlock`` layers are the blocks) or
    :func:`tenfold.models.mlp` (its Dense layers but the head are the blocks; a Dropout
    between them joins the segment). Layers before the first block (the stem) and after
    the last (pooling, the head) are kept as they are. The returned model shares the
    original layers and weights; its outputs and gradients are the same.

    Args:
        model: keras.Model. A Sequential model or a functional chain.
        policy: ``"sqrt"`` (≈√n segments, Chen et al.), an int (that many segments), or a
            list of layer names (each named layer is wrapped on its own). Segments are cut
            so that their blocks' output sizes (a proxy for their activation memory) are
            near-equal: equal block counts when the blocks are alike.

    Returns:
        A new keras.Model of the same kind and name.

    Example:
    >>> model = tenfold.models.small_resnet((8, 8, 1), 10, blocks=(2, 2))
    >>> [l.name for l in apply(model, "sqrt").layers if "recompute" in l.name]
    ['recompute_1', 'recompute_2']
    """
    layers = _chain(model)
    if isinstance(policy, (list, tuple)):
        names = [layer.name for layer in layers]
        unknown = [n for n in policy if n not in names]
        if unknown or not policy:
            raise ValueError(
                f"policy names layers {unknown or policy!r} that are not in model {model.name!r}; "
                f"its layers are {names}."
            )
        groups = [[i] for i in range(len(layers)) if layers[i].name in policy]
    else:
        blocks = _blocks(layers)
        if not blocks:
            raise ValueError(
                f"model {model.name!r} has no blocks to segment (ResidualBlock layers, or "
                "Dense/Conv layers other than the head)."
            )
        count = segments_for(policy, len(blocks))
        starts = balanced_cuts(_output_sizes(layers, blocks), count)
        cuts = [blocks[i] for i in starts]
        ends = cuts[1:] + [blocks[-1] + 1]
        groups = [list(range(a, b)) for a, b in zip(cuts, ends)]
    wrapped: dict[int, Recompute] = {}
    for number, group in enumerate(groups, start=1):
        members = [layers[i] for i in group]
        inner = members[0] if len(members) == 1 else keras.Sequential(
            members, name=f"segment_{number}"
        )
        wrapped[group[0]] = Recompute(inner, name=f"recompute_{number}")
    skip = {i for group in groups for i in group[1:]}
    sequence = [wrapped.get(i, layer) for i, layer in enumerate(layers) if i not in skip]
    if isinstance(model, keras.Sequential):
        new = keras.Sequential(sequence, name=model.name)
        if model.inputs:
            new.build(model.inputs[0].shape)
        return new
    inputs = keras.Input(
        batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype, name=model.inputs[0].name
    )
    x = inputs
    for layer in sequence:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)

"""``deploy(model)``: the inference form of a model, every fusable branch folded.

References:
    Ding et al. 2019, "ACNet", https://arxiv.org/abs/1908.03930; Ding et al. 2021,
    "RepVGG", https://arxiv.org/abs/2101.03697 (the one-walker-for-the-whole-model pattern
    follows timm's ``reparameterize_model``).
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np

from tenfold.layers._branches import BranchBlock
from tenfold.reparam.fusion import (
    effective_weights,
    fused_counterpart,
    is_norm,
    is_producer,
    set_fused_weights,
)


def _is_functional(model: Any) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(model, Functional) and not isinstance(model, keras.Sequential)


def _composite_ready(layer: Any) -> bool:
    """A layer that offers a fused form through ``fused`` config + ``fusion_pairs()``."""
    if not (hasattr(layer, "fusion_pairs") and "fused" in layer.get_config()):
        return False
    if layer.get_config()["fused"] or not layer.built:
        return False
    for conv_attr, norm_attr in layer.fusion_pairs():
        conv = getattr(layer, conv_attr, None)
        norm = getattr(layer, norm_attr, None) if norm_attr else None
        if conv is None:
            continue
        if not is_producer(conv) or (norm is not None and not is_norm(norm)):
            return False
    return True


def _layer_variables(layer: Any) -> list[Any]:
    return list(layer.weights) if layer is not None else []


def _fill_composite(old: Any, new: Any) -> None:
    """Fused weights of each (conv, norm) pair, then the block's remaining variables."""
    fused_old: set[int] = set()
    fused_new: set[int] = set()
    for conv_attr, norm_attr in old.fusion_pairs():
        conv = getattr(old, conv_attr, None)
        if conv is None:
            continue
        norm = getattr(old, norm_attr, None) if norm_attr else None
        target = getattr(new, conv_attr)
        set_fused_weights(target, *effective_weights(conv, norm))
        fused_old.update(id(v) for v in _layer_variables(conv) + _layer_variables(norm))
        fused_new.update(id(v) for v in _layer_variables(target))
    rest_old = [v for v in old.weights if id(v) not in fused_old]
    rest_new = [v for v in new.weights if id(v) not in fused_new]
    if len(rest_old) != len(rest_new):
        raise ValueError(
            f"cannot deploy {old.name!r}: {len(rest_old)} unfused variables, {len(rest_new)} in its fused form."
        )
    for a, b in zip(rest_old, rest_new):
        b.assign(np.asarray(a))


class _Deployer:
    """Builds the deploy form of one Functional or Sequential model."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any, Any]] = []  # (old layer, new layer, folded norm)
        self.memo: dict[int, Any] = {}

    def convert(self, layer: Any, folded: dict[int, Any], absorbed: set[int]) -> Any:
        if id(layer) in self.memo:
            return self.memo[id(layer)]
        if id(layer) in absorbed:
            new = keras.layers.Identity(name=layer.name)
            self.pairs.append((layer, new, "absorbed"))
        elif isinstance(layer, keras.Model) and (_is_functional(layer) or isinstance(layer, keras.Sequential)):
            new = deploy(layer)
            self.pairs.append((layer, new, "model"))
        elif id(layer) in folded or (isinstance(layer, BranchBlock) and layer.built and not layer.deploy):
            new = fused_counterpart(layer)
            self.pairs.append((layer, new, folded.get(id(layer))))
        elif _composite_ready(layer):
            new = type(layer).from_config({**layer.get_config(), "fused": True})
            self.pairs.append((layer, new, "composite"))
        else:
            new = type(layer).from_config(layer.get_config())
            self.pairs.append((layer, new, "copy"))
        self.memo[id(layer)] = new
        return new

    def fill(self) -> None:
        for old, new, how in self.pairs:
            if how in ("absorbed", "model"):
                continue
            if how == "composite":
                _fill_composite(old, new)
            elif how == "copy":
                if len(old.weights) != len(new.weights):
                    raise ValueError(f"cannot copy layer {old.name!r}: its clone has other variables.")
                for a, b in zip(old.weights, new.weights):
                    b.assign(np.asarray(a))
            else:  # a producer, ``how`` is the norm folded into it (or None)
                set_fused_weights(new, *effective_weights(old, how))


def _call(layer: Any, *args: Any, **kwargs: Any) -> Any:
    # an absorbed norm became an Identity, which takes no ``mask``/``training`` arguments
    if isinstance(layer, keras.layers.Identity):
        return layer(args[0])
    return layer(*args, **kwargs)


def _functional_folds(model: Any) -> tuple[dict[int, Any], set[int]]:
    """Producer → norm pairs of a Functional model whose norm can be folded in."""
    outputs = {id(t) for t in keras.tree.flatten(model.outputs)}
    folded: dict[int, Any] = {}
    absorbed: set[int] = set()
    for layer in model.layers:
        if not is_norm(layer) or len(layer._inbound_nodes) != 1:
            continue
        node = layer._inbound_nodes[0]
        tensors = keras.tree.flatten(node.arguments.keras_tensors) if hasattr(node, "arguments") else []
        if len(tensors) != 1:
            continue
        history = getattr(tensors[0], "_keras_history", None)
        producer = history.operation if history is not None else None
        if (
            producer is None
            or not is_producer(producer)
            or len(producer._inbound_nodes) != 1
            or len(producer._outbound_nodes) != 1
            or id(tensors[0]) in outputs
            or id(producer) in folded
        ):
            continue
        if isinstance(producer, BranchBlock) and not producer.built:
            continue
        folded[id(producer)] = layer
        absorbed.add(id(layer))
    return folded, absorbed


def deploy(model: keras.Model) -> keras.Model:
    """A new model with every fusable branch folded; same outputs in inference.

    * every :class:`~tenfold.layers.ACBlock` / :class:`~tenfold.layers.RepVGGBlock` becomes
      its ``deploy=True`` form: one ``Conv2D`` with the fused kernel and bias;
    * every ``Conv2D`` (or ``WSConv2D``, ACBlock, RepVGGBlock) whose only consumer is a
      ``BatchNormalization`` / ``ExtendedBatchNormalization`` absorbs it: the conv gets the
      folded kernel and bias, the norm becomes ``keras.layers.Identity``;
    * blocks that offer a fused form (``fused`` config flag and ``fusion_pairs()``, e.g.
      :class:`tenfold.models.ResidualBlock`, whose convs are attributes) are rebuilt fused;
    * nested Functional / Sequential models are deployed recursively;
    * every other layer is copied unchanged, weights included.

    The input model is not modified. Works on Functional and Sequential models (built).

    Args:
        model: a built ``keras.Model`` (Functional or Sequential).

    Returns:
        A new ``keras.Model`` of the same class family, compiled like ``model`` if it was.

    Example:
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), tenfold.layers.ACBlock(4),
    ...                           keras.layers.BatchNormalization()])
    >>> fused = tenfold.reparam.deploy(model)
    >>> [type(layer).__name__ for layer in fused.layers]
    ['ACBlock', 'Identity']
    >>> x = np.random.normal(size=(2, 8, 8, 3))
    >>> bool(max_difference(model, fused, x) < 1e-4)
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, received {type(model).__name__}.")
    deployer = _Deployer()
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(f"model {model.name!r} must be built (give it an Input) before deploy.")
        layers = list(model.layers)
        folded: dict[int, Any] = {}
        absorbed: set[int] = set()
        for first, second in itertools.pairwise(layers):
            if is_producer(first) and is_norm(second) and id(first) not in folded and id(first) not in absorbed:
                folded[id(first)] = second
                absorbed.add(id(second))
        new_layers = [deployer.convert(layer, folded, absorbed) for layer in layers]
        spec = model.inputs[0]
        new_model = keras.Sequential(
            [keras.Input(batch_shape=spec.shape, dtype=spec.dtype), *new_layers], name=model.name
        )
    elif _is_functional(model):
        folded, absorbed = _functional_folds(model)
        new_model = keras.models.clone_model(
            model,
            clone_function=lambda layer: deployer.convert(layer, folded, absorbed),
            call_function=_call,
        )
    else:
        raise TypeError(
            f"deploy works on Functional and Sequential models; {model.name!r} is a subclassed "
            f"{type(model).__name__}. Build it functionally, or deploy its Functional parts."
        )
    deployer.fill()
    return new_model


def max_difference(a: keras.Model, b: keras.Model, x: Any, *, batch_size: int = 256) -> float:
    """Largest absolute difference between the inference outputs of two models on ``x``.

    Example:
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> max_difference(m, m, np.ones((4, 3)))
    0.0
    """
    ya = keras.tree.flatten(a.predict(x, batch_size=batch_size, verbose=0))
    yb = keras.tree.flatten(b.predict(x, batch_size=batch_size, verbose=0))
    if len(ya) != len(yb):
        raise ValueError(f"the models have {len(ya)} and {len(yb)} outputs.")
    return float(max(np.max(np.abs(np.asarray(p, "float64") - np.asarray(q, "float64"))) for p, q in zip(ya, yb)))


def parameter_count(model: keras.Model) -> int:
    """Number of scalars in all of ``model``'s variables (trainable and not)."""
    return int(sum(int(np.prod(v.shape)) for v in model.weights))

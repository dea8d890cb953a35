"""Expanders: third-party layers that ``deploy`` rewrites as the plain Keras layers they compute.

A model from another library (KerasHub's ``BertBackbone``) is a Functional graph whose
nodes are that library's layers; deployed as copies they keep the library's class names in
the config, and the saved model needs the library to load. An *expander* replaces one such
layer, at inference, by plain ``keras.layers`` and ``keras.ops`` nodes with the same
weights, so the deployed model loads with ``import keras`` alone.

:data:`EXPANDERS` maps ``(top-level package, class name)`` of the layer's exact class (a
subclass may change ``call``, so it is not matched) to a function
``expander(deployer, layer, emitter, args, kwargs)`` returning the new outputs, or None when
this call uses something the expander does not reproduce exactly (then the layer is copied
as it is). A layer without an expander is copied with its weights, as before.

Registered (KerasHub, the forward call at inference):

* ``TransformerEncoder`` → ``LayerNormalization``, ``MultiHeadAttention``, ``Dropout``,
  ``Add``, ``Dense`` in its ``call``'s order (``normalize_first`` either way); the
  ``padding_mask`` / ``attention_mask`` merged as KerasHub's
  ``merge_padding_and_attention_mask`` does (``expand_dims``, ``cast``, ``minimum``);
  KerasHub's ``gelu_approximate`` as ``keras.ops.gelu(approximate=True)``. Not expanded:
  ``return_attention_scores=True``, an input carrying a Keras mask, a non-Keras activation.
* ``ReversibleEmbedding`` (KerasHub's, and Keras' own, which recent KerasHub models use;
  only when no call is ``reverse=True``) → ``keras.layers.Embedding``; not a quantized one.
* ``PositionEmbedding`` (``start_index=0``, no ``positions``) → positions ``0..S-1`` made
  from the input (``cumsum`` of ``ones_like``, so any sequence length works) looked up in a
  ``keras.layers.Embedding`` holding the position table: the table's first ``S`` rows,
  broadcast over the batch, exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from tenfold.reparam.graph import copy_layer, copy_weights

Expander = Callable[[Any, Any, Any, tuple, dict], Any]
EXPANDERS: dict[tuple[str, str], Expander] = {}


def register(package: str, class_name: str) -> Callable[[Expander], Expander]:
    """Decorator: ``fn`` expands layers whose exact class is ``package``'s ``class_name``."""

    def decorate(fn: Expander) -> Expander:
        EXPANDERS[(package, class_name)] = fn
        return fn

    return decorate


def expander_for(layer: Any) -> Expander | None:
    """The expander registered for ``layer``'s exact class, or None."""
    cls = type(layer)
    return EXPANDERS.get((cls.__module__.split(".")[0], cls.__name__))


def _copy(deployer: Any, em: Any, key: str, sub: Any, args: tuple, kwargs: dict | None = None) -> Any:
    """``sub`` (a plain Keras sub-layer) copied under the deploy policy, weights carried."""
    policy = deployer.policy_for(sub)
    return em(key, lambda name: copy_layer(sub, dtype=policy, name=name), args, kwargs,
              weights=lambda new: copy_weights(sub, new))


def _is_keras(fn: Any) -> bool:
    return getattr(fn, "__module__", "").split(".")[0] == "keras"


def _activation_op(fn: Any) -> Callable[[Any], Any] | None:
    """A ``keras.ops`` form of a third-party activation known to equal one, else None."""
    if getattr(fn, "__module__", "").split(".")[0] == "keras_hub" and fn.__name__ == "gelu_approximate":
        return lambda x: keras.ops.gelu(x, approximate=True)
    return None


@register("keras_hub", "TransformerEncoder")
def transformer_encoder(deployer: Any, layer: Any, em: Any, args: tuple, kwargs: dict) -> Any:
    """KerasHub's ``TransformerEncoder.call`` (inference) as plain layers; see the module doc."""

    kwargs = dict(kwargs)
    x = args[0] if args else kwargs.pop("inputs")
    padding_mask = args[1] if len(args) > 1 else kwargs.get("padding_mask")
    attention_mask = args[2] if len(args) > 2 else kwargs.get("attention_mask")
    if len(args) > 3 or kwargs.get("return_attention_scores") or not layer.built:
        return None
    if getattr(x, "_keras_mask", None) is not None:
        return None
    activation = layer._feedforward_intermediate_dense.activation
    act_op = None if _is_keras(activation) else _activation_op(activation)
    if not _is_keras(activation) and act_op is None:
        return None

    mask = None
    if padding_mask is not None:
        mask = keras.ops.cast(keras.ops.expand_dims(padding_mask, axis=1), "int32")
    if attention_mask is not None:
        attention_mask = keras.ops.cast(attention_mask, "int32")
        mask = attention_mask if mask is None else keras.ops.minimum(mask, attention_mask)

    policy = deployer.policy_for(layer)
    first = layer.normalize_first

    def add(key: str, a: Any, b: Any, *, last: bool) -> Any:
        return em("" if last else key, lambda name: keras.layers.Add(dtype=policy, name=name), ([a, b],),
                  name=None if not last else em.primary)

    residual = x
    if first:
        x = _copy(deployer, em, "self_attention_layer_norm", layer._self_attention_layer_norm, (x,))
    x = _copy(deployer, em, "self_attention_layer", layer._self_attention_layer, (x, x),
              {"attention_mask": mask} if mask is not None else {})
    x = _copy(deployer, em, "self_attention_dropout", layer._self_attention_dropout, (x,))
    x = add("self_attention_add", x, residual, last=False)
    if not first:
        x = _copy(deployer, em, "self_attention_layer_norm", layer._self_attention_layer_norm, (x,))

    residual = x
    if first:
        x = _copy(deployer, em, "feedforward_layer_norm", layer._feedforward_layer_norm, (x,))
    dense = layer._feedforward_intermediate_dense
    if act_op is None:
        x = _copy(deployer, em, "feedforward_intermediate_dense", dense, (x,))
    else:
        config = {**dense.get_config(), "activation": "linear", "dtype": deployer.policy_for(dense)}
        x = em("feedforward_intermediate_dense", lambda name: keras.layers.Dense.from_config({**config, "name": name}),
               (x,), weights=lambda new: copy_weights(dense, new))
        x = act_op(x)
    x = _copy(deployer, em, "feedforward_output_dense", layer._feedforward_output_dense, (x,))
    x = _copy(deployer, em, "feedforward_dropout", layer._feedforward_dropout, (x,))
    if first:
        return add("feedforward_add", x, residual, last=True)
    x = add("feedforward_add", x, residual, last=False)
    return _copy(deployer, em, "", layer._feedforward_layer_norm, (x,))


def _embedding(deployer: Any, layer: Any, em: Any, x: Any, table: Any, *, mask_zero: bool = False) -> Any:
    policy = deployer.policy_for(layer)
    rows, width = tuple(table.shape)

    def make(name: str) -> Any:
        return keras.layers.Embedding(rows, width, mask_zero=mask_zero, dtype=policy, name=name)

    def weights(new: Any) -> None:
        new.embeddings.assign(keras.ops.convert_to_numpy(table))

    return em("", make, (x,), weights=weights)


@register("keras_hub", "ReversibleEmbedding")
@register("keras", "ReversibleEmbedding")
def reversible_embedding(deployer: Any, layer: Any, em: Any, args: tuple, kwargs: dict) -> Any:
    """The forward call (``reverse=False``) of a ``ReversibleEmbedding``: an ``Embedding``.

    Not when any call of the layer in the graph is ``reverse=True`` (the layer is copied, so
    both calls share one copy).
    """
    if len(args) != 1 or getattr(layer, "quantization_mode", None) or not layer.built:
        return None
    if any(node.operation is layer and (node.arguments.kwargs.get("reverse") or len(node.arguments.args) > 1)
           for node in em.graph.nodes):
        return None
    return _embedding(deployer, layer, em, args[0], layer.embeddings, mask_zero=bool(layer.mask_zero))


@register("keras_hub", "PositionEmbedding")
def position_embedding(deployer: Any, layer: Any, em: Any, args: tuple, kwargs: dict) -> Any:
    """KerasHub's ``PositionEmbedding`` (``start_index=0``) as an ``Embedding`` of positions 0..S-1."""
    start = kwargs.get("start_index", args[1] if len(args) > 1 else 0)
    positions = kwargs.get("positions", args[2] if len(args) > 2 else None)
    if len(args) != 1 or positions is not None or not isinstance(start, int) or start != 0 or not layer.built:
        return None
    x = args[0]
    rank = len(x.shape)
    if rank < 2:
        return None
    first_feature = x[(slice(None),) * (rank - 1) + (0,)]  # [..., S]
    index = keras.ops.cumsum(keras.ops.ones_like(first_feature, dtype="int32"), axis=-1) - 1
    return _embedding(deployer, layer, em, index, layer.position_embeddings)

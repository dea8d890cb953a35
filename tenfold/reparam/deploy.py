"""``deploy(model)``: the inference form of any functional model, as plain Keras layers.

Every BatchNormalization-like layer that directly follows a linear layer on its channel
axis is folded into it (see :mod:`tenfold.reparam.fusion`), every multi-branch block is one
convolution, and every tenfold layer becomes the Keras layers that compute the same thing,
so the deployed model loads with ``import keras`` alone.

References:
    Ding et al. 2019, "ACNet", https://arxiv.org/abs/1908.03930; Ding et al. 2021,
    "RepVGG", https://arxiv.org/abs/2101.03697 (one walker for the whole model, as timm's
    ``reparameterize_model``); Jacob et al. 2018, "Quantization and Training of Neural
    Networks for Efficient Integer-Arithmetic-Only Inference", §3.2 (batch-norm folding),
    https://arxiv.org/abs/1712.05877
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tenfold.layers._branches import BranchBlock
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.fused_batch_norm import FusedBatchNormalization
from tenfold.layers.ws_conv import WSConv1D, WSConv2D, WSDense
from tenfold.reparam.expand import expander_for
from tenfold.reparam.fusion import (
    branch_padding,
    channel_axis,
    deploy_form,
    is_norm,
    is_producer,
    norm_axis,
    plain_class,
    producer_weights,
)
from tenfold.reparam.graph import (
    Graph,
    all_layers,
    assign_weights,
    clone_operation,
    copy_layer,
    copy_weights,
    dtype_policy,
    functional_graph,
    is_graph_model,
    producer,
    rebuild,
)

_WS = (WSConv1D, WSConv2D, WSDense)
_NORMS = (keras.layers.BatchNormalization, ExtendedBatchNormalization)
LOWERED = (
    "ACBlock, RepVGGBlock, WSConv1D, WSConv2D, WSDense, FusedBatchNormalization, "
    "ExtendedBatchNormalization, NormedDense, ResidualBlock, NFResidualBlock, ScaledActivation, Recompute"
)


def _policy_name(dtype: Any) -> str:
    try:
        return keras.dtype_policies.get(dtype).name
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"dtype must be a Keras dtype policy name such as 'float32', 'mixed_bfloat16', "
            f"'mixed_float16', 'bfloat16' or 'float16', received {dtype!r}."
        ) from err


def _policy_rule(model: keras.Model, target: str) -> Callable[[Any], Any]:
    """The dtype policy of each rebuilt layer: ``target``, with two exceptions.

    Layers with a non-float policy (integer lookups, quantized layers) keep theirs; when
    ``target`` is not float32 and the model mixes policies, layers that were explicitly
    float32 (a float32 head under ``mixed_bfloat16``) stay float32.
    """
    policies = [getattr(layer, "dtype_policy", None) for layer in all_layers(model)]
    mixed = any(p is not None and p.name != "float32" for p in policies)

    def policy_for(layer: Any) -> Any:
        policy = getattr(layer, "dtype_policy", None)
        if policy is None:
            return target
        if getattr(policy, "quantization_mode", None) or not keras.backend.is_float_dtype(policy.compute_dtype):
            return policy
        if target != "float32" and mixed and policy.name == "float32":
            return "float32"
        return target

    return policy_for


class _Emitter:
    """The plain layers one original layer becomes, made on its first call, reused after.

    A shared layer is called once per node; its second call reuses the layers (and
    weights) of the first, so the deployed model shares them the same way.
    """

    def __init__(self, graph: Graph, base: str, primary: str | None = None) -> None:
        self.graph = graph
        self.base = base
        self.primary = primary
        self.layers: dict[str, Any] = {}

    def child(self, key: str) -> _Emitter:
        if key not in self.layers:
            self.layers[key] = _Emitter(self.graph, f"{self.base}_{key}")
        return self.layers[key]

    def __call__(
        self,
        key: str,
        make: Callable[[str], Any],
        args: tuple,
        kwargs: dict | None = None,
        *,
        weights: Callable[[Any], None] | None = None,
        name: str | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        layer = self.layers.get(key)
        if layer is not None:
            return layer(*args, **kwargs)
        if name is None:
            name = self.primary if key == "" and self.primary else self.graph.fresh_name(
                f"{self.base}_{key}" if key else self.base
            )
        layer = make(name)
        outputs = layer(*args, **kwargs)
        if weights is not None:
            weights(layer)
        self.layers[key] = layer
        return outputs


class _Deployer:
    """The handler of :func:`tenfold.reparam.graph.rebuild` that makes the deploy form."""

    def __init__(self, policy_for: Callable[[Any], Any]) -> None:
        self.policy_for = policy_for
        self.models: dict[int, keras.Model] = {}
        self.emitters: dict[int, _Emitter] = {}
        self.operations: dict[int, Any] = {}
        self.folds: dict[int, tuple[dict[int, Any], set[int]]] = {}

    # -- models and graph nodes ----------------------------------------------------------
    def model(self, model: Any, path: str) -> keras.Model:
        if id(model) not in self.models:
            self.models[id(model)] = rebuild(model, self, path=path)
        return self.models[id(model)]

    def __call__(self, graph: Graph, op: Any, node: Any, args: tuple, kwargs: dict) -> Any:
        folded, absorbed = self._folds(graph)
        if not isinstance(op, keras.layers.Layer):  # a keras.ops node: x + y, x[:, 0], ...
            new = self.operations.setdefault(id(op), clone_operation(op))
            return new(*args, **kwargs)
        if id(op) in absorbed:
            return args[0]
        if is_graph_model(op):
            return self.model(op, graph.layer_path(op))(*args, **kwargs)
        if id(op) not in self.emitters:
            self.emitters[id(op)] = _Emitter(graph, op.name, primary=op.name)
        return self.lower(op, self.emitters[id(op)], args, kwargs, folded.get(id(op)))

    def _folds(self, graph: Graph) -> tuple[dict[int, Any], set[int]]:
        """Producer → norm pairs of ``graph`` whose norm folds into the producer."""
        if id(graph) in self.folds:
            return self.folds[id(graph)]
        folded: dict[int, Any] = {}
        absorbed: set[int] = set()
        for node in graph.nodes:
            norm = node.operation
            if not is_norm(norm) or graph.calls[id(norm)] != 1 or len(node.input_tensors) != 1:
                continue
            if node.arguments.kwargs.get("training") is True:  # always batch statistics
                continue
            tensor = node.input_tensors[0]
            source = producer(tensor)
            if (
                source is None
                or not is_producer(source)
                or graph.calls[id(source)] != 1
                or id(source) in folded
                or graph.consumers[id(tensor)] != 1
                or id(tensor) in graph.output_ids
                or (isinstance(source, BranchBlock) and not source.built)
            ):
                continue
            rank = len(tensor.shape)
            if norm_axis(norm, rank) != channel_axis(source, rank):
                continue
            folded[id(source)] = norm
            absorbed.add(id(norm))
        self.folds[id(graph)] = (folded, absorbed)
        return folded, absorbed

    # -- one layer -----------------------------------------------------------------------
    def lower(self, layer: Any, em: _Emitter, args: tuple, kwargs: dict, norm: Any = None) -> Any:
        """The plain Keras layers computing ``layer`` (``norm`` folded in), called on ``args``."""
        from tenfold.layers.normed_dense import NormedDense
        from tenfold.models.blocks import ResidualBlock
        from tenfold.models.nf import NFResidualBlock, ScaledActivation
        from tenfold.remat.recompute import Recompute

        x = args[0] if args else None
        if norm is not None or isinstance(layer, (BranchBlock, *_WS)):
            return self.producer(layer, em, x, norm)
        if isinstance(layer, (FusedBatchNormalization, ExtendedBatchNormalization)):
            return self.norm(layer, em, args, kwargs)
        if isinstance(layer, ResidualBlock):
            return self.residual(layer, em, x)
        if isinstance(layer, NFResidualBlock):
            return self.nf_residual(layer, em, x)
        if isinstance(layer, ScaledActivation):
            return self.scaled_activation(layer, em, "", x, name=em.primary)
        if isinstance(layer, NormedDense):
            return self.normed_dense(layer, em, x)
        if isinstance(layer, Recompute):  # recomputation only matters for gradients
            inner = layer.layer
            if is_graph_model(inner):
                return self.model(inner, em.graph.layer_path(layer))(*args, **kwargs)
            return self.lower(inner, em.child("inner"), args, _accepted(inner, kwargs))
        if type(layer).__module__.split(".")[0] == "tenfold":
            raise TypeError(
                f"deploy cannot turn layer {em.graph.layer_path(layer)!r} of tenfold type "
                f"{type(layer).__name__} into plain Keras layers; it knows {LOWERED}."
            )
        expander = expander_for(layer)
        if expander is not None:
            outputs = expander(self, layer, em, args, kwargs)
            if outputs is not None:
                return outputs
        policy = self.policy_for(layer)
        return em(
            "", lambda name: copy_layer(layer, dtype=policy, name=name), args, kwargs,
            weights=lambda new: copy_weights(layer, new),
        )

    def producer(self, layer: Any, em: _Emitter, x: Any, norm: Any, *, key: str = "", scale: float | None = None) -> Any:
        """A conv/dense-like layer as its plain deploy form, ``norm`` and ``scale`` folded in."""
        policy = self.policy_for(layer)
        pad = 0
        if isinstance(layer, BranchBlock):
            if not layer.built:
                raise ValueError(f"{type(layer).__name__} {layer.name!r} must be built before deploy.")
            pad = branch_padding(layer, tuple(x.shape))
            if pad:
                x = em(f"{key}_pad" if key else "pad",
                       lambda name: keras.layers.ZeroPadding2D(pad, dtype=policy, name=name), (x,))
        elif plain_class(layer) is None:
            raise TypeError(f"layer {layer.name!r} of type {type(layer).__name__} is not a fusable linear layer.")

        def weights(new: Any) -> None:
            values = producer_weights(layer, norm)
            if scale is not None:
                values = [v * scale for v in values]
            assign_weights(new, values, what=f"layer {layer.name!r}")

        folded = norm is not None or isinstance(layer, BranchBlock)
        padded = pad > 0
        return em(key, lambda name: deploy_form(layer, folded=folded, dtype=policy, name=name, padded=padded),
                  (x,), weights=weights)

    def norm(self, layer: Any, em: _Emitter, args: tuple, kwargs: dict) -> Any:
        """A norm that stays: Keras' ``BatchNormalization`` with its four statistics.

        ``FusedBatchNormalization`` has Keras' config; an ``ExtendedBatchNormalization``
        in inference is exactly a BatchNormalization with its moving statistics.
        """
        policy = self.policy_for(layer)
        if isinstance(layer, FusedBatchNormalization):
            config = {**layer.get_config(), "dtype": policy}

            def make(name: str) -> Any:
                return keras.layers.BatchNormalization.from_config({**config, "name": name})
        else:

            def make(name: str) -> Any:
                return keras.layers.BatchNormalization(
                    axis=layer.axis, momentum=layer.momentum, epsilon=layer.epsilon,
                    center=layer.center, scale=layer.scale, dtype=policy, name=name,
                )

        return em("", make, args, kwargs, weights=lambda new: copy_weights(layer, new))

    def chain(self, em: _Emitter, key: str, conv: Any, norm: Any, x: Any) -> Any:
        """``norm(conv(x))`` inside a block, the norm folded into the conv when it can be."""
        fold = norm if norm is not None and is_norm(norm) and is_producer(conv) else None
        if fold is not None and norm_axis(fold, 4) != channel_axis(conv, 4):
            fold = None
        if fold is not None or isinstance(conv, (BranchBlock, *_WS)) or plain_class(conv) is not None:
            h = self.producer(conv, em, x, fold, key=key)
        else:
            h = self.lower(conv, em.child(key), (x,), {})
        if norm is not None and fold is None:
            h = self.lower(norm, em.child(f"{key}_norm"), (h,), {})
        return h

    def residual(self, block: Any, em: _Emitter, x: Any) -> Any:
        """:class:`tenfold.models.ResidualBlock` as conv → act → conv (+ shortcut) → add → act."""
        policy = self.policy_for(block)

        def act(name: str) -> Any:
            return keras.layers.Activation(block.activation, dtype=policy, name=name)

        h = self.chain(em, "conv1", block.conv1, block.norm1, x)
        h = em("act1", act, (h,))
        h = self.chain(em, "conv2", block.conv2, block.norm2, h)
        shortcut = x
        if block.shortcut_conv is not None:
            shortcut = self.chain(em, "shortcut", block.shortcut_conv, block.shortcut_norm, x)
        h = em("add", lambda name: keras.layers.Add(dtype=policy, name=name), ([h, shortcut],))
        return em("", act, (h,))

    def scaled_activation(self, layer: Any, em: _Emitter, key: str, x: Any, *, name: str | None = None) -> Any:
        """``gamma * g(x)`` as ``Activation(g)`` then ``Rescaling(gamma)``."""
        policy = self.policy_for(layer)
        x = em(f"{key}_fn" if key else "fn",
               lambda n: keras.layers.Activation(layer.activation, dtype=policy, name=n), (x,))
        return em(key, lambda n: keras.layers.Rescaling(layer.gamma, dtype=policy, name=n), (x,), name=name)

    def nf_residual(self, block: Any, em: _Emitter, x: Any) -> Any:
        """:class:`tenfold.models.NFResidualBlock`; ``alpha · skip_gain`` folded into ``conv2``."""
        policy = self.policy_for(block)
        out = em("prescale", lambda n: keras.layers.Rescaling(1.0 / block.beta, dtype=policy, name=n), (x,))
        out = self.scaled_activation(block.act, em, "act0", out)
        shortcut = x
        if block.shortcut_conv is not None:
            shortcut = self.producer(block.shortcut_conv, em, out, None, key="shortcut")
        h = self.producer(block.conv1, em, out, None, key="conv1")
        h = self.scaled_activation(block.act, em, "act1", h)
        gain = float(np.asarray(block.skip_gain, "float64")) * block.alpha
        h = self.producer(block.conv2, em, h, None, key="conv2", scale=gain)
        return em("", lambda n: keras.layers.Add(dtype=policy, name=n), ([shortcut, h],))

    def normed_dense(self, layer: Any, em: _Emitter, x: Any) -> Any:
        """:class:`tenfold.layers.NormedDense` as ``UnitNormalization`` then a bias-free ``Dense``.

        (``UnitNormalization`` floors the squared norm at 1e-12 instead of the norm at
        ``epsilon``: the same for any input whose norm is above 1e-6.)
        """
        policy = self.policy_for(layer)
        x = em("unit", lambda n: keras.layers.UnitNormalization(axis=-1, dtype=policy, name=n), (x,))

        def weights(new: Any) -> None:
            w = np.asarray(layer.kernel, "float64")
            w = w / np.maximum(np.sqrt(np.sum(w * w, axis=0, keepdims=True)), layer.epsilon)
            assign_weights(new, [w], what=f"layer {layer.name!r}")

        return em("", lambda n: keras.layers.Dense(layer.units, use_bias=False, dtype=policy, name=n), (x,),
                  weights=weights)


def _accepted(layer: Any, kwargs: dict) -> dict:
    import inspect

    params = inspect.signature(layer.call).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def deploy(model: keras.Model, *, dtype: str = "float32") -> keras.Model:
    """The inference form of any functional model, built from plain Keras layers only.

    * every ``BatchNormalization`` / :class:`~tenfold.layers.FusedBatchNormalization` /
      :class:`~tenfold.layers.ExtendedBatchNormalization` (moving statistics) whose input
      is the output of a ``Conv1D/2D/3D``, ``DepthwiseConv1D/2D``, ``SeparableConv1D/2D``
      (pointwise part), ``Dense`` (linear activation), ``WSConv*``, ``WSDense``, ``ACBlock``
      or ``RepVGGBlock`` used by nothing else is folded into it and disappears;
    * ``ACBlock`` / ``RepVGGBlock`` → one ``Conv2D`` (after a ``ZeroPadding2D`` where the
      block pads symmetrically and Keras' ``"same"`` would not); ``WSConv*``/``WSDense`` →
      ``Conv*``/``Dense`` with the standardized kernel; ``ResidualBlock``, ``NFResidualBlock``,
      ``ScaledActivation``, ``NormedDense`` → the Keras layers computing them; a norm that
      does not follow a producer → Keras' ``BatchNormalization`` with its statistics; any
      other tenfold layer → a TypeError naming it;
    * ``keras.ops`` nodes (``x + y``, ``x[:, 0]``), shared layers, nested Functional and
      Sequential models (deployed recursively, as Functional models), several inputs and
      outputs in any structure;
    * a third-party layer with an expander for its exact class
      (:data:`tenfold.reparam.expand.EXPANDERS`: KerasHub's ``TransformerEncoder``,
      ``PositionEmbedding``, ``ReversibleEmbedding``) → the plain Keras layers and
      ``keras.ops`` nodes computing its inference call, weights copied (a call the expander
      cannot reproduce exactly is copied instead); every other layer is copied with its weights.

    The result has the ``dtype`` policy (float32 by default, even for a model trained under
    ``mixed_bfloat16``), is not compiled, holds no tenfold object and loads with
    ``import keras`` alone (unless the model has third-party layers without an expander,
    which are copied). A KerasHub ``BertBackbone`` deploys to Keras layers only. The
    input model is not modified. :func:`check` compares it with the original.

    Args:
        model: a Functional or Sequential ``keras.Model`` (built).
        dtype: str. Dtype policy of the result. Defaults to `"float32"`.

    Returns:
        A new Functional ``keras.Model``.

    Example:
    >>> i = keras.Input((8, 8, 3))
    >>> h = keras.layers.BatchNormalization()(keras.layers.Conv2D(3, 1)(i))
    >>> fused = tenfold.reparam.deploy(keras.Model(i, h + i))
    >>> [type(layer).__name__ for layer in fused.layers]
    ['InputLayer', 'Conv2D']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, received {model!r} of type {type(model).__name__}.")
    functional_graph(model, what="deploy")
    target = _policy_name(dtype)
    with dtype_policy(target):
        return _Deployer(_policy_rule(model, target)).model(model, "")


def _copy_handler(policy: Any) -> Callable[..., Any]:
    models: dict[int, keras.Model] = {}
    layers: dict[int, Any] = {}

    def handler(graph: Graph, op: Any, node: Any, args: tuple, kwargs: dict) -> Any:
        if not isinstance(op, keras.layers.Layer):
            new = layers.setdefault(id(op), clone_operation(op))
        elif is_graph_model(op):
            if id(op) not in models:
                models[id(op)] = rebuild(op, handler, path=graph.layer_path(op))
            new = models[id(op)]
        elif id(op) in layers:
            new = layers[id(op)]
        else:
            new = layers[id(op)] = copy_layer(op, dtype=policy)
            outputs = new(*args, **kwargs)
            copy_weights(op, new)
            return outputs
        return new(*args, **kwargs)

    return handler


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt with every layer under the float32 policy, weights copied.

    The model itself when every layer already is float32.
    """
    functional_graph(model, what="a float32 copy")
    if all(getattr(la, "dtype_policy", None) is None or la.dtype_policy.name == "float32"
           or not keras.backend.is_float_dtype(la.dtype_policy.compute_dtype) for la in all_layers(model)):
        return model
    with dtype_policy("float32"):
        return rebuild(model, _copy_handler("float32"))


def count_norms(model: keras.Model) -> int:
    """Number of batch-normalization layers in ``model``, nested models and blocks included."""
    return sum(isinstance(layer, _NORMS) for layer in all_layers(model))


def _check_inputs(x: Any) -> None:
    """``x``: model inputs (an array, a list or dict of arrays, or a dataset), not empty."""
    if hasattr(x, "element_spec"):
        return
    shape = getattr(x, "shape", None)
    sized = isinstance(x, (list, tuple, dict)) if shape is None else len(shape) > 0
    if not sized:
        raise TypeError(f"x must be model inputs (an array, a list or dict of arrays, or a dataset), "
                        f"received {x!r} of type {type(x).__name__}.")
    if (len(x) if shape is None else shape[0]) == 0:
        raise ValueError(f"x must hold at least one example, received an empty {type(x).__name__}.")


def check(original: keras.Model, deployed: keras.Model, x: Any, *, batch_size: int = 256) -> dict[str, Any]:
    """Facts about ``deployed`` against ``original`` evaluated in float32 on inputs ``x``.

    The original is rebuilt under the float32 policy with the same weights (a fusion is
    exact in float32; a mixed-precision original would measure bfloat16 rounding instead).

    Returns:
        A dict: ``max_abs_difference``, ``max_relative_difference`` (over every output, the
        largest absolute difference over the largest magnitude of the original's output),
        ``predictions_changed`` / ``predictions_compared`` (argmax over the last axis of
        every output with at least 2 entries there), ``bn_total`` (norm layers in the
        original), ``bn_folded``, ``bn_remaining`` (norm layers left in ``deployed``).

    Example:
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    >>> facts = check(m, deploy(m), np.ones((4, 3)))
    >>> facts["bn_folded"], facts["bn_remaining"], facts["predictions_changed"]
    (1, 0, 0)
    """
    from tenfold import _validate

    for name, model in (("original", original), ("deployed", deployed)):
        _validate.instance(name, model, keras.Model, "a keras.Model")
    _check_inputs(x)
    if _validate.integer("batch_size", batch_size, low=1) > 10**9:
        raise ValueError(f"batch_size must be at most 1,000,000,000, received {batch_size}.")
    reference = float32_copy(original)
    ya = keras.tree.flatten(reference.predict(x, batch_size=batch_size, verbose=0))
    yb = keras.tree.flatten(deployed.predict(x, batch_size=batch_size, verbose=0))
    if len(ya) != len(yb):
        raise ValueError(f"the models have {len(ya)} and {len(yb)} outputs.")
    max_abs = max_rel = 0.0
    changed = compared = 0
    for a, b in zip(ya, yb):
        a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
        if a.shape != b.shape:
            raise ValueError(f"the models give outputs of shapes {a.shape} and {b.shape}.")
        if not a.size:
            continue
        diff = float(np.max(np.abs(a - b)))
        scale = float(np.max(np.abs(a)))
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / scale if scale > 0 else diff)
        if a.ndim >= 2 and a.shape[-1] >= 2:
            changed += int(np.sum(np.argmax(a, -1) != np.argmax(b, -1)))
            compared += int(np.prod(a.shape[:-1]))
    total, remaining = count_norms(original), count_norms(deployed)
    return {
        "max_abs_difference": max_abs,
        "max_relative_difference": max_rel,
        "predictions_changed": changed,
        "predictions_compared": compared,
        "bn_total": total,
        "bn_folded": max(total - remaining, 0),
        "bn_remaining": remaining,
    }


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

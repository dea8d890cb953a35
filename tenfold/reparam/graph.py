"""Rebuild a functional Keras graph node by node: the walker behind deploy and convert.

:func:`rebuild` re-runs a model's graph on new ``keras.Input`` tensors (same structure,
shapes, dtypes and names) and asks a *handler* what each recorded call becomes: a copy of
the layer, another layer, several layers, or nothing (a folded norm returns its input).
Every node Keras records is visited in the order Keras itself runs them: layers, ``keras.ops``
operation nodes (``x + y``, ``x[:, 0]``), nested Functional and Sequential models (the
handler recurses into them), shared layers (one node per call), several inputs and outputs
in any structure. This is ``keras.models.clone_model``'s loop (``Functional._run_through_graph``)
with the node passed to the handler, which a per-node decision needs.

What it cannot walk it refuses by name: a subclassed model (no graph to walk), a
Sequential model without an ``Input``.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np


def functional_graph(model: Any, *, what: str = "this") -> Any:
    """The Functional graph of ``model`` (itself, or a Sequential's), or a clear error."""
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None or not model.inputs:
            raise ValueError(
                f"Sequential model {model.name!r} has no graph yet: start it with keras.Input(...) "
                f"(or build it) before {what}."
            )
        return graph
    if isinstance(model, Functional):
        return model
    if isinstance(model, keras.Model):
        raise TypeError(
            f"{what} works on Functional and Sequential models; {model.name!r} is a subclassed "
            f"{type(model).__name__} whose layers are called in Python code, not recorded as a graph. "
            "Build it functionally (keras.Model(inputs, outputs)), or apply it to its Functional parts."
        )
    raise TypeError(f"model must be a keras.Model, received {model!r} of type {type(model).__name__}.")


def is_graph_model(layer: Any) -> bool:
    """Whether ``layer`` is a model with a walkable graph (Functional, or Sequential with an Input)."""
    from keras.src.models.functional import Functional

    if isinstance(layer, keras.Sequential):
        return getattr(layer, "_functional", None) is not None
    return isinstance(layer, Functional)


class Graph:
    """The nodes of one Functional graph in execution order, and who consumes what."""

    def __init__(self, model: Any, *, path: str = "") -> None:
        self.model = model
        self.functional = functional_graph(model)
        self.path = path
        by_depth = self.functional._nodes_by_depth
        self.nodes = [
            node
            for depth in sorted(by_depth, reverse=True)
            for node in by_depth[depth]
            if node.operation is not None and not node.is_input
        ]
        self.consumers = Counter(id(t) for node in self.nodes for t in node.input_tensors)
        self.calls = Counter(id(node.operation) for node in self.nodes)
        self.output_ids = {id(t) for t in self.functional.outputs}
        self.names = {getattr(node.operation, "name", "") for node in self.nodes}
        self._used: set[str] = set(self.names)

    def layer_path(self, layer: Any) -> str:
        """``outer/inner/name``: the layer's name below the models that contain it."""
        return f"{self.path}/{layer.name}" if self.path else layer.name

    def fresh_name(self, base: str) -> str:
        """A layer name not used in this graph yet (``base``, else ``base_1``, ...)."""
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name


def producer(tensor: Any) -> Any:
    """The operation that made symbolic ``tensor`` (None for a model input)."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


Handler = Callable[[Graph, Any, Any, tuple, dict], Any]


def rebuild(model: Any, handler: Handler, *, path: str = "", name: str | None = None) -> keras.Model:
    """A new ``keras.Model`` running ``model``'s graph with each call replaced by ``handler``'s.

    ``handler(graph, operation, node, args, kwargs)`` gets the recorded call with its
    arguments already mapped into the new graph and returns the new outputs. The result is
    a plain ``keras.Model`` (not compiled) with the inputs and outputs of ``model`` in the
    same structure.
    """
    graph = Graph(model, path=path)
    functional = graph.functional
    new_inputs = keras.tree.map_structure(_new_input, functional._inputs_struct)
    tensors = {id(old): new for old, new in zip(functional.inputs, keras.tree.flatten(new_inputs))}
    for node in graph.nodes:
        if any(id(t) not in tensors for t in node.input_tensors):
            continue  # not computable from the inputs (Keras skips these nodes too)
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = handler(graph, node.operation, node, args, kwargs)
        flat = keras.tree.flatten(outputs)
        if len(flat) != len(node.outputs):
            raise ValueError(
                f"rebuilding {graph.layer_path(node.operation)!r} gave {len(flat)} outputs for its "
                f"{len(node.outputs)}."
            )
        for old, new in zip(node.outputs, flat):
            tensors[id(old)] = new
    missing = [t.name for t in functional.outputs if id(t) not in tensors]
    if missing:
        raise ValueError(f"outputs {missing} of {model.name!r} are not connected to its inputs.")
    outputs = keras.tree.pack_sequence_as(
        functional._outputs_struct, [tensors[id(t)] for t in functional.outputs]
    )
    return keras.Model(new_inputs, outputs, name=name or model.name)


def _new_input(tensor: Any) -> Any:
    kwargs = {}
    if getattr(tensor, "sparse", False):
        kwargs["sparse"] = True
    if getattr(tensor, "ragged", False):
        kwargs["ragged"] = True
    return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name, **kwargs)


def clone_operation(operation: Any) -> Any:
    """A fresh copy of a ``keras.ops`` operation node (the same object if it cannot be copied)."""
    try:
        return type(operation).from_config(operation.get_config())
    except Exception:  # an op without a faithful config: calling it again is equally right
        return operation


def copy_layer(layer: Any, *, dtype: Any = None, name: str | None = None) -> Any:
    """A new, unbuilt layer from ``layer``'s config (``dtype`` / ``name`` replaced if given).

    A layer without weights whose config cannot be read back (a ``Lambda``) is reused as is.
    """
    config = layer.get_config()
    if dtype is not None and "dtype" in config:
        config["dtype"] = dtype
    if name is not None:
        config["name"] = name
    try:
        return type(layer).from_config(config)
    except Exception as err:
        if not layer.weights:  # e.g. a Lambda (its config needs safe_mode=False): stateless, reuse it
            return layer
        raise TypeError(
            f"cannot copy layer {layer.name!r} of type {type(layer).__name__}: its from_config(get_config()) "
            f"fails ({type(err).__name__}: {err})."
        ) from err


def copy_weights(source: Any, target: Any) -> None:
    """Assign ``source``'s weights to the built ``target`` (same count and shapes, in order)."""
    assign_weights(target, [np.asarray(v) for v in source.weights], what=f"layer {source.name!r}")


def assign_weights(target: Any, values: list[np.ndarray], *, what: str) -> None:
    """Assign ``values`` to ``target.weights`` in order, checking count and shapes."""
    weights = target.weights
    shapes = [tuple(v.shape) for v in weights]
    given = [tuple(np.shape(v)) for v in values]
    if shapes != given:
        raise ValueError(
            f"cannot carry the weights of {what} into its rebuilt {type(target).__name__} "
            f"{target.name!r}: shapes {given} against {shapes}."
        )
    for variable, value in zip(weights, values):
        variable.assign(np.asarray(value).astype(keras.backend.standardize_dtype(variable.dtype)))


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer of ``model``, nested models and sub-layers included (each once)."""
    seen: set[int] = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if id(layer) not in seen:
            seen.add(id(layer))
            yield layer


@contextlib.contextmanager
def dtype_policy(policy: Any) -> Iterator[None]:
    """Set Keras' global dtype policy for the block, then restore the previous one.

    Sub-layers made inside a layer's ``__init__`` without a dtype take the global policy,
    so a model is rebuilt under the policy it is meant to have.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compile_patterns(name: str, patterns: Any) -> list[re.Pattern[str]]:
    """``patterns`` (a regex or a list of them) compiled, or an error naming the bad one."""
    from tenfold import _validate

    if isinstance(patterns, str):
        patterns = (patterns,)
    if not isinstance(patterns, (list, tuple)):
        raise TypeError(
            f"{name} must be a regex string or a list of them, received {patterns!r} of type "
            f"{type(patterns).__name__}."
        )
    compiled = []
    for i, pattern in enumerate(patterns):
        _validate.string(f"{name}[{i}]", pattern)
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise ValueError(f"{name}[{i}] must be a regular expression, received {pattern!r}: {err}.") from err
    return compiled

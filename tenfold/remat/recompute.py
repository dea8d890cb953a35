"""Gradient recomputation (gradient checkpointing) as a Keras wrapper layer.

References:
    Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost",
    https://arxiv.org/abs/1604.06174 (segments of ≈√n layers; only segment inputs are kept
    in the forward pass, every segment is run again in the backward pass).
    Griewank & Walther 2000, "Algorithm 799: revolve" (the checkpointing idea).

How :class:`Recompute` differs from ``tf.recompute_grad`` and ``keras.RematScope``:

* the wrapped layer is called with ``training`` and ``mask`` closed over, so only tensors
  cross the ``tf.custom_gradient`` boundary: it works inside ``model.fit`` in graph mode
  and with ``jit_compile=True`` (Keras' ``RematScope(mode="full")`` fails there with
  "custom_gradient decorator currently supports keywords arguments only when eager
  execution is enabled");
* the recomputation replays the forward pass from the same state: every non-trainable
  variable of the wrapped layer (the states of its seed generators, BatchNormalization
  moving statistics) is set back to its value before the forward pass, the layer is run
  again, and the variables are then restored to their values after the forward pass. So a
  Dropout inside uses the same mask twice (plain ``tf.recompute_grad`` draws a new one) and
  moving statistics are updated once per step, not twice.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras

from tenfold._api import export
from tenfold._tf import tensorflow
from tenfold.testing import ContractExample


def _example_model(component: Any, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape)
    x = component(inputs)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs)


def _example() -> ContractExample:
    def make() -> Recompute:
        return Recompute(
            keras.Sequential(
                [
                    keras.layers.Dense(16, activation="relu"),
                    keras.layers.BatchNormalization(),
                    keras.layers.Dropout(0.25, seed=1),
                    keras.layers.Dense(16, activation="relu"),
                ]
            )
        )

    return ContractExample(make=make, input_shape=(6,), build_model=_example_model)


def _tie(tf: Any, tensors: list[Any], upstream: tuple[Any, ...]) -> list[Any]:
    """Add a zero that depends on the upstream gradient, so XLA cannot merge the replay
    with the forward pass (control dependencies do not survive XLA's common-subexpression
    elimination)."""
    first = next((g for g in upstream if g is not None and g.dtype.is_floating), None)
    if first is None:
        return tensors
    zero = tf.reduce_sum(tf.reshape(first, [-1])[:1]) * 0.0
    return [t + tf.cast(zero, t.dtype) if t.dtype.is_floating else t for t in tensors]


def _accepts(layer: keras.layers.Layer, name: str) -> bool:
    try:
        params = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signature
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@export("tenfold.remat.Recompute", example=_example)
class Recompute(keras.layers.Wrapper):
    """Run a layer without keeping its inner activations; recompute them for the gradient.

    In the forward pass only the wrapper's inputs (and the small state of the layer's
    non-trainable variables) are kept; in the backward pass the wrapped layer runs again
    from the same state and its gradient is taken. Gradients equal those of the plain
    layer; the cost is one extra forward pass of the wrapped layer per step. Wrap a
    *segment* of several layers (e.g. a ``keras.Sequential`` of residual blocks): the memory
    saved is that segment's internal activations. Randomness is replayed (a Dropout inside
    draws the same mask in the recomputation) and BatchNormalization moving statistics are
    updated once per step. Works in eager mode, inside ``fit`` in graph mode and with
    ``jit_compile=True``; the wrapped layer keeps its own dtype policy. On TensorFlow it is
    built on ``tf.custom_gradient``; on JAX on ``jax.checkpoint`` and on PyTorch on
    ``torch.utils.checkpoint`` (non-reentrant), both around the layer's ``stateless_call``
    so that the state (seed generators, moving statistics) is read once and assigned once.

    Args:
        layer: keras.layers.Layer. The layer (or a Sequential segment of layers) to wrap.
        **kwargs: base Layer arguments (``name``, ``dtype``, ...).

    Example:
    >>> block = Recompute(keras.Sequential([keras.layers.Dense(8, activation="relu"),
    ...                                     keras.layers.Dense(8)]))
    >>> tuple(block(np.ones((2, 4), "float32")).shape)
    (2, 8)
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any) -> None:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"layer must be a keras.layers.Layer, received {layer!r} "
                f"of type {type(layer).__name__}."
            )
        super().__init__(layer, **kwargs)
        self.supports_masking = True
        self._pass_training = _accepts(layer, "training")
        self._pass_mask = _accepts(layer, "mask")

    def build(self, input_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        kwargs = self._call_kwargs(training, mask)
        return self.layer.compute_output_spec(inputs, **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return self.layer.compute_mask(inputs, mask)

    def _call_kwargs(self, training: Any, mask: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self._pass_training and training is not None:
            kwargs["training"] = training
        if self._pass_mask and mask is not None:
            kwargs["mask"] = mask
        return kwargs

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        kwargs = self._call_kwargs(training, mask)
        backend = keras.backend.backend()
        if backend == "jax":
            return self._call_jax(inputs, kwargs)
        if backend == "torch":
            return self._call_torch(inputs, kwargs)
        if backend != "tensorflow":
            raise NotImplementedError(
                "tenfold.remat.Recompute supports the TensorFlow, JAX and PyTorch backends; "
                f"the Keras backend is {backend!r}."
            )
        tf = tensorflow("tenfold.remat.Recompute")
        layer = self.layer
        structure = inputs
        flat_inputs = [tf.convert_to_tensor(t) for t in tf.nest.flatten(inputs)]
        # the TensorFlow variables themselves: reading them must not autocast
        state = [getattr(v, "_value", v) for v in layer.variables if not v.trainable]

        def run(flat: list[Any]) -> Any:
            return layer(tf.nest.pack_sequence_as(structure, flat), **kwargs)

        @tf.custom_gradient
        def forward(*flat: Any) -> Any:
            # values before the forward pass: the recomputation starts from them
            before = [tf.identity(v) for v in state]
            with tf.control_dependencies(before):
                flat_in = [tf.identity(t) for t in flat]
            outputs = run(flat_in)

            def grad(*upstream: Any, variables: Any = None) -> Any:
                variables = list(variables or [])
                after = [tf.identity(v) for v in state]
                # the replay waits for the upstream gradient: without this data-flow
                # edge the executor may run it early and keep its activations alive
                with tf.control_dependencies(after + [g for g in upstream if g is not None]):
                    rewinds = [v.assign(b) for v, b in zip(state, before)]
                    replay_in = [tf.identity(t) for t in flat]
                if rewinds:
                    with tf.control_dependencies(rewinds):
                        replay_in = [tf.identity(t) for t in replay_in]
                replay_in = _tie(tf, replay_in, upstream)
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    sources = [t for t in replay_in + variables if t.dtype.is_floating]
                    tape.watch(sources)
                    replay = tf.nest.flatten(run(replay_in))
                grads = tape.gradient(
                    replay, sources, output_gradients=list(upstream),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                with tf.control_dependencies(grads):
                    restores = [v.assign(a) for v, a in zip(state, after)]
                with tf.control_dependencies(restores):
                    grads = [tf.identity(g) for g in grads]
                found = iter(grads)
                every = [next(found) if t.dtype.is_floating else None for t in replay_in + variables]
                return every[: len(replay_in)], every[len(replay_in):]

            return outputs, grad

        return forward(*flat_inputs)

    def _call_jax(self, inputs: Any, kwargs: dict[str, Any]) -> Any:
        # JAX: a pure function of (inputs, weights, state) under jax.checkpoint; the new
        # state (seed generators, moving statistics) is assigned once, after the call
        import importlib

        jax = importlib.import_module("jax")
        layer = self.layer
        trainable = [v.value for v in layer.trainable_variables]
        state = [v.value for v in layer.non_trainable_variables]

        def pure(inputs: Any, trainable: Any, state: Any) -> Any:
            return layer.stateless_call(trainable, state, inputs, **kwargs)

        outputs, new_state = jax.checkpoint(pure)(inputs, trainable, state)
        for variable, value in zip(layer.non_trainable_variables, new_state):
            variable.assign(value)
        return outputs

    def _call_torch(self, inputs: Any, kwargs: dict[str, Any]) -> Any:
        # PyTorch: torch.utils.checkpoint (non-reentrant) around the same pure function;
        # the state is passed as a copy, so assigning the new state after the forward pass
        # does not change what the recomputation reads (same Dropout mask, one update)
        import importlib

        torch = importlib.import_module("torch")
        checkpoint = importlib.import_module("torch.utils.checkpoint").checkpoint
        layer = self.layer
        trainable = [v.value for v in layer.trainable_variables]
        state = [torch.clone(v.value).detach() for v in layer.non_trainable_variables]
        flat_inputs = keras.tree.flatten(inputs)
        n_in, n_tr = len(flat_inputs), len(trainable)
        structure: list[Any] = []

        def pure(*flat: Any) -> Any:
            packed = keras.tree.pack_sequence_as(inputs, list(flat[:n_in]))
            outputs, new_state = layer.stateless_call(
                list(flat[n_in:n_in + n_tr]), list(flat[n_in + n_tr:]), packed, **kwargs
            )
            structure[:] = [outputs]
            return tuple(keras.tree.flatten(outputs)) + tuple(new_state)

        if not torch.is_grad_enabled():  # inference: nothing to recompute
            flat_out = pure(*flat_inputs, *trainable, *state)
        else:
            flat_out = checkpoint(pure, *flat_inputs, *trainable, *state, use_reentrant=False)
        n_out = len(flat_out) - len(state)
        for variable, value in zip(layer.non_trainable_variables, flat_out[n_out:]):
            variable.assign(value.detach())
        return keras.tree.pack_sequence_as(structure[0], list(flat_out[:n_out]))

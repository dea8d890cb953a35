"""Adaptive gradient clipping (AGC) as a Keras optimizer wrapper.

References:
    Brock, De, Smith & Simonyan 2021, "High-Performance Large-Scale Image Recognition
    Without Normalization", https://arxiv.org/abs/2102.06171 (Section 4).
    Reference implementation: deepmind-research, ``nfnets/agc_optax.py``; optax
    ``adaptive_grad_clip``. How tenfold's units differ from theirs: ``docs/optimizers.md``.

Where the clip runs. Keras 3 optimizers on every backend go through one pipeline:
``apply`` → unscale (``loss_scale_factor``) → ``_backend_apply_gradients`` →
(``gradient_accumulation_steps`` averaging) → ``_clip_gradients`` → weight decay →
``_backend_update_step``, whose per-variable update differs by backend (``update_step``
on TensorFlow and JAX, ``_parallel_update_step`` on PyTorch) and which, on TensorFlow,
also holds the cross-replica all-reduce. AGC clips in ``_clip_gradients``, the step
Keras' own ``clipnorm`` uses on all three backends, so it sees the unscaled, averaged
gradient whatever update method follows. Under a ``tf.distribute`` replica context the
gradient there is still per replica: AGC all-reduces a copy, computes each unit's clip
factor from the global gradient and multiplies the local gradient by it; Keras' own
all-reduce then sums ``factor · G_r`` into ``factor · ΣG_r``, the clipped global
gradient (AGC only rescales units, so this is exact up to round-off). The cost is one
extra all-reduce per step under a multi-replica strategy, none otherwise.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.clipping import clip_factor, einsum_kernel_axes, unitwise_norm
from tenfold.ops.clipping import unit_axes as checked_axes
from tenfold.optimizers._common import is_indexed_slices
from tenfold.testing import ContractExample

_BASE_ARGS = {
    "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None,
}
AUTO = "auto"
_CALLS = threading.local()  # per thread (MirroredStrategy runs replicas in threads)


def _example() -> ContractExample:
    return ContractExample(
        make=lambda: AGC(keras.optimizers.SGD(0.05, momentum=0.9), clipping=0.01),
        input_shape=(8, 8, 1),
    )


def _regex(name: str, pattern: Any) -> str:
    pattern = v.string(name, pattern)
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{name}: {pattern!r} is not a valid regular expression ({err}).") from err
    return pattern


def _exclude(value: Any) -> str | list[str]:
    if value is None:
        return []
    if value == AUTO:
        return AUTO
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            "exclude must be 'auto', None, a regex string or a list of regex strings (the "
            f"entry 'auto' allowed), received {value!r} of type {type(value).__name__}."
        )
    return [p if p == AUTO else _regex(f"exclude[{i}]", p) for i, p in enumerate(items)]


def _axes_table(name: str, value: Any, *, regex: bool) -> dict[str, list[int]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            f"{name} must be None or a dict {{{'path regex' if regex else 'variable path'}: "
            f"int or list of int axes}}, received {value!r} of type {type(value).__name__}."
        )
    out: dict[str, list[int]] = {}
    for key, axes in value.items():
        key = _regex(f"{name} key", key) if regex else v.string(f"{name} key", key)
        if isinstance(axes, (list, tuple)) and not axes and not regex:
            out[key] = []  # a rank-0 variable's (empty) axes
            continue
        axes = v.axis(f"{name}[{key!r}]", axes)
        out[key] = [axes] if isinstance(axes, int) else list(axes)
    return out


def _name(variable: Any) -> str:
    return str(getattr(variable, "path", variable.name)).rsplit("/", 1)[-1]


def fallback_axes(name: str, rank: int) -> tuple[int, ...]:
    """The reduced axes of a variable whose layer is unknown: by its name, then its rank.

    ``bias`` → the whole tensor; ``embeddings`` (Keras' ``Embedding``) → per row;
    ``depthwise_kernel`` (``SeparableConv``) → the spatial axes; otherwise rank <= 1 → the
    whole tensor and rank >= 2 → all axes but the last (Dense and ConvND kernels).
    """
    if name == "bias" or rank <= 1:
        return tuple(range(rank))
    if name == "embeddings":
        return tuple(range(1, rank))
    if name == "depthwise_kernel":
        return tuple(range(rank - 2))
    return tuple(range(rank - 1))


def layer_axes(layer: Any, variable: Any) -> tuple[int, ...]:
    """The reduced axes of ``variable`` (owned by ``layer``) by the layer's type.

    Dense: per output unit; EinsumDense (and so MultiHeadAttention's projections): the
    kernel axes its equation contracts; ConvND: all axes but the last; ConvNDTranspose
    (kernel ``(..., out, in)``): all axes but the output axis; DepthwiseConv: the spatial
    axes (per channel and multiplier); SeparableConv: the depthwise kernel over its
    spatial axes, the pointwise kernel over all but the last; Embedding: per row; any
    bias, vector or scalar: the whole tensor. Other layers: :func:`fallback_axes`.
    """
    L = keras.layers
    name, rank = _name(variable), len(variable.shape)
    if name == "bias" or rank <= 1:
        return tuple(range(rank))
    if isinstance(layer, L.Embedding) and name == "embeddings":
        return tuple(range(1, rank))
    if isinstance(layer, L.EinsumDense) and name == "kernel":
        return einsum_kernel_axes(layer.equation)
    transpose = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
    if isinstance(layer, transpose) and name == "kernel":
        return tuple(a for a in range(rank) if a != rank - 2)
    depthwise = (L.DepthwiseConv1D, L.DepthwiseConv2D)
    if isinstance(layer, depthwise) and name == "kernel":
        return tuple(range(rank - 2))
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)) and name == "depthwise_kernel":
        return tuple(range(rank - 2))
    return fallback_axes(name, rank)


def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if callable(flatten):
        return list(flatten(include_self=False, recursive=False))
    return list(getattr(layer, "layers", []))


def _owners(model: Any) -> dict[str, Any]:
    """``variable.path`` → the innermost layer that owns it."""
    owners: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for sub in _sublayers(layer):
            visit(sub)
        for w in layer.weights:
            owners.setdefault(w.path, layer)

    visit(model)
    return owners


def _output_layers(model: Any) -> list[Any]:
    """The Dense/EinsumDense layers whose output is a model output (through weightless layers)."""
    L = keras.layers
    heads: list[Any] = []
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:  # subclassed model: the last layer that has weights
        for layer in reversed(getattr(model, "layers", [])):
            if layer.weights:
                if isinstance(layer, (L.Dense, L.EinsumDense)):
                    heads.append(layer)
                break
        return heads
    for tensor in keras.tree.flatten(outputs):
        while True:
            history = getattr(tensor, "_keras_history", None)
            if history is None:
                break
            op = history.operation
            if isinstance(op, (L.Dense, L.EinsumDense)):
                heads.append(op)
                break
            if isinstance(op, keras.Model):
                heads.extend(_output_layers(op))
                break
            if getattr(op, "weights", None):
                break  # a head that is not a dense layer (conv, norm): nothing to leave out
            nodes = getattr(op, "_inbound_nodes", [])
            inputs = nodes[history.node_index].input_tensors if nodes else []
            if len(inputs) != 1:
                break
            tensor = inputs[0]
    unique: dict[int, Any] = {}
    for layer in heads:
        unique.setdefault(id(layer), layer)
    return list(unique.values())


def _in_calls() -> list[Any]:
    if not hasattr(_CALLS, "stack"):
        _CALLS.stack = []
    return _CALLS.stack


@export("tenfold.optimizers.AGC", example=_example)
class AGC(keras.optimizers.Optimizer):
    """Wrap an optimizer so every unit's gradient is clipped relative to its weight norm.

    For each unit ``i`` of each weight ``W``::

        G_i ← clipping · max(‖W_i‖, ε) / ‖G_i‖ · G_i   when ‖G_i‖ / max(‖W_i‖, ε) > clipping

    It clips the final gradient — after ``LossScaleOptimizer`` unscaling (which wraps this
    optimizer), after ``gradient_accumulation_steps`` averaging and as if after the
    cross-replica all-reduce under ``tf.distribute`` (see the module docstring) — in the
    same place on TensorFlow, JAX and PyTorch, around any Keras optimizer.

    **Units by layer type.** Call :meth:`for_model` once before ``compile`` (or pass the
    model's variables through it later) so AGC knows which layer owns each weight:
    Dense and EinsumDense kernels per output unit (the input axes of the equation;
    ``MultiHeadAttention`` query/key/value kernels per head and head unit), ConvND all
    axes but the last, DepthwiseConv per channel and multiplier, SeparableConv each part,
    Embedding per row, biases, vectors and scalars whole (:func:`layer_axes`). Without
    it, units follow :func:`fallback_axes` (names, then the rank rule: all axes but the
    last), which is right for Dense, ConvND, Embedding and SeparableConv but not for
    DepthwiseConv or EinsumDense kernels.

    **Exclusion.** ``exclude="auto"`` (the default) leaves the classifier unclipped, as
    the paper does: the Dense/EinsumDense layers producing a model output
    (:meth:`classifier_patterns`), resolved by :meth:`for_model` into exact path
    patterns that ``get_config`` saves. Built without ``for_model``, ``"auto"`` leaves out
    the layer owning the last variable it is built with when that layer is dense (a
    ``kernel`` of rank 2 and an optional ``bias``) — the head of a Sequential or
    single-output functional model, whose variables Keras lists in layer order.

    Args:
        inner_optimizer: the ``keras.optimizers.Optimizer`` to wrap (or its name / config).
        clipping: float > 0. The threshold λ. Defaults to 0.01 (NFNets, batch size 4096;
            the paper uses larger λ for smaller batches).
        epsilon: float > 0. Floor ε on the weight norm. Defaults to 1e-3.
        exclude: ``"auto"``, None, a regex or a list of regexes matched (``re.search``)
            against ``variable.path``; matching weights are not clipped. A list may hold
            the entry ``"auto"`` next to regexes.
        axes: None or ``{path regex: axes}``: the reduced axes of matching weights (first
            match wins), overriding the layer rule. Checked when the optimizer is built:
            a pattern that matches no variable, or axes that do not fit a matched
            variable's rank, is a ValueError naming the pattern and the variable.
        unit_axes: None or ``{variable path: axes}``: the layer-type units that
            :meth:`for_model` found where they differ from :func:`fallback_axes`; written
            by ``get_config`` so a reloaded optimizer clips the same. Not normally passed.
        name: optional name.

    Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
    ...                           keras.layers.Dense(3, name="classifier")], name="mlp")
    >>> opt = tenfold.optimizers.AGC(keras.optimizers.SGD(0.1)).for_model(model)
    >>> list(opt.exclude)
    ['^mlp/classifier/kernel$', '^mlp/classifier/bias$']
    """

    def __init__(
        self,
        inner_optimizer: Any,
        *,
        clipping: float = 0.01,
        epsilon: float = 1e-3,
        exclude: str | list[str] | None = AUTO,
        axes: dict[str, Any] | None = None,
        unit_axes: dict[str, list[int]] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        for arg, default in _BASE_ARGS.items():
            if arg in kwargs:
                value = kwargs.pop(arg)
                if value != default:
                    raise ValueError(
                        f"AGC does not take {arg}={value!r}: set it on the inner optimizer."
                    )
        if kwargs:
            raise ValueError(
                f"AGC received unknown arguments: {', '.join(sorted(kwargs))}; it takes "
                "inner_optimizer, clipping, epsilon, exclude, axes, unit_axes and name."
            )
        if isinstance(inner_optimizer, (str, dict)):
            try:
                inner_optimizer = keras.optimizers.get(inner_optimizer)
            except ValueError as err:
                raise ValueError(
                    "inner_optimizer must be a keras.optimizers.Optimizer, its name or its "
                    f"config, received {inner_optimizer!r} ({err})"
                ) from err
        v.instance("inner_optimizer", inner_optimizer, keras.optimizers.Optimizer,
                   "a keras.optimizers.Optimizer (or its name)")
        super().__init__(learning_rate=0.0, name=name)
        self.clipping = v.positive("clipping", clipping)
        self.epsilon = v.positive("epsilon", epsilon)
        self.exclude = _exclude(exclude)
        self.axes = _axes_table("axes", axes, regex=True)
        self.unit_axes = _axes_table("unit_axes", unit_axes, regex=False)
        self.inner_optimizer = inner_optimizer
        # untracked (plain Python state, not checkpoint dependencies)
        object.__setattr__(self, "_rules", [])
        object.__setattr__(self, "_built_variables", [])
        self._hook(inner_optimizer)

    # -- the model's structure ------------------------------------------------------------

    @staticmethod
    def classifier_patterns(model: Any) -> list[str]:
        """Exact ``variable.path`` regexes of ``model``'s classifier: what ``"auto"`` excludes.

        The classifier is every Dense/EinsumDense layer whose output is a model output,
        possibly through weightless layers (``Activation``, ``Softmax``, ``Dropout``,
        ``Reshape``); a head that is not dense (a conv, a norm) gives nothing. For a
        subclassed model (no recorded graph): the last layer of ``model.layers`` that has
        weights, if it is dense.
        """
        v.instance("model", model, keras.layers.Layer, "a keras.Model")
        return [f"^{re.escape(w.path)}$" for layer in _output_layers(model)
                for w in layer.trainable_weights]

    @staticmethod
    def model_unit_axes(model: Any) -> dict[str, list[int]]:
        """``{variable path: reduced axes}`` of each trainable weight of ``model``, by layer type."""
        v.instance("model", model, keras.layers.Layer, "a keras.Model")
        owners = _owners(model)
        return {w.path: list(layer_axes(owners.get(w.path), w)) for w in model.trainable_weights}

    def for_model(self, model: Any) -> AGC:
        """Take the unit axes and the ``"auto"`` classifier from ``model``; returns ``self``.

        ``opt = AGC(keras.optimizers.SGD(0.1)).for_model(model)`` then ``model.compile(opt,
        ...)``. The result is plain JSON in the config (``exclude`` becomes the exact
        classifier paths, ``unit_axes`` the layer-type units that differ from the rank
        rule), so the saved optimizer needs no model to clip the same after loading.
        """
        v.instance("model", model, keras.layers.Layer, "a keras.Model")
        if not model.trainable_weights:
            raise ValueError(
                f"model {model.name!r} has no trainable weights yet: build it first (give it "
                "a keras.Input or call it on a batch) so AGC can see its layers."
            )
        found = self.model_unit_axes(model)
        weights = {w.path: w for w in model.trainable_weights}
        differing = {path: axes for path, axes in found.items()
                     if tuple(axes) != fallback_axes(_name(weights[path]), len(weights[path].shape))}
        self.unit_axes = {**self.unit_axes, **differing}
        if self.exclude == AUTO or AUTO in self.exclude:
            rest = [] if self.exclude == AUTO else [p for p in self.exclude if p != AUTO]
            self.exclude = self.classifier_patterns(model) + rest
        if self.built:
            object.__setattr__(self, "_rules", self._resolve(self._built_variables))
        return self

    # -- build: one rule per variable -----------------------------------------------------

    def _auto_fallback(self, var_list: list[Any]) -> set[int]:
        if not var_list:
            return set()
        layer_of = [str(w.path).rpartition("/")[0] for w in var_list]
        group = [i for i, p in enumerate(layer_of) if p == layer_of[-1]]
        kinds = {(_name(var_list[i]), len(var_list[i].shape)) for i in group}
        if ("kernel", 2) in kinds and kinds <= {("kernel", 2), ("bias", 1)}:
            return set(group)
        return set()

    def _resolve(self, var_list: list[Any]) -> list[tuple[bool, tuple[int, ...]]]:
        paths = [str(getattr(w, "path", w.name)) for w in var_list]
        patterns = [self.exclude] if isinstance(self.exclude, str) else list(self.exclude)
        excluded = self._auto_fallback(var_list) if AUTO in patterns else set()
        regexes = [p for p in patterns if p != AUTO]
        excluded |= {i for i, p in enumerate(paths) if any(re.search(r, p) for r in regexes)}
        override: dict[int, tuple[str, list[int]]] = {}
        for pattern, axes in self.axes.items():
            matched = [i for i, p in enumerate(paths) if re.search(pattern, p)]
            if not matched:
                shown = ", ".join(repr(p) for p in paths[:4]) + (", ..." if len(paths) > 4 else "")
                raise ValueError(
                    f"axes: the pattern {pattern!r} matches no variable of the {len(paths)} "
                    f"this optimizer is built with (re.search on variable.path; paths look "
                    f"like {shown})."
                )
            for i in matched:
                override.setdefault(i, (pattern, axes))
        rules = []
        for i, (w, path) in enumerate(zip(var_list, paths)):
            rank = len(w.shape)
            if i in override:
                pattern, axes = override[i]
                source = f"axes[{pattern!r}] = {axes!r}"
            elif path in self.unit_axes:
                axes, source = self.unit_axes[path], f"unit_axes[{path!r}] = {self.unit_axes[path]!r}"
            else:
                axes, source = list(fallback_axes(_name(w), rank)), ""
            try:
                reduced = checked_axes(rank, axes)
            except ValueError as err:
                raise ValueError(
                    f"{source} does not fit the variable {path!r} of shape {tuple(w.shape)}: "
                    f"axes must be ints in [-{rank}, {rank}) for a rank-{rank} variable "
                    "(narrow the pattern or give that variable its own entry)."
                ) from err
            rules.append((i in excluded, reduced))
        return rules

    def build(self, var_list: list[Any]) -> None:
        """Build the inner optimizer and decide, per weight, whether and how to clip."""
        if self.built:
            return
        var_list = list(var_list)
        rules = self._resolve(var_list)  # bad overrides fail before any variable is made
        self.inner_optimizer.build(var_list)
        object.__setattr__(self, "_rules", rules)
        object.__setattr__(self, "_built_variables", var_list)
        super().build(var_list)

    def excluded_variables(self) -> list[str]:
        """Paths of the variables AGC leaves unclipped (after ``build``)."""
        return [str(w.path) for w, (ex, _) in zip(self._built_variables, self._rules) if ex]

    def variable_axes(self) -> dict[str, list[int]]:
        """``{variable path: reduced axes}`` AGC uses for each clipped variable (after ``build``)."""
        return {str(w.path): list(axes)
                for w, (ex, axes) in zip(self._built_variables, self._rules) if not ex}

    # -- the clip ---------------------------------------------------------------------------

    @staticmethod
    def _hook(inner: keras.optimizers.Optimizer) -> None:
        """Clip in ``inner``'s clipping step, for the AGC whose ``apply`` is running.

        Installed once per inner optimizer; the AGC comes from this thread's stack of
        running ``apply`` calls, so two AGCs around one optimizer each clip with their
        own settings.
        """
        if getattr(inner, "_tenfold_agc_wrapped", False):
            return
        original = inner._clip_gradients

        def clip_gradients(grads: list[Any]) -> list[Any]:
            calls = [c for c in _in_calls() if c[0].inner_optimizer is inner]
            if not calls:
                raise RuntimeError(
                    f"{type(inner).__name__} {inner.name!r} is wrapped by AGC and was applied "
                    "outside AGC.apply; call apply/stateless_apply on the AGC wrapper, not on "
                    "the inner optimizer."
                )
            return original(calls[-1][0]._clip_final(calls[-1], list(grads)))

        object.__setattr__(inner, "_clip_gradients", clip_gradients)
        object.__setattr__(inner, "_tenfold_agc_wrapped", True)

    def _clip_final(self, call: list[Any], grads: list[Any]) -> list[Any]:
        variables = call[1]
        if len(variables) != len(grads):
            raise RuntimeError(
                f"AGC {self.name!r}: Keras passed {len(grads)} gradients to the clipping step "
                f"where AGC expected {len(variables)}; this Keras version filters gradients "
                "differently and AGC cannot pair them with their variables."
            )
        call[2] = True
        rules = [self._rules[self.inner_optimizer._get_variable_index(w)] for w in variables]
        todo = [i for i, g in enumerate(grads) if g is not None and not rules[i][0]]
        reduced = self._all_reduce([grads[i] for i in todo])
        out = list(grads)
        for i, total in zip(todo, reduced):
            out[i] = self._scaled(grads[i], total, variables[i], rules[i][1])
        return out

    def _all_reduce(self, grads: list[Any]) -> list[Any]:
        """The global gradient under a multi-replica ``tf.distribute`` replica context."""
        if not grads or keras.backend.backend() != "tensorflow":
            return grads
        from tenfold._tf import tensorflow

        tf = tensorflow("AGC under tf.distribute")
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return grads
        return list(context.all_reduce(tf.distribute.ReduceOp.SUM, grads))

    def _scaled(self, local: Any, total: Any, variable: Any, axes: tuple[int, ...]) -> Any:
        """``local`` times the clip factor of the global gradient ``total``."""
        if is_indexed_slices(local) or is_indexed_slices(total):
            return self._scaled_sparse(local, total, variable, axes)
        factor = clip_factor(total, variable, clipping=self.clipping, epsilon=self.epsilon, axis=axes)
        return ops.cast(ops.cast(local, "float32") * factor, local.dtype)

    def _scaled_sparse(self, local: Any, total: Any, variable: Any, axes: tuple[int, ...]) -> Any:
        from tenfold._tf import tensorflow

        tf = tensorflow("AGC on sparse gradients")
        if not is_indexed_slices(total):  # the all-reduce densified it
            factor = clip_factor(total, variable, clipping=self.clipping, epsilon=self.epsilon,
                                 axis=axes)
        else:
            rows, positions = tf.unique(total.indices)
            values = tf.math.unsorted_segment_sum(total.values, positions, tf.shape(rows)[0])
            g_norm = unitwise_norm(values, axes)  # untouched rows contribute zeros
            p_norm = tf.maximum(unitwise_norm(variable, axes), self.epsilon)
            if 0 not in axes:  # one unit per row: the touched rows' weight norms
                p_norm = tf.gather(p_norm, rows)
            max_norm = p_norm * self.clipping
            trigger = g_norm > max_norm
            factor = tf.where(trigger, max_norm / tf.where(trigger, g_norm, 1.0), 1.0)
            if 0 not in axes:  # back to one factor per row of the variable (1 if untouched)
                full = tf.ones((tf.shape(variable)[0],) + tuple(factor.shape[1:]), "float32")
                factor = tf.tensor_scatter_nd_update(full, rows[:, None], factor)
        if not is_indexed_slices(local):
            return tf.cast(tf.cast(local, "float32") * factor, local.dtype)
        row_factor = factor if 0 in axes else tf.gather(factor, local.indices)
        clipped = tf.cast(tf.cast(local.values, "float32") * row_factor, local.values.dtype)
        return tf.IndexedSlices(clipped, local.indices, local.dense_shape)

    def clip(self, gradient: Any, variable: Any) -> Any:
        """The AGC-clipped ``gradient`` of ``variable`` (unchanged when excluded)."""
        if gradient is None:
            return gradient
        excluded, axes = self._rules[self.inner_optimizer._get_variable_index(variable)]
        return gradient if excluded else self._scaled(gradient, gradient, variable, axes)

    # -- apply ------------------------------------------------------------------------------

    def _call_inner(self, grads: list[Any], variables: list[Any], fn: Any) -> Any:
        paired = [w for g, w in zip(grads, variables)
                  if g is not None and not getattr(w, "overwrite_with_gradient", False)]
        call = [self, paired, False]
        stack = _in_calls()
        stack.append(call)
        try:
            result = fn()
        finally:
            stack.remove(call)
        if paired and not call[2] and not self.inner_optimizer.gradient_accumulation_steps:
            raise RuntimeError(
                f"AGC {self.name!r}: {type(self.inner_optimizer).__name__}.apply did not run "
                "Keras' gradient-clipping step, so nothing was clipped; this optimizer "
                "overrides Keras' apply pipeline and cannot be wrapped by AGC."
            )
        return result

    def apply(self, grads: list[Any], trainable_variables: list[Any] | None = None) -> Any:
        grads = list(grads)
        if trainable_variables is not None and not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        variables = self._built_variables if trainable_variables is None else list(trainable_variables)
        return self._call_inner(
            grads, variables, lambda: self.inner_optimizer.apply(grads, trainable_variables)
        )

    def stateless_apply(self, optimizer_variables: list[Any], grads: list[Any],
                        trainable_variables: list[Any]) -> Any:
        own = len(self._variables)
        grads = list(grads)
        new_trainable, new_inner = self._call_inner(
            grads, self._built_variables,
            lambda: self.inner_optimizer.stateless_apply(
                optimizer_variables[own:], grads, trainable_variables),
        )
        # values, never keras.Variables: LossScaleOptimizer returns them from an ops.cond
        mine = [w.value if isinstance(w, keras.Variable) else w for w in optimizer_variables[:own]]
        return new_trainable, mine + list(new_inner)

    @property
    def variables(self) -> list[Any]:
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "clipping": self.clipping,
            "epsilon": self.epsilon,
            "exclude": self.exclude if isinstance(self.exclude, str) else list(self.exclude),
            "axes": {k: list(a) for k, a in self.axes.items()},
            "unit_axes": {k: list(a) for k, a in self.unit_axes.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AGC:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)

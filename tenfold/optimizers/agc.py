"""Adaptive gradient clipping (AGC) as a Keras optimizer wrapper.

References:
    Brock, De, Smith & Simonyan 2021, "High-Performance Large-Scale Image Recognition
    Without Normalization", https://arxiv.org/abs/2102.06171 (Section 4).
    Reference implementation: deepmind-research, ``nfnets/agc_optax.py``.
"""

from __future__ import annotations

import re
from typing import Any

import keras

from tenfold._api import export
from tenfold.ops.clipping import adaptive_clip, unitwise_norm
from tenfold.optimizers._common import check_number, is_indexed_slices
from tenfold.testing import ContractExample

_BASE_ARGS = {
    "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None,
}


def _example() -> ContractExample:
    return ContractExample(
        make=lambda: AGC(keras.optimizers.SGD(0.05, momentum=0.9), clipping=0.01,
                         exclude=["logits"]),
        input_shape=(8, 8, 1),
    )


def _patterns(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(p, str) for p in items):
        raise TypeError(
            f"{name} must be None, a regex string or a list of regex strings, received {value!r}."
        )
    for p in items:
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"{name}: {p!r} is not a valid regular expression ({err}).") from err
    return list(items)


def _axes_table(value: Any) -> dict[str, list[int]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            "axes must be None or a dict {path regex: list of int axes}, received "
            f"{value!r}."
        )
    out: dict[str, list[int]] = {}
    for pattern, axes in value.items():
        _patterns("axes key", pattern)
        if isinstance(axes, int) and not isinstance(axes, bool):
            axes = [axes]
        if not isinstance(axes, (list, tuple)) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes
        ):
            raise TypeError(f"axes[{pattern!r}] must be an int or a list of ints, received {axes!r}.")
        out[pattern] = [int(a) for a in axes]
    return out


@export("tenfold.optimizers.AGC", example=_example)
class AGC(keras.optimizers.Optimizer):
    """Wrap an optimizer so every unit's gradient is clipped relative to its weight norm.

    For each output unit ``i`` of each weight ``W`` (unit-wise norms over all axes but the
    last; whole tensor for scalars and vectors)::

        G_i ← clipping · max(‖W_i‖, ε) / ‖G_i‖ · G_i   when ‖G_i‖ / max(‖W_i‖, ε) > clipping

    The clip is applied inside the inner optimizer's per-variable update, so it sees the
    gradient that is really applied: after loss-scale unscaling (``LossScaleOptimizer``
    wraps this optimizer), after ``gradient_accumulation_steps`` averaging and after the
    cross-replica all-reduce under a ``tf.distribute`` strategy (clipping before the
    all-reduce, as ``clipnorm`` does, would give each replica different weights). It
    works with any Keras optimizer whose update runs through ``update_step`` (all
    built-in ones on the TensorFlow and JAX backends).

    Args:
        inner_optimizer: the ``keras.optimizers.Optimizer`` to wrap (or its name / config).
        clipping: float > 0. The threshold λ. Defaults to 0.01 (NFNets, batch size 4096;
            the paper uses larger λ for smaller batches).
        epsilon: float ≥ 0. Floor ε on the weight norm. Defaults to 1e-3.
        exclude: None, a regex or a list of regexes matched (``re.search``) against
            ``variable.path``; matching weights are not clipped (the paper leaves the final
            classifier unclipped).
        axes: None or ``{path regex: [axes]}``: the norm axes of matching weights (first
            match wins), e.g. ``{"depthwise": [0, 1]}`` or einsum kernels.
        name: optional name.

    Example:
    >>> opt = tenfold.optimizers.AGC(keras.optimizers.SGD(0.1), clipping=0.01,
    ...                              exclude=["classifier"])
    >>> opt.get_config()["inner_optimizer"]["class_name"]
    'SGD'
    """

    def __init__(
        self,
        inner_optimizer: Any,
        *,
        clipping: float = 0.01,
        epsilon: float = 1e-3,
        exclude: str | list[str] | None = None,
        axes: dict[str, list[int]] | None = None,
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
            raise ValueError(f"AGC received unknown arguments: {', '.join(sorted(kwargs))}.")
        if isinstance(inner_optimizer, (str, dict)):
            inner_optimizer = keras.optimizers.get(inner_optimizer)
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "inner_optimizer must be a keras.optimizers.Optimizer (or its name), received "
                f"{type(inner_optimizer).__name__}."
            )
        if getattr(inner_optimizer, "_tenfold_agc_wrapped", False):
            raise ValueError(
                f"inner_optimizer {inner_optimizer.name!r} is already wrapped by an AGC; "
                "wrap a fresh optimizer instead."
            )
        super().__init__(learning_rate=0.0, name=name)
        self.clipping = check_number("clipping", clipping, low=0.0, low_open=True)
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self.exclude = _patterns("exclude", exclude)
        self.axes = _axes_table(axes)
        self.inner_optimizer = inner_optimizer
        self._rules: list[Any] = []
        self._hook(inner_optimizer)

    def _hook(self, inner: keras.optimizers.Optimizer) -> None:
        original = inner.update_step

        def clipped_update_step(gradient: Any, variable: Any, learning_rate: Any) -> Any:
            return original(self.clip(gradient, variable), variable, learning_rate)

        object.__setattr__(inner, "update_step", clipped_update_step)
        object.__setattr__(inner, "_tenfold_agc_wrapped", True)

    def _rule(self, path: str) -> tuple[bool, list[int] | None]:
        if any(re.search(p, path) for p in self.exclude):
            return True, None
        for pattern, axes in self.axes.items():
            if re.search(pattern, path):
                return False, axes
        return False, None

    def build(self, var_list: list[Any]) -> None:
        """Build the inner optimizer and decide, per weight, whether and how to clip."""
        if self.built:
            return
        self.inner_optimizer.build(var_list)
        self._rules = [self._rule(getattr(v, "path", v.name)) for v in var_list]
        super().build(var_list)

    def clip(self, gradient: Any, variable: Any) -> Any:
        """The AGC-clipped ``gradient`` of ``variable`` (unchanged when excluded)."""
        if gradient is None:
            return gradient
        index = self.inner_optimizer._get_variable_index(variable)
        excluded, axes = self._rules[index]
        if excluded:
            return gradient
        if is_indexed_slices(gradient):
            return self._clip_sparse(gradient, variable, axes)
        return adaptive_clip(
            gradient, variable, clipping=self.clipping, epsilon=self.epsilon, axis=axes
        )

    def _clip_sparse(self, gradient: Any, variable: Any, axes: list[int] | None) -> Any:
        from tenfold._tf import tensorflow

        tf = tensorflow("AGC on sparse gradients")
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
        rank = len(variable.shape)
        reduce = axes if axes is not None else (list(range(rank)) if rank <= 1 else list(range(rank - 1)))
        reduce = sorted({a % rank for a in reduce})
        g_norm = unitwise_norm(values, reduce)  # untouched rows contribute zeros
        p_norm = tf.maximum(unitwise_norm(variable, reduce), self.epsilon)
        if 0 not in reduce:  # one unit per row: keep the touched rows' weight norms
            p_norm = tf.gather(p_norm, rows)
        max_norm = p_norm * self.clipping
        trigger = g_norm > max_norm
        scale = tf.where(trigger, max_norm / tf.where(trigger, g_norm, 1.0), 1.0)
        clipped = tf.cast(tf.cast(values, "float32") * scale, values.dtype)
        return tf.IndexedSlices(clipped, rows, gradient.dense_shape)

    def apply(self, grads: list[Any], trainable_variables: list[Any] | None = None) -> Any:
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        return self.inner_optimizer.apply(grads, trainable_variables)

    def stateless_apply(self, optimizer_variables: list[Any], grads: list[Any],
                        trainable_variables: list[Any]) -> Any:
        own = len(self._variables)
        new_trainable, new_inner = self.inner_optimizer.stateless_apply(
            optimizer_variables[own:], grads, trainable_variables
        )
        return new_trainable, list(optimizer_variables[:own]) + list(new_inner)

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
            "exclude": list(self.exclude),
            "axes": {k: list(v) for k, v in self.axes.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AGC:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)

"""A custom-loop training step with dynamic loss scaling for ``mixed_float16``.

References:
    Micikevicius et al. 2018, "Mixed Precision Training", https://arxiv.org/abs/1710.03740,
    section 3.2: multiply the loss by a scale S before backpropagation so that small
    float16 gradients do not flush to zero, divide the gradients by S, skip the update and
    halve S when a gradient is inf/NaN, double S after N finite steps (N = 2000).

Keras 3 removed ``LossScaleOptimizer.get_scaled_loss`` / ``get_unscaled_gradients``; the
same protocol is ``LossScaleOptimizer.scale_loss`` + ``apply`` (which unscales, checks and
skips). :func:`train_step` packages it for a ``tf.GradientTape`` loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow


def _uses_float16(model: keras.Model) -> bool:
    return any(
        getattr(layer, "compute_dtype", None) == "float16"
        for layer in model._flatten_layers(include_self=True)
    )


@export("tenfold.precision.train_step")
def train_step(
    model: keras.Model,
    loss_fn: Callable[[Any, Any], Any],
    optimizer: keras.optimizers.Optimizer,
    *,
    loss_scaling: bool | str = "auto",
    jit_compile: bool = False,
) -> Callable[..., dict[str, Any]]:
    """A compiled ``step(x, y)`` for custom loops, with loss scaling under float16.

    When the model computes in float16 (``mixed_float16``) the optimizer is wrapped in
    ``keras.optimizers.LossScaleOptimizer`` (unless it already is one) and each step
    scales the loss, unscales the gradients, skips the update when any gradient is not
    finite (halving the scale) and doubles the scale after 2000 finite steps. Under
    float32 / bfloat16 it is a plain step. The loss (and the model's ``losses``) is summed
    in float32.

    Args:
        model: keras.Model. Built or buildable on ``x``.
        loss_fn: ``(y_true, y_pred) -> scalar`` (a Keras loss or any callable).
        optimizer: keras.optimizers.Optimizer.
        loss_scaling: ``"auto"`` (on for float16 models), ``True`` or ``False``.
        jit_compile: bool. Compile the step with XLA.

    Returns:
        ``step(x, y) -> {"loss", "finite", "loss_scale"}``; ``step.optimizer`` is the
        optimizer actually used (the LossScaleOptimizer when scaling).

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> step = train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))
    >>> logs = step(np.ones((4, 3), "float32"), np.zeros((4, 1), "float32"))
    >>> bool(logs["finite"]), float(logs["loss_scale"])
    (True, 1.0)
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "tenfold.precision.train_step builds a tf.GradientTape step and needs the TensorFlow "
            f"backend (KERAS_BACKEND=tensorflow); the Keras backend is {keras.backend.backend()!r}. "
            "On JAX or PyTorch, model.compile() under 'mixed_float16' wraps the optimizer in "
            "keras.optimizers.LossScaleOptimizer and fit() scales the loss itself."
        )
    tf = tensorflow("tenfold.precision.train_step")
    v.instance("model", model, keras.Model, "a keras.Model")
    v.instance("optimizer", optimizer, keras.optimizers.Optimizer, "a keras.optimizers.Optimizer")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (y_true, y_pred) -> loss, received {loss_fn!r}.")
    loss_scaling = v.auto_or_boolean("loss_scaling", loss_scaling)
    scaling = _uses_float16(model) if loss_scaling == "auto" else loss_scaling
    if scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)

    def step(x: Any, y: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = tf.cast(loss_fn(y, pred), tf.float32)
            if model.losses:
                loss += tf.add_n([tf.cast(extra, tf.float32) for extra in model.losses])
            scaled = optimizer.scale_loss(loss) if scaling else loss
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
        optimizer.apply(grads, variables)  # LossScaleOptimizer: unscale, check, skip
        scale = optimizer.dynamic_scale if scaling else tf.constant(1.0)
        return {"loss": loss, "finite": finite, "loss_scale": tf.identity(scale)}

    compiled = tf.function(step, jit_compile=jit_compile)
    compiled.optimizer = optimizer  # type: ignore[attr-defined]
    return compiled

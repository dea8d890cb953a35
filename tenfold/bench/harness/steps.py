"""The one training step the benchmarks time by hand (outside ``model.fit``).

Example:
>>> import keras
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
>>> step = train_step(model, keras.optimizers.SGD(0.1))
>>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
>>> bool(step(x, y) >= 0)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from tenfold._tf import tensorflow


def train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, loss: Any = None
) -> Callable[[Any, Any], Any]:
    """``step(x, y) -> loss``: forward in training mode, ``loss``, gradients, ``optimizer.apply``.

    A ``tf.function`` (graph mode, traced on the first call), so it is what
    ``tenfold.remat.peak_memory`` measures and what the optimizer benchmark times. Builds
    ``optimizer`` on the model's trainable variables. ``loss`` defaults to sparse
    categorical cross-entropy on logits.
    """
    tf = tensorflow("the benchmarks' training step")
    loss_fn = loss if loss is not None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            value = loss_fn(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return value

    return step

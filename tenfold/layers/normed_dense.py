"""A cosine classifier: a Dense layer on L2-normalized inputs and class weight vectors.

References:
    Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", https://arxiv.org/abs/1906.07413 (the normalized linear layer of LDAM-DRW);
    Gidaris & Komodakis 2018, "Dynamic Few-Shot Visual Learning without Forgetting",
    https://arxiv.org/abs/1804.09458 (cosine-similarity classifiers).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: NormedDense(6), input_shape=(5,))


@export("tenfold.layers.NormedDense", example=_example)
class NormedDense(keras.layers.Layer):
    """``cos(x, w_j)`` for every class ``j``: outputs in [−1, 1], no bias.

    ``y = (x / ‖x‖) · (W / ‖W‖_col)`` where each column ``w_j`` of the ``(features, units)``
    kernel is one class's weight vector. Every class then has the same weight norm, which
    removes the norm bias towards head classes that a plain Dense head learns on
    long-tailed data. The logits are bounded, so pair it with a loss that scales them
    (:class:`tenfold.losses.LDAMLoss` with ``scale=30``). Norms are computed in float32
    under mixed precision; the output has the layer's compute dtype.

    Args:
        units: int. Number of classes (output features).
        epsilon: float in (0, 1). Floor on the norms, a guard against dividing by 0; at 1
            or more, vectors shorter than it would no longer be normalized and the outputs
            would not be cosines. Defaults to `1e-12`.
        kernel_initializer: Keras initializer of the kernel. Defaults to
            `"glorot_uniform"`.
        kernel_regularizer: optional Keras regularizer of the kernel.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
    >>> layer = NormedDense(3)
    >>> out = layer(np.ones((2, 4), "float32"))
    >>> tuple(out.shape), bool(np.all(np.abs(out) <= 1.0 + 1e-6))
    ((2, 3), True)
    """

    def __init__(
        self,
        units: int,
        *,
        epsilon: float = 1e-12,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = v.integer("units", units, low=1)
        self.epsilon = v.number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True)
        self.kernel_initializer = v.keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get,
            "a Keras initializer (a name such as 'glorot_uniform', a config or an instance)",
        )
        self.kernel_regularizer = v.keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get,
            "None or a Keras regularizer (a name such as 'l2', a config or an instance)",
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"NormedDense needs a known last input dimension, received {input_shape}.")
        self.kernel = self.add_weight(
            name="kernel", shape=(int(features), self.units),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: int(features)})

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        w = ops.cast(self.kernel, "float32")
        x = x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), self.epsilon)
        w = w / ops.maximum(ops.sqrt(ops.sum(ops.square(w), axis=0, keepdims=True)), self.epsilon)
        return ops.cast(ops.matmul(x, w), self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None else None,
        )
        return config

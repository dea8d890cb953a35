"""Batch normalization computed by TensorFlow's fused kernel.

Keras 2 (``tf.keras``) ran ``BatchNormalization`` through ``FusedBatchNormV3`` by default.
Keras 3 computes it from separate ops (moments, subtract, multiply, add), in float32 even
under a mixed policy, and on a CPU those element-wise passes cost more than the convolutions
they follow once the convolutions run in bfloat16. :class:`FusedBatchNormalization` is the
same layer — same arguments, weights, config and results — whose forward and backward
passes are one fused kernel each on the TensorFlow backend (oneDNN on CPUs, cuDNN on GPUs),
taking bfloat16/float16 activations directly with float32 statistics.

Measured (``tenfold bench precision``): the small ResNet trains 1.3× faster in float32, and
bfloat16 then gains about 2× over float32 instead of 1.3×.
"""

from __future__ import annotations

from typing import Any

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold.testing import ContractExample

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


def _example() -> ContractExample:
    return ContractExample(make=lambda: FusedBatchNormalization(), input_shape=(6, 6, 4))


@export("tenfold.layers.FusedBatchNormalization", example=_example)
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` on TensorFlow's fused kernel.

    Training normalizes with the batch mean and (biased) variance and updates the moving
    statistics exactly as Keras does: ``moving = moving · momentum + batch · (1 − momentum)``;
    inference uses the moving statistics. Inputs in bfloat16 or float16 stay in that dtype
    (the kernel accumulates the statistics in float32), so mixed precision pays no casts.

    The fused kernel is used on the TensorFlow backend for channels-last inputs of rank 2 to
    4 (``axis=-1``) without a mask, ``renorm`` or ``synchronized``; in every other case (other
    backends included) the layer is Keras' own ``BatchNormalization``, with the same weights.
    A model saved with it loads with ``keras.saving.load_model`` once ``tenfold`` is imported;
    ``tenfold.reparam.deploy`` folds it into the convolution before it like Keras' layer.

    Args:
        axis: int. The feature axis. Defaults to `-1`.
        momentum: float in [0, 1). Momentum of the moving statistics. Defaults to `0.99`.
        epsilon: float in (0, 1). Added to the variance, a guard against a zero variance;
            at 1 or more it outweighs the variance of unit-scale activations and the layer
            no longer normalizes, so larger values are refused. Defaults to `1e-3`.
        center: bool. Learn the offset ``beta``. Defaults to `True`.
        scale: bool. Learn the scale ``gamma``. Defaults to `True`.
        **kwargs: any other ``keras.layers.BatchNormalization`` argument (initializers,
            regularizers, ``renorm``, ``synchronized``, ``name``, ``dtype``, ...).

    Example:
    >>> layer = tenfold.layers.FusedBatchNormalization()
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 4, 4, 2)).astype("float32")
    >>> y = keras.ops.convert_to_numpy(layer(x, training=True))
    >>> bool(abs(y.mean()) < 1e-4), bool(abs(y.std() - 1.0) < 1e-3)
    (True, True)
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            axis=v.integer("axis", axis),
            momentum=v.fraction("momentum", momentum, open_high=True),
            epsilon=v.number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True),
            center=v.boolean("center", center),
            scale=v.boolean("scale", scale),
            **kwargs,
        )

    def _fusable(self, inputs: Any, mask: Any) -> bool:
        if keras.backend.backend() != "tensorflow" or mask is not None:
            return False
        if self.renorm or getattr(self, "synchronized", False):
            return False
        rank = len(inputs.shape)
        if not 2 <= rank <= 4 or self.axis not in (-1, rank - 1):
            return False
        return keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        from tenfold._tf import tensorflow

        tf = tensorflow("FusedBatchNormalization")
        channels = inputs.shape[-1]
        x = inputs
        rank = len(inputs.shape)
        if rank != 4:  # the kernel wants NHWC: fold the other axes into N and W
            x = tf.reshape(x, [-1, 1, 1 if rank == 2 else tf.shape(inputs)[1], channels])
        compute = tf.as_dtype(self.compute_dtype)
        if x.dtype != compute and compute.name in _FUSED_DTYPES:
            x = tf.cast(x, compute)
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.constant([], tf.float32),
                variance=tf.constant([], tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
            )
            # the kernel returns the unbiased (n − 1) batch variance for the running average;
            # Keras averages the biased one, which is also what normalized the batch
            count = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(
                self.moving_mean * momentum + tf.cast(mean, self.moving_mean.dtype) * (1.0 - momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * momentum
                + tf.cast(variance, self.moving_variance.dtype) * (1.0 - momentum)
            )
        else:
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=False,
            )
        if rank != 4:
            y = tf.reshape(y, tf.shape(inputs))
        return tf.cast(y, self.compute_dtype)

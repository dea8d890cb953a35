"""Extended Batch Normalization (EBN).

References:
    Luo, Chunjie et al. 2020, "Extended Batch Normalization",
    https://arxiv.org/abs/2003.05569
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.testing import ContractExample


def _cross_replica_sum(values: list[Any]) -> list[Any]:
    """Sum tensors over the replicas of a ``tf.distribute`` strategy (identity otherwise)."""
    if keras.backend.backend() != "tensorflow":
        return values
    from tenfold._tf import tensorflow

    tf = tensorflow("cross-replica statistics of ExtendedBatchNormalization")
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return values
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return values
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, values))


def _example() -> ContractExample:
    return ContractExample(
        make=lambda: ExtendedBatchNormalization(variance_groups=1), input_shape=(6, 6, 4)
    )


@export("tenfold.layers.ExtendedBatchNormalization", example=_example)
class ExtendedBatchNormalization(keras.layers.Layer):
    """Batch normalization with the variance pooled over the channels as well.

    In training, the mean is taken per channel over the batch and spatial axes, as in
    BatchNormalization; the variance (around those per-channel means) is pooled over the
    batch, the spatial axes **and the channels** of each of ``variance_groups``
    contiguous channel groups::

        mu_c      = mean_{n,h,w} x[n,h,w,c]
        sigma2_g  = mean_{n,h,w, c in g} (x[n,h,w,c] - mu_c)^2
        y         = gamma_c * (x - mu_c) / sqrt(sigma2_g + epsilon) + beta_c

    ``variance_groups=1`` is the paper's EBN: one variance per batch, estimated from
    C times more numbers than BN's, hence stable at tiny batch sizes;
    ``variance_groups=C`` is ordinary BatchNormalization. The moving statistics
    (``moving_mean`` per channel, ``moving_variance`` holding each channel's group variance)
    are used in inference. Statistics are computed in float32 under mixed precision. Under a
    ``tf.distribute`` strategy the sums are all-reduced across replicas, so the statistics
    are those of the global batch. Masks are supported as in BatchNormalization (a mask
    with one dimension less than the input).

    Args:
        axis: int. The channel axis. Defaults to `-1`.
        momentum: float in [0, 1). Momentum of the moving statistics. Defaults to `0.99`.
        epsilon: float in (0, 1). Added to the variance, a guard against a zero variance
            (at 1 or more it outweighs the variance of unit-scale activations and the layer
            no longer normalizes). Defaults to `1e-3`.
        center: bool. Learn the offset ``beta``. Defaults to `True`.
        scale: bool. Learn the scale ``gamma``. Defaults to `True`.
        variance_groups: int. Number of channel groups sharing one variance; must divide
            the number of channels. Defaults to `1` (the paper's EBN).
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: as in `keras.layers.BatchNormalization`.

    Example:
    >>> layer = tenfold.layers.ExtendedBatchNormalization()
    >>> y = layer(np.random.normal(size=(2, 4, 4, 3)), training=True)
    >>> tuple(y.shape)
    (2, 4, 4, 3)
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        *,
        variance_groups: int = 1,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.axis = v.integer("axis", axis)
        self.momentum = v.fraction("momentum", momentum, open_high=True)
        self.epsilon = v.number("epsilon", epsilon, low=0, high=1, low_open=True, high_open=True)
        self.center = v.boolean("center", center)
        self.scale = v.boolean("scale", scale)
        self.variance_groups = v.integer("variance_groups", variance_groups, low=1)
        initializer = "a Keras initializer (a name such as 'zeros', a config or an instance)"
        self.beta_initializer = v.keras_object(
            "beta_initializer", beta_initializer, keras.initializers.get, initializer)
        self.gamma_initializer = v.keras_object(
            "gamma_initializer", gamma_initializer, keras.initializers.get, initializer)
        self.moving_mean_initializer = v.keras_object(
            "moving_mean_initializer", moving_mean_initializer, keras.initializers.get, initializer)
        self.moving_variance_initializer = v.keras_object(
            "moving_variance_initializer", moving_variance_initializer, keras.initializers.get,
            initializer)
        regularizer = "None or a Keras regularizer (a name such as 'l2', a config or an instance)"
        self.beta_regularizer = v.keras_object(
            "beta_regularizer", beta_regularizer, keras.regularizers.get, regularizer)
        self.gamma_regularizer = v.keras_object(
            "gamma_regularizer", gamma_regularizer, keras.regularizers.get, regularizer)
        constraint = "None or a Keras constraint (a name such as 'non_neg', a config or an instance)"
        self.beta_constraint = v.keras_object(
            "beta_constraint", beta_constraint, keras.constraints.get, constraint)
        self.gamma_constraint = v.keras_object(
            "gamma_constraint", gamma_constraint, keras.constraints.get, constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"axis {self.axis} is out of bounds for input shape {tuple(input_shape)}.")
        self._axis = self.axis % rank
        channels = input_shape[self._axis]
        if channels is None:
            raise ValueError(f"the channel axis {self.axis} of the input must be known, input shape {tuple(input_shape)}.")
        channels = int(channels)
        if channels % self.variance_groups:
            raise ValueError(
                f"variance_groups must divide the number of channels ({channels}), received "
                f"{self.variance_groups}."
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape, name="gamma", initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                trainable=True, autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape, name="beta", initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                trainable=True, autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
            trainable=False, autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape, name="moving_variance", initializer=self.moving_variance_initializer,
            trainable=False, autocast=False,
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._axis: channels})
        self._channels = channels
        self._reduction_axes = [i for i in range(rank) if i != self._axis]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def _broadcast(self, vector: Any, rank: int) -> Any:
        shape = [1] * rank
        shape[self._axis] = self._channels
        return ops.reshape(vector, shape)

    def _moments(self, x: Any, mask: Any) -> tuple[Any, Any]:
        """Per-channel mean and per-channel (group-pooled) variance of the global batch."""
        rank = len(x.shape)
        axes = self._reduction_axes
        if mask is None:
            weights = None
            local_count = ops.cast(ops.size(x), "float32") / float(self._channels)
            local_sum = ops.sum(x, axis=axes)
        else:
            weights = ops.cast(ops.expand_dims(ops.cast(mask, "bool"), axis=self._axis), "float32")
            weights = ops.broadcast_to(weights, ops.shape(x))
            local_count = ops.sum(weights) / float(self._channels)
            local_sum = ops.sum(x * weights, axis=axes)
        total_sum, count = _cross_replica_sum([local_sum, local_count])
        count = ops.maximum(count, 1.0)
        mean = total_sum / count
        centred = ops.square(x - self._broadcast(mean, rank))
        if weights is not None:
            centred = centred * weights
        (total_sq,) = _cross_replica_sum([ops.sum(centred, axis=axes)])
        variance_c = total_sq / count  # ordinary BN's per-channel (biased) variance
        groups = self.variance_groups
        pooled = ops.mean(ops.reshape(variance_c, (groups, self._channels // groups)), axis=1)
        variance = ops.reshape(
            ops.repeat(ops.expand_dims(pooled, 1), self._channels // groups, axis=1), (self._channels,)
        )
        return mean, variance

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask must have one dimension less than the inputs, received "
                f"mask.shape={mask.shape}, inputs.shape={inputs.shape}."
            )
        x = ops.cast(inputs, "float32")
        rank = len(x.shape)
        if training and self.trainable:
            mean, variance = self._moments(x, mask)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            mean = ops.convert_to_tensor(self.moving_mean)
            variance = ops.convert_to_tensor(self.moving_variance)
        inv = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        offset = -mean * inv
        if self.beta is not None:
            offset = offset + self.beta
        outputs = x * self._broadcast(inv, rank) + self._broadcast(offset, rank)
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        ser = keras.saving.serialize_keras_object
        config.update(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            variance_groups=self.variance_groups,
            beta_initializer=ser(self.beta_initializer),
            gamma_initializer=ser(self.gamma_initializer),
            moving_mean_initializer=ser(self.moving_mean_initializer),
            moving_variance_initializer=ser(self.moving_variance_initializer),
            beta_regularizer=ser(self.beta_regularizer),
            gamma_regularizer=ser(self.gamma_regularizer),
            beta_constraint=ser(self.beta_constraint),
            gamma_constraint=ser(self.gamma_constraint),
        )
        return config

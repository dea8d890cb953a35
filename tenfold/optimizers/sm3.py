"""SM3: memory-efficient adaptive optimization with per-axis cover accumulators.

References:
    Anil, Gupta, Koren & Singer 2019, "Memory-Efficient Adaptive Optimization",
    https://arxiv.org/abs/1901.11150 (Algorithm SM3-II).
    Reference implementation: google-research, ``sm3/sm3.py``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate
from tenfold._api import export
from tenfold.ops.factored import sm3_cover_max, sm3_cover_min
from tenfold.optimizers._common import f32, is_indexed_slices
from tenfold.testing import ContractExample

MOMENTUM_DTYPES = ("float32", "bfloat16")
DEFAULT_EPSILON = 1e-8


def _example() -> ContractExample:
    return ContractExample(make=lambda: SM3(0.05, momentum_dtype="bfloat16"), input_shape=(8, 8, 1))


@export("tenfold.optimizers.SM3", example=_example)
class SM3(keras.optimizers.Optimizer):
    """SM3-II (Anil et al. 2019): Adagrad-like steps with Σdᵢ numbers of state per tensor.

    A rank-k weight of shape ``(d₁, …, d_k)`` keeps one accumulator per slice along each
    axis (``Σ dᵢ`` numbers); a vector keeps its full diagonal; a scalar one number. Each
    step, for every entry ``j``::

        ν(j) = minᵢ μᵢ(jᵢ) + g(j)²
        u(j) = g(j) / √(ν(j) + ε)        (0/0 taken as 0 when ε = 0)
        μᵢ(r) ← max of ν over the slice r of axis i
        m ← β m + (1 − β) u ;  X ← X − lr · m      (β = momentum; u itself when β = 0)

    Momentum needs a full-size slot: with ``momentum=0`` the state is sub-linear, with the
    default 0.9 it is half of Adam's (a quarter with ``momentum_dtype="bfloat16"``). Sparse gradients (``IndexedSlices`` from an Embedding,
    TensorFlow backend) update only the rows they touch — accumulators, momentum and
    weights alike; with ``momentum=0`` this equals the dense rule exactly. Statistics are
    float32 under mixed precision.

    **epsilon.** The first step is ``u = g / |g| = ±1`` for every entry (all accumulators
    start at 0), whatever the size of ``g``. With ``ε = 0`` (the paper's and the
    google-research code's rule) a gradient that is zero up to float32 round-off — the bias
    of a convolution followed by batch normalization — still moves by ``±lr`` per step, in
    a direction set by the summation order, so one device and two replicas part (0.30 on
    such a bias after 20 steps at lr 0.1). ``ε = 1e-8`` (optax's default) damps entries
    with ``√ν ≪ 1e-4`` (0.30 → 2e-4 on that bias) and leaves gradients of ordinary size
    alone.

    **bfloat16 momentum.** With ``momentum_dtype="bfloat16"`` the momentum slot is stored
    in bfloat16: it is widened to float32, the new ``m`` is computed in float32 and applied
    to the weight as is, and only the stored copy is rounded to bfloat16, to nearest even.

    Args:
        learning_rate: float > 0 or a ``LearningRateSchedule``.
        momentum: float in [0, 1). EMA factor of the preconditioned gradient. Defaults to 0.9.
        epsilon: float ≥ 0. Added under the square root. Defaults to 1e-8 (see above).
        momentum_dtype: ``"float32"`` (default) or ``"bfloat16"``: storage of the momentum.
        **kwargs: standard Keras optimizer arguments.

    Example:
    >>> opt = tenfold.optimizers.SM3(0.1, momentum=0.0)
    >>> model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512)])
    >>> opt.build(model.trainable_variables)
    >>> tenfold.optimizers.state_bytes(opt)  # (256 + 512) + 512 floats, step, lr
    5132
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
        *,
        momentum: float = 0.9,
        epsilon: float = DEFAULT_EPSILON,
        momentum_dtype: str = "float32",
        **kwargs: Any,
    ) -> None:
        if not (
            isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
            or callable(learning_rate)
        ):
            try:
                learning_rate = _validate.positive("learning_rate", learning_rate)
            except TypeError as error:
                raise TypeError(f"{error} A LearningRateSchedule is accepted too.") from None
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _validate.fraction("momentum", momentum, open_high=True)
        self.epsilon = _validate.non_negative("epsilon", epsilon)
        self.momentum_dtype = _validate.choice("momentum_dtype", momentum_dtype, MOMENTUM_DTYPES)

    def build(self, var_list: list[Any]) -> None:
        """Create the cover accumulators (one vector per axis) and the momentum slots."""
        if self.built:
            return
        super().build(var_list)
        self._accumulators: list[Any] = []
        self._momenta: list[Any] = []
        for var in var_list:
            prefix = var.path.replace("/", "_") if hasattr(var, "path") else str(var.name)
            shape = tuple(int(d) for d in var.shape)
            if self._overwrite_variable_with_gradient(var):
                self._accumulators.append(None)
                self._momenta.append(None)
                continue
            if not shape:
                accs = [self.add_variable((), dtype="float32", name=f"{prefix}_acc")]
            else:
                accs = [
                    self.add_variable((d,), dtype="float32", name=f"{prefix}_acc{axis}")
                    for axis, d in enumerate(shape)
                ]
            self._accumulators.append(accs)
            self._momenta.append(
                self.add_variable(shape, dtype=self.momentum_dtype, name=f"{prefix}_momentum")
                if self.momentum > 0 else None
            )

    def _precondition(self, g: Any, nu: Any) -> Any:
        denom = nu + self.epsilon if self.epsilon > 0 else nu
        positive = denom > 0
        return ops.where(positive, g * ops.rsqrt(ops.where(positive, denom, 1.0)), 0.0)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        index = self._get_variable_index(variable)
        if is_indexed_slices(gradient) and len(variable.shape) >= 1:
            self._sparse_update_step(gradient, variable, learning_rate, index)
            return
        accs = self._accumulators[index]
        shape = tuple(int(d) for d in variable.shape)
        g = f32(gradient)
        nu = sm3_cover_min([a for a in accs], shape) + ops.square(g)
        for acc, new in zip(accs, sm3_cover_max(nu)):
            self.assign(acc, new)
        update = self._precondition(g, nu)
        if self._momenta[index] is not None:
            m = self._momenta[index]
            # computed in float32; only the stored copy is rounded (to nearest even)
            update = self.momentum * f32(m) + (1.0 - self.momentum) * update
            self.assign(m, ops.cast(update, m.dtype))
        self.assign_sub(variable, ops.cast(f32(learning_rate) * update, variable.dtype))

    def _sparse_update_step(self, gradient: Any, variable: Any, learning_rate: Any, index: int) -> None:
        from tenfold._tf import tensorflow

        tf = tensorflow("SM3 sparse updates")
        accs = self._accumulators[index]
        shape = tuple(int(d) for d in variable.shape)
        rank = len(shape)
        rows, positions = tf.unique(tf.cast(gradient.indices, "int64"))
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, "float32"), positions, tf.shape(rows)[0]
        )
        # min over the covers, restricted to the touched rows
        cover = tf.reshape(tf.gather(accs[0], rows), [-1] + [1] * (rank - 1))
        for axis in range(1, rank):
            view = [1] * rank
            view[axis] = shape[axis]
            cover = tf.minimum(cover, tf.reshape(accs[axis], view))
        nu = cover + tf.square(values)
        other_axes = list(range(1, rank))
        row_max = tf.reduce_max(nu, axis=other_axes) if other_axes else nu
        self.assign(accs[0], tf.IndexedSlices(row_max, rows, tf.constant(shape[:1], "int64")))
        for axis in other_axes:
            reduce = [a for a in range(rank) if a != axis]
            # untouched rows have g = 0 and ν ≤ μ_axis: the max over all rows is this one
            self.assign(accs[axis], tf.maximum(accs[axis], tf.reduce_max(nu, axis=reduce)))
        update = self._precondition(values, nu)
        if self._momenta[index] is not None:
            m = self._momenta[index]
            update = self.momentum * f32(tf.gather(m, rows)) + (1.0 - self.momentum) * update
            stored = tf.cast(update, m.dtype)
            self.assign(m, tf.IndexedSlices(stored, rows, tf.constant(shape, "int64")))
        step = tf.cast(f32(learning_rate) * update, variable.dtype)
        self.assign_sub(variable, tf.IndexedSlices(step, rows, tf.constant(shape, "int64")))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            momentum=self.momentum, epsilon=self.epsilon, momentum_dtype=self.momentum_dtype
        )
        return config

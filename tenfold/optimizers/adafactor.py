"""Adafactor with the paper's sub-linear memory.

Keras' own ``keras.optimizers.Adafactor`` keeps a full-size ``velocity`` slot for every
weight besides the row and column factors; this one keeps only what the paper keeps.

References:
    Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
    https://arxiv.org/abs/1804.04235 (Algorithms 4 and 5, Sections 5-8).
    Reference implementation: tensorflow/mesh, ``mesh_tensorflow/optimize.py``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate
from tenfold._api import export
from tenfold.ops.factored import factored_dims, factored_rsqrt, factored_split, grouped_shape, rms
from tenfold.optimizers._common import dense, f32
from tenfold.testing import ContractExample

_DEFAULT_CAP = 1e-2
MOMENTUM_DTYPES = ("float32", "bfloat16")
FACTORINGS = ("by_layer", "largest_axes")


def _example() -> ContractExample:
    # min_dim_size_to_factor=3 factors the test model's conv and dense kernels; beta_1 adds
    # the (bfloat16) momentum slot, so every code path is saved, reloaded and compiled.
    return ContractExample(
        make=lambda: Adafactor(beta_1=0.9, momentum_dtype="bfloat16", min_dim_size_to_factor=3),
        input_shape=(8, 8, 1),
    )


@export("tenfold.optimizers.Adafactor", example=_example)
class Adafactor(keras.optimizers.Optimizer):
    """Adafactor (Shazeer & Stern 2018) whose state really is sub-linear.

    A weight is seen as a matrix ``X`` of (input group) × (output group) — see
    ``factoring`` — and, when both sides have at least ``min_dim_size_to_factor``
    entries, the optimizer keeps only the row and column means ``R``, ``C`` of the
    squared gradient; at step ``t``::

        β̂₂ₜ = 1 − t^(−decay_rate)
        R ← β̂₂ₜ R + (1 − β̂₂ₜ) mean_col(G² + ε₁)
        C ← β̂₂ₜ C + (1 − β̂₂ₜ) mean_row(G² + ε₁)
        V̂ = R C / mean(R)                    (a temporary, never stored)
        U = G / √V̂ ;  Û = U / max(1, RMS(U) / clip_threshold)
        ρₜ = min(cap, 1/√t) ;  αₜ = max(ε₂, RMS(X)) · ρₜ
        X ← X − αₜ Û          (with beta_1: m ← β₁ m + (1 − β₁) αₜ Û ;  X ← X − m)

    Other weights (vectors, small matrices) keep a full second moment ``V``. Momentum is
    stored only when ``beta_1`` is set (and > 0). For an MLP 1024→4096→4096→10 the state is
    about 0.002× Adam's (see ``tenfold bench optimizers``). Statistics are float32 under
    mixed precision; works with ``LossScaleOptimizer``, ``gradient_accumulation_steps``,
    ``jit_compile=True`` and ``tf.distribute`` strategies.

    **Factoring.** ``factoring="by_layer"`` (the default) cuts a kernel's axes into an
    input group and an output group and factors the flattened matrix
    (:func:`tenfold.ops.factored_split`): Dense ``(in, out)``; MultiHeadAttention /
    EinsumDense query, key and value ``(in, heads, dim)`` → ``in × (heads·dim)``, output
    ``(heads, dim, out)`` → ``(heads·dim) × out``; ConvND ``(k₁, …, in, out)`` →
    ``(k₁⋯in) × out``. The cut is the one whose smaller side is largest, found from the
    shape alone (the optimizer sees variables, not layers). ``factoring="largest_axes"`` is
    the paper's (and optax's) rule: the two largest axes, every other axis kept in both
    ``R`` and ``C``; it keeps a full second moment for a ``(256, 8, 32)`` query kernel.

    **bfloat16 momentum.** With ``momentum_dtype="bfloat16"`` the momentum slot is stored
    in bfloat16 (2 bytes an entry): ``m`` is read and widened to float32, the new ``m`` is
    computed in float32 and applied to the weight as is, and only the stored copy is
    rounded to bfloat16, round-to-nearest-even (the cast of TensorFlow, JAX and PyTorch;
    as optax's ``dtype_momentum``).

    Args:
        learning_rate: None, a float > 0 or a ``LearningRateSchedule``. With
            ``relative_step=True`` a float (or None → 1e-2) is the cap of the relative
            step ``ρₜ = min(cap, 1/√t)``; with ``relative_step=False`` a float is the
            constant ``ρ``. A schedule gives ``ρₜ`` as is.
        relative_step: bool. Use the relative step size. Defaults to True.
        beta_1: None or float in [0, 1). Momentum on the update; None (or 0) keeps no
            momentum slot.
        decay_rate: float in (0, 1]. Exponent ``c`` of ``β̂₂ₜ = 1 − t^(−c)``. Defaults to 0.8.
        epsilon_1: float > 0. Added to ``G²``. Defaults to 1e-30.
        epsilon_2: float > 0. Floor of the parameter scale. Defaults to 1e-3.
        clip_threshold: float > 0 or None. Update clipping threshold ``d``. Defaults to 1.0.
        multiply_by_parameter_scale: bool. Scale the step by ``max(ε₂, RMS(X))``.
        factored: bool. Factor the second moment of large tensors. Defaults to True.
        min_dim_size_to_factor: int ≥ 1. Factor when the smaller side of the factored
            matrix has at least this many entries. Defaults to 128.
        momentum_dtype: ``"float32"`` (default) or ``"bfloat16"``: storage of the momentum.
        factoring: ``"by_layer"`` (default) or ``"largest_axes"`` (the paper's rule).
        **kwargs: standard Keras optimizer arguments (``weight_decay``, ``clipnorm``,
            ``gradient_accumulation_steps``, ``loss_scale_factor``, ``name``, ...).

    Example:
    >>> opt = tenfold.optimizers.Adafactor()
    >>> model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(512)])
    >>> opt.build(model.trainable_variables)
    >>> tenfold.optimizers.state_bytes(opt)  # 256 + 512 row/col means + 512 bias moments
    5132
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
        *,
        relative_step: bool = True,
        beta_1: float | None = None,
        decay_rate: float = 0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float | None = 1.0,
        multiply_by_parameter_scale: bool = True,
        factored: bool = True,
        min_dim_size_to_factor: int = 128,
        momentum_dtype: str = "float32",
        factoring: str = "by_layer",
        **kwargs: Any,
    ) -> None:
        relative_step = _validate.boolean("relative_step", relative_step)
        if learning_rate is None:
            if not relative_step:
                raise ValueError(
                    "learning_rate=None means the relative step min(1e-2, 1/sqrt(t)), which "
                    "needs relative_step=True; received relative_step=False. Pass a float "
                    "learning_rate or set relative_step=True."
                )
            base_lr: Any = _DEFAULT_CAP
        elif isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or callable(
            learning_rate
        ):
            base_lr = learning_rate
        else:
            try:
                base_lr = _validate.positive("learning_rate", learning_rate)
            except TypeError as error:
                raise TypeError(f"{error} None or a LearningRateSchedule is accepted too.") from None
        super().__init__(learning_rate=base_lr, **kwargs)
        self._learning_rate_is_default = learning_rate is None
        self.relative_step = relative_step
        self.beta_1 = _validate.number("beta_1", beta_1, low=0, high=1, high_open=True, allow_none=True)
        self.decay_rate = _validate.number("decay_rate", decay_rate, low=0, high=1, low_open=True)
        self.epsilon_1 = _validate.positive("epsilon_1", epsilon_1)
        self.epsilon_2 = _validate.positive("epsilon_2", epsilon_2)
        self.clip_threshold = _validate.positive("clip_threshold", clip_threshold, allow_none=True)
        self.multiply_by_parameter_scale = _validate.boolean(
            "multiply_by_parameter_scale", multiply_by_parameter_scale
        )
        self.factored = _validate.boolean("factored", factored)
        self.min_dim_size_to_factor = _validate.integer(
            "min_dim_size_to_factor", min_dim_size_to_factor, low=1
        )
        self.momentum_dtype = _validate.choice("momentum_dtype", momentum_dtype, MOMENTUM_DTYPES)
        self.factoring = _validate.choice("factoring", factoring, FACTORINGS)

    def _factoring_of(self, shape: tuple[int, ...]) -> tuple[str, Any] | None:
        """``("axes", (row, col))``, ``("grouped", (n, m))`` or None (full moment)."""
        if self.factoring == "largest_axes":
            dims = factored_dims(
                shape, factored=self.factored, min_dim_size_to_factor=self.min_dim_size_to_factor
            )
            return None if dims is None else ("axes", dims)
        cut = factored_split(
            shape, factored=self.factored, min_dim_size_to_factor=self.min_dim_size_to_factor
        )
        return None if cut is None else ("grouped", grouped_shape(shape, cut))

    def build(self, var_list: list[Any]) -> None:
        """Create the row/column statistics (factored), full moments (others), momentum."""
        if self.built:
            return
        super().build(var_list)
        self._dims: list[tuple[str, Any] | None] = []
        self._row: list[Any] = []
        self._col: list[Any] = []
        self._full: list[Any] = []
        self._momentum: list[Any] = []
        keeps_momentum = self.beta_1 is not None and self.beta_1 > 0
        for var in var_list:
            prefix = var.path.replace("/", "_") if hasattr(var, "path") else str(var.name)
            shape = tuple(int(d) for d in var.shape)
            if self._overwrite_variable_with_gradient(var):
                for slots in (self._dims, self._row, self._col, self._full, self._momentum):
                    slots.append(None)
                continue
            factoring = self._factoring_of(shape)
            self._dims.append(factoring)
            if factoring is None:
                self._row.append(None)
                self._col.append(None)
                self._full.append(self.add_variable(shape, dtype="float32", name=f"{prefix}_v"))
            else:
                kind, dims = factoring
                if kind == "axes":
                    d_row, d_col = dims
                    row_shape = tuple(d for i, d in enumerate(shape) if i != d_col)
                    col_shape = tuple(d for i, d in enumerate(shape) if i != d_row)
                else:
                    row_shape, col_shape = (dims[0],), (dims[1],)
                self._row.append(self.add_variable(row_shape, dtype="float32", name=f"{prefix}_row"))
                self._col.append(self.add_variable(col_shape, dtype="float32", name=f"{prefix}_col"))
                self._full.append(None)
            self._momentum.append(
                self.add_variable(shape, dtype=self.momentum_dtype, name=f"{prefix}_m")
                if keeps_momentum else None
            )

    def _step_size(self, learning_rate: Any, t: Any) -> Any:
        lr = f32(learning_rate)
        if callable(self._learning_rate) or not self.relative_step:
            return lr
        return ops.minimum(lr, ops.rsqrt(t))

    def _factored_preconditioned(
        self, g: Any, g2: Any, beta_2: Any, index: int, shape: tuple[int, ...]
    ) -> Any:
        kind, dims = self._dims[index]
        row, col = self._row[index], self._col[index]
        if kind == "grouped":
            g, g2, dims = ops.reshape(g, dims), ops.reshape(g2, dims), (0, 1)
        d_row, d_col = dims
        new_row = beta_2 * row + (1.0 - beta_2) * ops.mean(g2, axis=d_col)
        new_col = beta_2 * col + (1.0 - beta_2) * ops.mean(g2, axis=d_row)
        self.assign(row, new_row)
        self.assign(col, new_col)
        # 1/√V̂ as a product of row and column factors: V̂ itself underflows to 0 where
        # a gradient row and column are both zero (see factored_rsqrt)
        u = g * factored_rsqrt(new_row, new_col, dims)
        return ops.reshape(u, shape) if kind == "grouped" else u

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        index = self._get_variable_index(variable)
        t = f32(self.iterations + 1)
        g = f32(dense(gradient))
        x = f32(variable)
        g2 = ops.square(g) + self.epsilon_1
        beta_2 = 1.0 - ops.power(t, -self.decay_rate)
        if self._dims[index] is not None:
            u = self._factored_preconditioned(
                g, g2, beta_2, index, tuple(int(d) for d in variable.shape)
            )
        else:
            full = self._full[index]
            v_hat = beta_2 * full + (1.0 - beta_2) * g2
            self.assign(full, v_hat)
            u = g * ops.rsqrt(v_hat)
        if self.clip_threshold is not None:
            u = u / ops.maximum(1.0, rms(u) / self.clip_threshold)
        alpha = self._step_size(learning_rate, t)
        if self.multiply_by_parameter_scale:
            alpha = ops.maximum(self.epsilon_2, rms(x)) * alpha
        update = alpha * u
        m = self._momentum[index]
        if m is not None:
            # computed in float32; only the stored copy is rounded (to nearest even)
            update = self.beta_1 * f32(m) + (1.0 - self.beta_1) * update
            self.assign(m, ops.cast(update, m.dtype))
        self.assign_sub(variable, ops.cast(update, variable.dtype))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self._learning_rate_is_default:
            config["learning_rate"] = None
        config.update(
            relative_step=self.relative_step,
            beta_1=self.beta_1,
            decay_rate=self.decay_rate,
            epsilon_1=self.epsilon_1,
            epsilon_2=self.epsilon_2,
            clip_threshold=self.clip_threshold,
            multiply_by_parameter_scale=self.multiply_by_parameter_scale,
            factored=self.factored,
            min_dim_size_to_factor=self.min_dim_size_to_factor,
            momentum_dtype=self.momentum_dtype,
            factoring=self.factoring,
        )
        return config

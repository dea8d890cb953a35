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

from tenfold._api import export
from tenfold.ops.factored import factored_dims, factored_rsqrt, rms
from tenfold.optimizers._common import check_bool, check_number, dense, f32
from tenfold.testing import ContractExample

_DEFAULT_CAP = 1e-2


def _example() -> ContractExample:
    # min_dim_size_to_factor=3 factors the test model's conv and dense kernels; beta_1 adds
    # the momentum slot, so every code path is saved, reloaded and compiled.
    return ContractExample(
        make=lambda: Adafactor(beta_1=0.9, min_dim_size_to_factor=3), input_shape=(8, 8, 1)
    )


@export("tenfold.optimizers.Adafactor", example=_example)
class Adafactor(keras.optimizers.Optimizer):
    """Adafactor (Shazeer & Stern 2018) whose state really is sub-linear.

    For a weight ``X`` whose two largest axes both have at least
    ``min_dim_size_to_factor`` entries, the optimizer keeps only the row and column means
    ``R``, ``C`` of the squared gradient; at step ``t``::

        β̂₂ₜ = 1 − t^(−decay_rate)
        R ← β̂₂ₜ R + (1 − β̂₂ₜ) mean_col(G² + ε₁)
        C ← β̂₂ₜ C + (1 − β̂₂ₜ) mean_row(G² + ε₁)
        V̂ = R C / mean(R)                    (a temporary, never stored)
        U = G / √V̂ ;  Û = U / max(1, RMS(U) / clip_threshold)
        ρₜ = min(cap, 1/√t) ;  αₜ = max(ε₂, RMS(X)) · ρₜ
        X ← X − αₜ Û          (with beta_1: m ← β₁ m + (1 − β₁) αₜ Û ;  X ← X − m)

    Other weights (vectors, small matrices) keep a full second moment ``V``. Momentum is
    stored only when ``beta_1`` is set. For an MLP 1024→4096→4096→10 the state is about
    0.002× Adam's (see ``tenfold bench optimizers``). Statistics are float32 under mixed
    precision; works with ``LossScaleOptimizer``, ``gradient_accumulation_steps``,
    ``jit_compile=True`` and ``tf.distribute`` strategies.

    Args:
        learning_rate: None, a float or a ``LearningRateSchedule``. With
            ``relative_step=True`` a float (or None → 1e-2) is the cap of the relative
            step ``ρₜ = min(cap, 1/√t)``; with ``relative_step=False`` a float is the
            constant ``ρ``. A schedule gives ``ρₜ`` as is.
        relative_step: bool. Use the relative step size. Defaults to True.
        beta_1: None or float in (0, 1). Momentum on the update; None keeps no momentum.
        decay_rate: float > 0. Exponent ``c`` of ``β̂₂ₜ = 1 − t^(−c)``. Defaults to 0.8.
        epsilon_1: float ≥ 0. Added to ``G²``. Defaults to 1e-30.
        epsilon_2: float ≥ 0. Floor of the parameter scale. Defaults to 1e-3.
        clip_threshold: float > 0 or None. Update clipping threshold ``d``. Defaults to 1.0.
        multiply_by_parameter_scale: bool. Scale the step by ``max(ε₂, RMS(X))``.
        factored: bool. Factor the second moment of large tensors. Defaults to True.
        min_dim_size_to_factor: int ≥ 1. Factor when the second largest axis has at least
            this many entries. Defaults to 128.
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
        **kwargs: Any,
    ) -> None:
        relative_step = check_bool("relative_step", relative_step)
        if learning_rate is None:
            if not relative_step:
                raise ValueError(
                    "learning_rate=None means the relative step min(1e-2, 1/sqrt(t)), which "
                    "needs relative_step=True; received relative_step=False. Pass a float "
                    "learning_rate or set relative_step=True."
                )
            base_lr: Any = _DEFAULT_CAP
        elif isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
            base_lr = check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        elif isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or callable(
            learning_rate
        ):
            base_lr = learning_rate
        else:
            raise TypeError(
                "learning_rate must be None, a float > 0 or a LearningRateSchedule, "
                f"received {learning_rate!r}."
            )
        super().__init__(learning_rate=base_lr, **kwargs)
        self._learning_rate_is_default = learning_rate is None
        self.relative_step = relative_step
        self.beta_1 = check_number(
            "beta_1", beta_1, low=0.0, high=1.0, low_open=True, high_open=True, allow_none=True
        )
        self.decay_rate = check_number("decay_rate", decay_rate, low=0.0, low_open=True)
        self.epsilon_1 = check_number("epsilon_1", epsilon_1, low=0.0)
        self.epsilon_2 = check_number("epsilon_2", epsilon_2, low=0.0)
        self.clip_threshold = check_number(
            "clip_threshold", clip_threshold, low=0.0, low_open=True, allow_none=True
        )
        self.multiply_by_parameter_scale = check_bool(
            "multiply_by_parameter_scale", multiply_by_parameter_scale
        )
        self.factored = check_bool("factored", factored)
        if (
            isinstance(min_dim_size_to_factor, bool)
            or not isinstance(min_dim_size_to_factor, int)
            or min_dim_size_to_factor < 1
        ):
            raise ValueError(
                f"min_dim_size_to_factor must be an int >= 1, received {min_dim_size_to_factor!r}."
            )
        self.min_dim_size_to_factor = min_dim_size_to_factor

    def build(self, var_list: list[Any]) -> None:
        """Create the row/column statistics (factored), full moments (others), momentum."""
        if self.built:
            return
        super().build(var_list)
        self._dims: list[tuple[int, int] | None] = []
        self._row: list[Any] = []
        self._col: list[Any] = []
        self._full: list[Any] = []
        self._momentum: list[Any] = []
        for var in var_list:
            prefix = var.path.replace("/", "_") if hasattr(var, "path") else str(var.name)
            shape = tuple(int(d) for d in var.shape)
            if self._overwrite_variable_with_gradient(var):
                self._dims.append(None)
                self._row.append(None)
                self._col.append(None)
                self._full.append(None)
                self._momentum.append(None)
                continue
            dims = factored_dims(
                shape, factored=self.factored, min_dim_size_to_factor=self.min_dim_size_to_factor
            )
            self._dims.append(dims)
            if dims is not None:
                d_row, d_col = dims
                self._row.append(self.add_variable(
                    tuple(d for i, d in enumerate(shape) if i != d_col), dtype="float32",
                    name=f"{prefix}_row"))
                self._col.append(self.add_variable(
                    tuple(d for i, d in enumerate(shape) if i != d_row), dtype="float32",
                    name=f"{prefix}_col"))
                self._full.append(None)
            else:
                self._row.append(None)
                self._col.append(None)
                self._full.append(self.add_variable(shape, dtype="float32", name=f"{prefix}_v"))
            if self.beta_1 is not None:
                self._momentum.append(self.add_variable(shape, dtype="float32", name=f"{prefix}_m"))
            else:
                self._momentum.append(None)

    def _step_size(self, learning_rate: Any, t: Any) -> Any:
        lr = f32(learning_rate)
        if callable(self._learning_rate) or not self.relative_step:
            return lr
        return ops.minimum(lr, ops.rsqrt(t))

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        index = self._get_variable_index(variable)
        t = f32(self.iterations + 1)
        g = f32(dense(gradient))
        x = f32(variable)
        g2 = ops.square(g) + self.epsilon_1
        beta_2 = 1.0 - ops.power(t, -self.decay_rate)
        dims = self._dims[index]
        if dims is not None:
            d_row, d_col = dims
            row, col = self._row[index], self._col[index]
            new_row = beta_2 * row + (1.0 - beta_2) * ops.mean(g2, axis=d_col)
            new_col = beta_2 * col + (1.0 - beta_2) * ops.mean(g2, axis=d_row)
            self.assign(row, new_row)
            self.assign(col, new_col)
            # 1/√V̂ as a product of row and column factors: V̂ itself underflows to 0 where
            # a gradient row and column are both zero (see factored_rsqrt)
            u = g * factored_rsqrt(new_row, new_col, dims)
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
        if self.beta_1 is not None:
            m = self._momentum[index]
            update = self.beta_1 * m + (1.0 - self.beta_1) * update
            self.assign(m, update)
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
        )
        return config

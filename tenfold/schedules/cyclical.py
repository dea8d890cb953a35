"""Cyclical learning rates (Smith 2017) and TensorFlow Addons-compatible names.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", WACV,
    https://arxiv.org/abs/1506.01186 — section 3.1 and the reference code
    https://github.com/bckenstler/CLR (the ``exp_range`` policy).

The TensorFlow Addons version of this schedule (now end of life) stored a ``scale_fn``
lambda in its config, so a model compiled with it could not be loaded again; here the
policy is a string and the config holds only numbers and strings.
"""

from __future__ import annotations

from typing import Any

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.cyclical import (
    CYCLICAL_MODES,
    SCALE_MODES,
    cyclical_learning_rate,
    cyclical_position,
)
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: CyclicalLearningRate(1e-3, 1e-2, 2, mode="triangular2"))


@export("tenfold.schedules.CyclicalLearningRate", example=_example)
class CyclicalLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate that cycles between two bounds (Smith 2017, triangular policies).

    ``cycle = floor(1 + step / (2 * step_size))``, ``x = |step / step_size - 2 * cycle + 1|``
    and ``lr = initial + (maximal - initial) * max(0, 1 - x) * scale``, where ``scale`` is
    ``1`` for ``"triangular"``, ``1 / 2 ** (cycle - 1)`` for ``"triangular2"`` (the amplitude
    halves every cycle) and ``gamma ** step`` for ``"exp_range"``. The rate starts at
    ``initial_learning_rate``, reaches ``maximal_learning_rate`` after ``step_size`` steps and
    is back at the start after ``2 * step_size``. Smith suggests ``step_size`` of 2–10 epochs
    of iterations and bounds from an LR range test (:func:`tenfold.lr_find`).

    It is a pure function of the step, so a resumed run continues the cycle exactly; it
    accepts int32, int64 or float steps and traces under ``tf.function`` and XLA.

    Args:
        initial_learning_rate: float >= 0. Lower bound, the rate at step 0.
        maximal_learning_rate: float >= ``initial_learning_rate``. Upper bound.
        step_size: float > 0. Steps in half a cycle.
        mode: str. ``"triangular"`` (default), ``"triangular2"`` or ``"exp_range"``.
        gamma: float in (0, 1]. Decay base of ``"exp_range"``. Defaults to ``1.0``.
        scale_mode: ``None``, ``"cycle"`` or ``"iterations"``: whether ``scale`` is a
            function of the cycle number or of the step. ``None`` (default) takes the
            paper's choice: the cycle for the triangular modes, the step for ``exp_range``.
        name: str. Name of the schedule.

    Example:
    >>> schedule = tenfold.schedules.CyclicalLearningRate(1e-3, 1e-2, step_size=100)
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    >>> round(float(schedule(50)), 6)
    0.0055
    """

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        *,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_mode: str | None = None,
        name: str = "CyclicalLearningRate",
    ) -> None:
        super().__init__()
        self.initial_learning_rate = v.non_negative("initial_learning_rate", initial_learning_rate)
        self.maximal_learning_rate = v.number("maximal_learning_rate", maximal_learning_rate)
        v.ordered(
            "initial_learning_rate", self.initial_learning_rate,
            "maximal_learning_rate", self.maximal_learning_rate, strict=False,
        )
        self.step_size = v.positive("step_size", step_size)
        if self.step_size.is_integer() and not isinstance(step_size, float):
            self.step_size = int(self.step_size)
        self.mode = v.choice("mode", mode, CYCLICAL_MODES)
        self.gamma = v.number("gamma", gamma, low=0, high=1, low_open=True)
        self.scale_mode = v.choice("scale_mode", scale_mode, (None, *SCALE_MODES))
        v.string("name", name)
        self.name = name

    def __call__(self, step: Any) -> Any:
        return cyclical_learning_rate(
            step,
            self.initial_learning_rate,
            self.maximal_learning_rate,
            self.step_size,
            mode=self.mode,
            gamma=self.gamma,
            scale_mode=self.scale_mode,
        )

    def cycle_fraction(self, step: Any) -> Any:
        """Where the rate is between its bounds at ``step``: 0 at the lower, 1 at the upper.

        ``(lr - initial) / (maximal - initial)``; :class:`tenfold.callbacks.CycleMomentum`
        uses it to move momentum the opposite way.
        """
        span = self.maximal_learning_rate - self.initial_learning_rate
        if span == 0:
            return keras.ops.zeros((), "float32")
        return (self(step) - self.initial_learning_rate) / span

    def cycle(self, step: Any) -> Any:
        """The (1-based) cycle number at ``step``."""
        return cyclical_position(step, self.step_size)[0]

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
            "scale_mode": self.scale_mode,
            "name": self.name,
        }


class _AddonsCompatible(CyclicalLearningRate):
    """Base of the TensorFlow Addons names: a fixed mode, Addons' argument names."""

    _mode = "triangular"
    _default_scale_mode = "cycle"

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["mode"]
        if self._mode != "exp_range":
            del config["gamma"]
        return config


def _triangular_example() -> ContractExample:
    return ContractExample(make=lambda: TriangularCyclicalLearningRate(1e-3, 1e-2, 3))


@export("tenfold.schedules.TriangularCyclicalLearningRate", example=_triangular_example)
class TriangularCyclicalLearningRate(_AddonsCompatible):
    """``tfa.optimizers.TriangularCyclicalLearningRate``, with a config that saves.

    Same arguments and values as TensorFlow Addons' class: replace
    ``from tensorflow_addons.optimizers import TriangularCyclicalLearningRate`` by
    ``from tenfold.schedules import TriangularCyclicalLearningRate``. Equal to
    ``CyclicalLearningRate(..., mode="triangular")``.

    Args:
        initial_learning_rate: float >= 0. Lower bound.
        maximal_learning_rate: float >= ``initial_learning_rate``. Upper bound.
        step_size: float > 0. Steps in half a cycle.
        scale_mode: ``"cycle"`` (default) or ``"iterations"`` (no effect: the scale is 1).
        name: str.

    Example:
    >>> schedule = TriangularCyclicalLearningRate(1e-4, 1e-2, step_size=2000)
    >>> round(float(schedule(2000)), 6)
    0.01
    """

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "cycle",
        name: str = "TriangularCyclicalLearningRate",
    ) -> None:
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size,
            mode="triangular", scale_mode=scale_mode, name=name,
        )


def _triangular2_example() -> ContractExample:
    return ContractExample(make=lambda: Triangular2CyclicalLearningRate(1e-3, 1e-2, 2))


@export("tenfold.schedules.Triangular2CyclicalLearningRate", example=_triangular2_example)
class Triangular2CyclicalLearningRate(_AddonsCompatible):
    """``tfa.optimizers.Triangular2CyclicalLearningRate``, with a config that saves.

    The amplitude halves every cycle: ``scale = 1 / 2 ** (cycle - 1)``. Equal to
    ``CyclicalLearningRate(..., mode="triangular2")``; returns a float32 scalar for any step
    dtype, so TensorBoard's learning-rate logging works.

    Args:
        initial_learning_rate: float >= 0. Lower bound.
        maximal_learning_rate: float >= ``initial_learning_rate``. Upper bound of cycle 1.
        step_size: float > 0. Steps in half a cycle.
        scale_mode: ``"cycle"`` (default) or ``"iterations"``.
        name: str.

    Example:
    >>> schedule = Triangular2CyclicalLearningRate(0.0, 1.0, step_size=10)
    >>> float(schedule(10)), float(schedule(30))
    (1.0, 0.5)
    """

    _mode = "triangular2"

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "cycle",
        name: str = "Triangular2CyclicalLearningRate",
    ) -> None:
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size,
            mode="triangular2", scale_mode=scale_mode, name=name,
        )


def _exponential_example() -> ContractExample:
    return ContractExample(make=lambda: ExponentialCyclicalLearningRate(1e-3, 1e-2, 2, gamma=0.9))


@export("tenfold.schedules.ExponentialCyclicalLearningRate", example=_exponential_example)
class ExponentialCyclicalLearningRate(_AddonsCompatible):
    """``tfa.optimizers.ExponentialCyclicalLearningRate``, with a config that saves.

    ``scale = gamma ** step`` (``scale_mode="iterations"``, Addons' default). Equal to
    ``CyclicalLearningRate(..., mode="exp_range", gamma=gamma)``.

    Args:
        initial_learning_rate: float >= 0. Lower bound.
        maximal_learning_rate: float >= ``initial_learning_rate``. Upper bound at step 0.
        step_size: float > 0. Steps in half a cycle.
        scale_mode: ``"iterations"`` (default) or ``"cycle"``.
        gamma: float in (0, 1]. Decay base. Defaults to ``1.0``.
        name: str.

    Example:
    >>> schedule = ExponentialCyclicalLearningRate(0.0, 1.0, step_size=10, gamma=0.5)
    >>> round(float(schedule(1)), 6)
    0.05
    """

    _mode = "exp_range"

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "iterations",
        gamma: float = 1.0,
        name: str = "ExponentialCyclicalLearningRate",
    ) -> None:
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size,
            mode="exp_range", gamma=gamma, scale_mode=scale_mode, name=name,
        )

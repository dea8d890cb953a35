"""Cycle SGD momentum or Adam's beta_1 inversely to a cyclical learning rate.

References:
    Smith 2018, "A disciplined approach to neural network hyper-parameters: Part 1 —
    learning rate, batch size, momentum, and weight decay", https://arxiv.org/abs/1803.09820,
    section 4.3: "cyclical momentum", decreasing momentum while the learning rate rises
    (0.95 → 0.85) and back. PyTorch's ``CyclicLR``/``OneCycleLR`` do it with
    ``cycle_momentum=True``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export


def innermost_optimizer(optimizer: Any) -> Any:
    """The optimizer that holds the hyper-parameters, under any wrappers (loss scaling, AGC)."""
    seen = 0
    while hasattr(optimizer, "inner_optimizer") and seen < 10:
        optimizer = optimizer.inner_optimizer
        seen += 1
    return optimizer


class ScheduledHyperparameter(float):
    """A float hyper-parameter whose value inside the train step is a function of the step.

    It is a ``float`` (its static value, used by Python-side checks such as
    ``momentum != 0`` and by ``get_config``, so a model saved mid-training stays loadable),
    and converts to a tensor computed from ``optimizer.iterations`` each time the optimizer
    reads it in its (traced, XLA-compilable) update step.
    """

    def __new__(cls, static: float, fn: Any) -> ScheduledHyperparameter:
        obj = float.__new__(cls, static)
        obj._fn = fn
        return obj

    def value(self) -> Any:
        return self._fn()

    def __tf_tensor__(self, dtype: Any = None, name: Any = None) -> Any:
        value = self.value()
        return ops.cast(value, dtype.name) if dtype is not None else value

    def __add__(self, other: Any) -> Any:
        return ops.add(self.value(), other)

    def __radd__(self, other: Any) -> Any:
        return ops.add(other, self.value())

    def __sub__(self, other: Any) -> Any:
        return ops.subtract(self.value(), other)

    def __rsub__(self, other: Any) -> Any:
        return ops.subtract(other, self.value())

    def __mul__(self, other: Any) -> Any:
        return ops.multiply(self.value(), other)

    def __rmul__(self, other: Any) -> Any:
        return ops.multiply(other, self.value())

    def __truediv__(self, other: Any) -> Any:
        return ops.divide(self.value(), other)

    def __rtruediv__(self, other: Any) -> Any:
        return ops.divide(other, self.value())

    def __pow__(self, other: Any) -> Any:  # type: ignore[override]
        return ops.power(self.value(), other)

    def __rpow__(self, other: Any) -> Any:  # type: ignore[override]
        return ops.power(other, self.value())

    def __neg__(self) -> Any:
        return ops.negative(self.value())

    def __reduce__(self) -> Any:  # pickles / deep-copies as its static float
        return (float, (float(self),))


@export("tenfold.callbacks.CycleMomentum")
class CycleMomentum(keras.callbacks.Callback):
    """Move momentum opposite to a cyclical learning rate (Smith 2018, cyclical momentum).

    While the learning rate climbs from its lower bound to its peak, momentum falls from
    ``max_momentum`` to ``base_momentum``, and climbs back as the rate falls:
    ``momentum = max_momentum - f * (max_momentum - base_momentum)`` with ``f`` the
    schedule's ``cycle_fraction(step)`` (0 at the low rate, 1 at the peak). It works with
    :class:`tenfold.schedules.CyclicalLearningRate` (and its TensorFlow Addons names) and
    :class:`tenfold.schedules.OneCycle`. The hyper-parameter is SGD's ``momentum`` (the
    optimizer needs ``momentum > 0``) or, for Adam-like optimizers, ``beta_1``.

    The momentum is computed inside the train step from ``optimizer.iterations``, so it is a
    pure function of the step like the learning rate (a resumed run continues exactly) and
    compiles under XLA. After training the optimizer gets its original float back. Needs
    the TensorFlow backend.

    Args:
        base_momentum: float in [0, 1). Momentum at the learning-rate peak. Defaults to 0.85.
        max_momentum: float in [base_momentum, 1). Momentum at the low rate. Defaults to 0.95.

    Example:
    >>> x, y = np.random.rand(64, 4).astype("float32"), np.random.rand(64, 1).astype("float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> schedule = tenfold.schedules.OneCycle(0.1, total_steps=8)
    >>> model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse")
    >>> _ = model.fit(x, y, batch_size=8, verbose=0, callbacks=[tenfold.callbacks.CycleMomentum()])
    >>> float(model.optimizer.momentum)  # the original value is back after fit
    0.9
    """

    def __init__(self, base_momentum: float = 0.85, max_momentum: float = 0.95) -> None:
        super().__init__()
        self.base_momentum = v.fraction("base_momentum", base_momentum, open_high=True)
        self.max_momentum = v.fraction("max_momentum", max_momentum, open_high=True)
        v.ordered("base_momentum", self.base_momentum, "max_momentum", self.max_momentum, strict=False)
        self._target: tuple[Any, str, Any] | None = None

    @staticmethod
    def attribute(optimizer: Any) -> str:
        """The name of the optimizer's momentum hyper-parameter (``momentum`` or ``beta_1``)."""
        if hasattr(optimizer, "beta_1"):
            return "beta_1"
        if hasattr(optimizer, "momentum"):
            if not float(optimizer.momentum) > 0:
                raise ValueError(
                    f"CycleMomentum needs {type(optimizer).__name__} created with momentum > 0 "
                    f"(it has no momentum slots otherwise), received momentum="
                    f"{optimizer.momentum!r}."
                )
            return "momentum"
        raise ValueError(
            f"CycleMomentum cycles SGD's momentum or an Adam-like beta_1; "
            f"{type(optimizer).__name__} has neither."
        )

    def momentum(self, schedule: Any, step: Any) -> Any:
        """The momentum at ``step`` for ``schedule``."""
        fraction = ops.cast(schedule.cycle_fraction(step), "float32")
        return self.max_momentum - fraction * (self.max_momentum - self.base_momentum)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "CycleMomentum needs the TensorFlow backend (KERAS_BACKEND=tensorflow), "
                f"running on {keras.backend.backend()!r}."
            )
        optimizer = innermost_optimizer(self.model.optimizer)
        schedule = optimizer._learning_rate
        if not hasattr(schedule, "cycle_fraction"):
            raise ValueError(
                "CycleMomentum needs the optimizer's learning rate to be a tenfold cyclical "
                "schedule (CyclicalLearningRate, its TFA names, or OneCycle), received "
                f"{type(schedule).__name__}."
            )
        name = self.attribute(optimizer)
        original = getattr(optimizer, name)
        iterations = optimizer.iterations
        scheduled = ScheduledHyperparameter(
            self.max_momentum, lambda: self.momentum(schedule, iterations)
        )
        setattr(optimizer, name, scheduled)
        self._target = (optimizer, name, original)
        self.model.make_train_function(force=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._target is not None:
            optimizer, name, original = self._target
            setattr(optimizer, name, original)
            self._target = None
            self.model.make_train_function(force=True)

"""The 1cycle learning-rate policy (Smith & Topin).

References:
    Smith & Topin 2019, "Super-Convergence: Very Fast Training of Neural Networks Using
    Large Learning Rates", https://arxiv.org/abs/1708.07120; Smith 2018, "A disciplined
    approach to neural network hyper-parameters: Part 1", https://arxiv.org/abs/1803.09820.
    The defaults (30 % warm-up, start at max/25, end at start/1e4, cosine) are the ones
    PyTorch's ``OneCycleLR`` and fastai made common.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.cyclical import ANNEAL_STRATEGIES, one_cycle_learning_rate, one_cycle_phase
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: OneCycle(1e-2, 4))


@export("tenfold.schedules.OneCycle", example=_example)
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One cycle: warm up to the maximal rate, then anneal far below the start.

    The rate rises from ``maximal_learning_rate / div_factor`` to ``maximal_learning_rate``
    over the first ``warmup_fraction * total_steps`` steps, then falls to
    ``maximal_learning_rate / (div_factor * final_div_factor)`` at step ``total_steps - 1``
    and stays there. Each phase follows a half cosine (``anneal="cos"``) or a line
    (``"linear"``). Pair it with :class:`tenfold.callbacks.CycleMomentum` to move momentum
    the opposite way, as in the paper.

    Args:
        maximal_learning_rate: float > 0. Peak rate (from :func:`tenfold.lr_find`).
        total_steps: int > 1. Length of the cycle in optimizer steps (usually the whole run).
        warmup_fraction: float in (0, 1). Share of the steps spent warming up. Defaults to 0.3.
        div_factor: float >= 1. Start rate is ``maximal / div_factor``. Defaults to 25.
        final_div_factor: float >= 1. Final rate is ``start / final_div_factor``.
            Defaults to 1e4.
        anneal: str. ``"cos"`` (default) or ``"linear"``.
        name: str.

    Example:
    >>> schedule = tenfold.schedules.OneCycle(0.1, total_steps=1000)
    >>> round(float(schedule(0)), 6), round(float(schedule(299)), 6)
    (0.004, 0.1)
    """

    def __init__(
        self,
        maximal_learning_rate: float,
        total_steps: int,
        *,
        warmup_fraction: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cos",
        name: str = "OneCycle",
    ) -> None:
        super().__init__()
        self.maximal_learning_rate = v.positive("maximal_learning_rate", maximal_learning_rate)
        self.total_steps = v.integer("total_steps", total_steps, low=2)
        self.warmup_fraction = v.fraction("warmup_fraction", warmup_fraction, open_low=True, open_high=True)
        self.div_factor = v.number("div_factor", div_factor, low=1)
        self.final_div_factor = v.number("final_div_factor", final_div_factor, low=1)
        self.anneal = v.choice("anneal", anneal, ANNEAL_STRATEGIES)
        v.string("name", name)
        self.name = name

    @property
    def initial_learning_rate(self) -> float:
        """The rate at step 0."""
        return self.maximal_learning_rate / self.div_factor

    @property
    def final_learning_rate(self) -> float:
        """The rate from step ``total_steps - 1`` on."""
        return self.initial_learning_rate / self.final_div_factor

    def __call__(self, step: Any) -> Any:
        return one_cycle_learning_rate(
            step,
            self.maximal_learning_rate,
            self.total_steps,
            warmup_fraction=self.warmup_fraction,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            anneal=self.anneal,
        )

    def cycle_fraction(self, step: Any) -> Any:
        """Where the rate is between the current phase's bounds: 0 at the low end, 1 at the peak.

        :class:`tenfold.callbacks.CycleMomentum` uses it so momentum goes from its maximum
        to its base during the warm-up and back during the anneal (as PyTorch's OneCycleLR).
        """
        phase, _, _ = one_cycle_phase(step, self.total_steps, self.warmup_fraction)
        lr = self(step)
        high = self.maximal_learning_rate
        warm = (lr - self.initial_learning_rate) / max(high - self.initial_learning_rate, 1e-30)
        cool = (lr - self.final_learning_rate) / max(high - self.final_learning_rate, 1e-30)
        return ops.clip(ops.where(phase > 0.5, cool, warm), 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "maximal_learning_rate": self.maximal_learning_rate,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal": self.anneal,
            "name": self.name,
        }

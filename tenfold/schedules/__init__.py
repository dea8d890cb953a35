"""Learning-rate schedules: cyclical (Smith 2017), their TensorFlow Addons names, and 1cycle."""

from tenfold.schedules.cyclical import (
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)
from tenfold.schedules.one_cycle import OneCycle

__all__ = [
    "CyclicalLearningRate",
    "ExponentialCyclicalLearningRate",
    "OneCycle",
    "Triangular2CyclicalLearningRate",
    "TriangularCyclicalLearningRate",
]

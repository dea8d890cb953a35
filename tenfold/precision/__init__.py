"""Mixed precision and XLA: choose, set and report; a loss-scaled custom-loop step."""

from tenfold.precision.configure import (
    POLICIES,
    PrecisionReport,
    choose_policy,
    configure,
    detect_device,
    float32_layers,
)
from tenfold.precision.loop import train_step

__all__ = [
    "POLICIES",
    "PrecisionReport",
    "choose_policy",
    "configure",
    "detect_device",
    "float32_layers",
    "train_step",
]

"""Mixed precision and XLA: measure, choose, set and report; float32 outputs for any model;
a loss-scaled custom-loop step."""

from tenfold.precision import probe
from tenfold.precision.configure import (
    POLICIES,
    Device,
    PrecisionReport,
    candidates,
    choose_policy,
    configure,
    detect_device,
    float32_layers,
    resolve_jit_compile,
)
from tenfold.precision.kernels import KernelCheck, conv_gradients
from tenfold.precision.loop import train_step
from tenfold.precision.outputs import float32_outputs, output_layers
from tenfold.precision.probe import Candidate

__all__ = [
    "POLICIES",
    "Candidate",
    "Device",
    "KernelCheck",
    "PrecisionReport",
    "candidates",
    "choose_policy",
    "configure",
    "conv_gradients",
    "detect_device",
    "float32_layers",
    "float32_outputs",
    "output_layers",
    "probe",
    "resolve_jit_compile",
    "train_step",
]

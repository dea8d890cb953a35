"""Models built from string switches: a small ResNet and an MLP baseline."""

from tenfold.models.blocks import ResidualBlock, make_conv, make_norm
from tenfold.models.nf import (
    ACTIVATION_GAMMAS,
    NFResidualBlock,
    ScaledActivation,
    activation_gamma,
    estimate_gamma,
    expected_stds,
    nf_resnet,
)
from tenfold.models.resnet import mlp, small_resnet

__all__ = ["ResidualBlock", "make_conv", "make_norm", "mlp", "small_resnet"]
__all__ += [
    "ACTIVATION_GAMMAS",
    "NFResidualBlock",
    "ScaledActivation",
    "activation_gamma",
    "estimate_gamma",
    "expected_stds",
    "nf_resnet",
]

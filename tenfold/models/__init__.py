"""Models built from string switches: a small ResNet, its normalizer-free variant, an MLP.

``small_resnet`` and ``nf_resnet`` take the ``conv`` / ``norm`` switches of
:mod:`tenfold.registry`; ``ResidualBlock``, ``NFResidualBlock`` and ``ScaledActivation``
are their Keras layers, ``activation_gamma`` / ``expected_stds`` the NF-ResNet constants.
"""

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

__all__ = [
    "ACTIVATION_GAMMAS",
    "NFResidualBlock",
    "ResidualBlock",
    "ScaledActivation",
    "activation_gamma",
    "estimate_gamma",
    "expected_stds",
    "make_conv",
    "make_norm",
    "mlp",
    "nf_resnet",
    "small_resnet",
]

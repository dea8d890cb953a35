"""Models built from string switches: a small ResNet and an MLP baseline."""

from tenfold.models.blocks import ResidualBlock, make_conv, make_norm
from tenfold.models.resnet import mlp, small_resnet

__all__ = ["ResidualBlock", "make_conv", "make_norm", "mlp", "small_resnet"]

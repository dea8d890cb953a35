"""tenfold.layers: the techniques' Keras layers.

Weight-standardized convolutions and dense layer (``WSConv1D``, ``WSConv2D``, ``WSDense``,
NFNets), Extended Batch Normalization and batch normalization on TensorFlow's fused kernel
(``ExtendedBatchNormalization``, ``FusedBatchNormalization``), the re-parameterizable
ACNet and RepVGG blocks (``ACBlock``, ``RepVGGBlock``, fused by ``tenfold.reparam.deploy``)
and the cosine classifier ``NormedDense``. Importing the package also registers the
``conv`` (ws, acnet, repvgg) and ``norm`` (ebn, none, gn) model switches.
"""

from tenfold.layers import _switches  # noqa: F401  (registers the conv/norm switches)
from tenfold.layers.acblock import ACBlock
from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization
from tenfold.layers.fused_batch_norm import FusedBatchNormalization
from tenfold.layers.normed_dense import NormedDense
from tenfold.layers.repvgg_block import RepVGGBlock
from tenfold.layers.ws_conv import WSConv1D, WSConv2D, WSDense

__all__ = [
    "ACBlock",
    "ExtendedBatchNormalization",
    "FusedBatchNormalization",
    "NormedDense",
    "RepVGGBlock",
    "WSConv1D",
    "WSConv2D",
    "WSDense",
]

"""tenfold.layers — filled in by its technique's issue."""

__all__: list[str] = []

from tenfold.layers.normed_dense import NormedDense  # noqa: E402

__all__ += ["NormedDense"]

from tenfold.layers.ws_conv import WSConv1D, WSConv2D, WSDense  # noqa: E402

__all__ += ["WSConv1D", "WSConv2D", "WSDense"]

from tenfold.layers.extended_batch_norm import ExtendedBatchNormalization  # noqa: E402

__all__ += ["ExtendedBatchNormalization"]

from tenfold.layers.fused_batch_norm import FusedBatchNormalization  # noqa: E402

__all__ += ["FusedBatchNormalization"]

from tenfold.layers.acblock import ACBlock  # noqa: E402
from tenfold.layers.repvgg_block import RepVGGBlock  # noqa: E402

__all__ += ["ACBlock", "RepVGGBlock"]

from tenfold.layers import _switches  # noqa: E402,F401  (registers the conv/norm switches)

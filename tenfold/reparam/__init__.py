"""tenfold.reparam — structural re-parameterization: fuse training branches for inference."""

from tenfold.reparam.deploy import deploy, max_difference, parameter_count
from tenfold.reparam.fusion import effective_weights, fused_counterpart

__all__ = ["deploy", "effective_weights", "fused_counterpart", "max_difference", "parameter_count"]

"""tenfold.reparam — structural re-parameterization: deploy (fold for inference) and convert."""

from tenfold.layers._fused import fused_counterpart
from tenfold.reparam.convert import convert
from tenfold.reparam.deploy import (
    check,
    count_norms,
    deploy,
    float32_copy,
    max_difference,
    parameter_count,
)
from tenfold.reparam.fusion import effective_weights

__all__ = [
    "check",
    "convert",
    "count_norms",
    "deploy",
    "effective_weights",
    "float32_copy",
    "fused_counterpart",
    "max_difference",
    "parameter_count",
]

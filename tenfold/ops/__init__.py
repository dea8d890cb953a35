"""tenfold.ops: the techniques' math as pure functions in ``keras.ops``.

Small functions that read like the papers' equations, shared by the components and checked
against float64 references in the tests: unit-wise norms and adaptive clipping (AGC),
factored second moments (Adafactor, SM3), kernel standardization (NFNets), branch and
batch-norm fusion (ACNet, RepVGG), cyclical learning-rate curves, and the long-tail
priors, weights, margins and logit adjustment. Nothing here holds state or imports the rest
of tenfold (arguments are checked through the stdlib-only ``tenfold._validate``).
"""

from tenfold.ops.clipping import adaptive_clip, unitwise_norm
from tenfold.ops.cyclical import (
    cyclical_learning_rate,
    cyclical_position,
    one_cycle_learning_rate,
)
from tenfold.ops.factored import (
    factored_dims,
    factored_rsqrt,
    factored_second_moment,
    rms,
    sm3_cover_max,
    sm3_cover_min,
)
from tenfold.ops.fusion import fold_batch_norm, identity_kernel, pad_kernel
from tenfold.ops.long_tail import (
    class_balanced_weights,
    class_prior,
    ldam_margins,
    log_prior,
    logit_adjust,
    progressive_weights,
    sampling_weights,
    tau_norm_kernel,
    validate_class_counts,
)
from tenfold.ops.standardize import standardize_kernel

__all__ = [
    "adaptive_clip",
    "class_balanced_weights",
    "class_prior",
    "cyclical_learning_rate",
    "cyclical_position",
    "factored_dims",
    "factored_rsqrt",
    "factored_second_moment",
    "fold_batch_norm",
    "identity_kernel",
    "ldam_margins",
    "log_prior",
    "logit_adjust",
    "one_cycle_learning_rate",
    "pad_kernel",
    "progressive_weights",
    "rms",
    "sampling_weights",
    "sm3_cover_max",
    "sm3_cover_min",
    "standardize_kernel",
    "tau_norm_kernel",
    "unitwise_norm",
    "validate_class_counts",
]

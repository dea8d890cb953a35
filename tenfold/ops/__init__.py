"""tenfold.ops — filled in by its technique's issue."""

__all__: list[str] = []

from tenfold.ops.clipping import adaptive_clip, unitwise_norm  # noqa: E402
from tenfold.ops.cyclical import (  # noqa: E402
    cyclical_learning_rate,
    cyclical_position,
    one_cycle_learning_rate,
)
from tenfold.ops.factored import (  # noqa: E402
    factored_dims,
    factored_rsqrt,
    factored_second_moment,
    rms,
    sm3_cover_max,
    sm3_cover_min,
)

__all__ += [
    "adaptive_clip",
    "cyclical_learning_rate",
    "cyclical_position",
    "one_cycle_learning_rate",
    "factored_dims",
    "factored_rsqrt",
    "factored_second_moment",
    "rms",
    "sm3_cover_max",
    "sm3_cover_min",
    "unitwise_norm",
]

from tenfold.ops.long_tail import (  # noqa: E402
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

__all__ += [
    "class_balanced_weights",
    "class_prior",
    "ldam_margins",
    "log_prior",
    "logit_adjust",
    "progressive_weights",
    "sampling_weights",
    "tau_norm_kernel",
    "validate_class_counts",
]

from tenfold.ops.fusion import fold_batch_norm, identity_kernel, pad_kernel  # noqa: E402
from tenfold.ops.standardize import standardize_kernel  # noqa: E402

__all__ += ["fold_batch_norm", "identity_kernel", "pad_kernel", "standardize_kernel"]

"""Data: loaders, splits, the long-tailed profile (and tf.data tools as they arrive)."""

from tenfold.data.loaders import Splits, describe, load, split
from tenfold.data.long_tail import long_tail_counts, long_tailed

__all__ = ["Splits", "describe", "load", "long_tail_counts", "long_tailed", "split"]

from tenfold.data.resample import resample, target_distribution  # noqa: E402

__all__ += ["resample", "target_distribution"]

from tenfold.data.echo import Echo, FreshExampleCounter, echo  # noqa: E402

__all__ += ["Echo", "FreshExampleCounter", "echo"]

"""Data: loaders and splits, the long-tailed profile, re-sampling and data echoing.

``load`` / ``split`` give stratified NumPy splits (bundled digits, ``.npz``, image folders,
TFDS names); ``long_tailed`` cuts a training split to an exponential class profile;
``resample`` and ``echo`` are ``tf.data`` transformations (TensorFlow only).
"""

from tenfold.data.echo import Echo, FreshExampleCounter, echo
from tenfold.data.loaders import Splits, describe, load, split
from tenfold.data.long_tail import long_tail_counts, long_tailed
from tenfold.data.resample import resample, target_distribution

__all__ = [
    "Echo",
    "FreshExampleCounter",
    "Splits",
    "describe",
    "echo",
    "load",
    "long_tail_counts",
    "long_tailed",
    "resample",
    "split",
    "target_distribution",
]

"""Data: loaders and splits, the long-tailed profile, re-sampling and data echoing.

``load`` / ``split`` give stratified NumPy splits (bundled digits, ``.npz``, image folders,
TFDS names); ``long_tailed`` cuts a training split to an exponential class profile;
``resample`` and ``echo`` are ``tf.data`` transformations (TensorFlow only).
``stream_splits`` lists an image folder into stratified file splits (``splits.json``) and
``image_pipeline`` streams them as ``tf.data`` batches, never loading the data set whole.
"""

from tenfold.data.echo import Echo, FreshExampleCounter, echo
from tenfold.data.files import FileSplits, folder_splits, read_splits, stream_splits, write_splits
from tenfold.data.loaders import Splits, describe, load, split
from tenfold.data.long_tail import long_tail_counts, long_tailed
from tenfold.data.resample import resample, target_distribution
from tenfold.data.stream import ImagePipeline, image_pipeline

__all__ = [
    "Echo",
    "FileSplits",
    "FreshExampleCounter",
    "ImagePipeline",
    "Splits",
    "describe",
    "echo",
    "folder_splits",
    "image_pipeline",
    "load",
    "long_tail_counts",
    "long_tailed",
    "read_splits",
    "resample",
    "split",
    "stream_splits",
    "target_distribution",
    "write_splits",
]

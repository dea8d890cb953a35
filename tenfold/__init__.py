"""tenfold: ten training techniques for Keras 3, real, composable and measured.

Importing ``tenfold`` imports every library sub-package, and so runs every ``@export``:
each public component is then registered for ``.keras`` serialization under the package
name ``"tenfold"`` and filed in :mod:`tenfold.registry`. Only ``keras`` is imported here;
TensorFlow-only parts import TensorFlow when used.
"""

from tenfold import (
    callbacks,
    data,
    layers,
    longtail,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    precision,
    registry,
    remat,
    reparam,
    schedules,
)
from tenfold.lr_finder import lr_find
from tenfold.reparam.convert import convert

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "callbacks",
    "convert",
    "data",
    "layers",
    "longtail",
    "lr_find",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "precision",
    "registry",
    "remat",
    "reparam",
    "schedules",
]

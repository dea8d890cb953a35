"""tenfold: ten training techniques for Keras 3, real, composable and measured.

Importing ``tenfold`` registers every public component for ``.keras`` serialization under
the package name ``"tenfold"``. Only ``keras`` is imported here; TensorFlow-only parts
import TensorFlow when used.
"""

__version__ = "0.1.0"

from tenfold import (  # noqa: E402
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
    registry,  # noqa: E402  (registry first: everything registers into it)
    remat,
    reparam,
    schedules,
)
from tenfold.lr_finder import lr_find  # noqa: E402

__all__ = [
    "__version__",
    "callbacks",
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

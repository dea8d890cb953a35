"""Lazy access to TensorFlow for the parts of tenfold that are TensorFlow's own.

The backend-neutral components import only ``keras``; ``tf.data`` tools, the Grappler
rewrite and SavedModel export call :func:`tensorflow` at use time, which raises an error
naming the extra to install when TensorFlow is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def tensorflow(feature: str = "this feature") -> ModuleType:
    """Import and return ``tensorflow``, or raise an ImportError that says how to get it.

    Example:
    >>> tf = tensorflow("tf.data echoing")
    >>> tf.__name__
    'tensorflow'
    """
    try:
        return importlib.import_module("tensorflow")
    except ImportError as err:  # pragma: no cover - exercised with a monkeypatched import
        raise ImportError(
            f"{feature} needs TensorFlow. Install it with `pip install tenfold[cpu]` "
            "(tensorflow-cpu) or `pip install tenfold[gpu]` (tensorflow[and-cuda])."
        ) from err

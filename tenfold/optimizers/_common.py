"""Small helpers shared by the tenfold optimizers (not public)."""

from __future__ import annotations

from typing import Any

from keras import ops


def is_indexed_slices(value: Any) -> bool:
    """True for a TensorFlow ``IndexedSlices`` (a sparse gradient from an Embedding)."""
    return type(value).__name__ == "IndexedSlices" and hasattr(value, "indices")


def dense(value: Any) -> Any:
    """``value`` as a dense tensor (IndexedSlices are scattered into zeros)."""
    if is_indexed_slices(value):
        from tenfold._tf import tensorflow

        return tensorflow("sparse gradients").convert_to_tensor(value)
    return value


def f32(x: Any) -> Any:
    return ops.cast(x, "float32")

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


def check_number(
    name: str, value: Any, *, low: float | None = None, high: float | None = None,
    low_open: bool = False, high_open: bool = False, allow_none: bool = False,
) -> float | None:
    """Validate a scalar hyper-parameter and return it as a float (or None)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        if low is not None and (v < low or (low_open and v == low)):
            ok = False
        if high is not None and (v > high or (high_open and v == high)):
            ok = False
    if not ok:
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
        accepted = " and ".join(x for x in (lo, hi) if x) or "a number"
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a number {accepted}{none}, received {value!r}.")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, received {value!r}.")
    return value


def f32(x: Any) -> Any:
    return ops.cast(x, "float32")

"""Argument checks for every public constructor: one dialect of errors.

Each check returns the value in its canonical Python type (so configs hold JSON types) or
raises an error that names the argument, the value received and what is accepted:

- ``TypeError`` when the value has the wrong type (a string where a number is expected);
- ``ValueError`` when the type is right but the value is not accepted (NaN, out of range,
  an unknown choice, an empty list).

NumPy scalars count as numbers (``np.float32(0.1)`` is accepted and returned as a Python
float); booleans never count as numbers. Infinity and NaN are refused everywhere a number is
expected: no hyper-parameter of tenfold is meaningful at infinity.

Example:
>>> number("epsilon", 1e-3, low=0, low_open=True)
0.001
>>> number("epsilon", float("nan"))
Traceback (most recent call last):
...
ValueError: epsilon must be a finite number, received nan.
>>> choice("mode", "triangle", ("triangular", "triangular2"))
Traceback (most recent call last):
...
ValueError: mode must be one of 'triangular', 'triangular2', received 'triangle'. Did you mean 'triangular'?
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any


def _as_python_number(name: str, value: Any, what: str) -> int | float:
    """``value`` as a Python int/float, or a TypeError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {what}, received the bool {value!r}.")
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)  # NumPy scalars and 0-d arrays
    if callable(item) and getattr(value, "shape", None) == ():
        kind = getattr(getattr(value, "dtype", None), "kind", "")
        if kind in "iuf" and kind:
            return item()
    raise TypeError(f"{name} must be {what}, received {value!r} of type {type(value).__name__}.")


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
    return " and ".join(x for x in (lo, hi) if x)


def _check_range(
    name: str, value: float, low: float | None, high: float | None,
    low_open: bool, high_open: bool, what: str,
) -> None:
    bad_low = low is not None and (value < low or (low_open and value == low))
    bad_high = high is not None and (value > high or (high_open and value == high))
    if bad_low or bad_high:
        raise ValueError(
            f"{name} must be {what} {_bounds(low, high, low_open, high_open)}, received {value!r}."
        )


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> Any:
    """A finite number in ``[low, high]`` (``low_open``/``high_open``: excluded), as a float.

    ``allow_none``: None is accepted and returned as is.
    """
    if value is None and allow_none:
        return None
    what = "a finite number" + (" or None" if allow_none else "")
    v = float(_as_python_number(name, value, what))
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {what}, received {value!r}.")
    _check_range(name, v, low, high, low_open, high_open, "a number")
    return v


def positive(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """A finite number > 0."""
    return number(name, value, low=0, low_open=True, allow_none=allow_none)


def non_negative(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """A finite number >= 0."""
    return number(name, value, low=0, allow_none=allow_none)


def fraction(name: str, value: Any, *, open_low: bool = False, open_high: bool = False) -> float:
    """A finite number in [0, 1] (ends excluded as asked)."""
    return number(name, value, low=0, high=1, low_open=open_low, high_open=open_high)


def integer(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> Any:
    """A whole number in ``[low, high]``, as an int (``3.0`` is accepted, ``3.5`` is not)."""
    if value is None and allow_none:
        return None
    what = "an integer" + (" or None" if allow_none else "")
    v = _as_python_number(name, value, what)
    if isinstance(v, float):
        if not math.isfinite(v) or not v.is_integer():
            raise ValueError(f"{name} must be {what}, received {value!r}.")
        v = int(v)
    _check_range(name, v, low, high, False, False, "an integer")
    return int(v)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy booleans too); never a truthy string or number."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ in ("bool_", "bool") and getattr(value, "dtype", None) is not None:  # numpy.bool_
        return bool(value)
    raise TypeError(f"{name} must be True or False, received {value!r} of type {type(value).__name__}.")


def suggest(value: str, accepted: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest accepted name, or an empty string."""
    close = difflib.get_close_matches(value, list(accepted), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def choice(name: str, value: Any, accepted: Sequence[Any]) -> Any:
    """One of ``accepted`` (compared with ``==``; strings get a did-you-mean hint)."""
    try:
        ok = value in accepted
    except TypeError:  # unhashable value against a set
        ok = False
    if isinstance(value, bool) and not any(isinstance(a, bool) for a in accepted):
        ok = False  # True == 1 must not pass for a choice of ints
    if not ok:
        hint = suggest(value, [a for a in accepted if isinstance(a, str)]) if isinstance(value, str) else ""
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in accepted)}, "
            f"received {value!r}.{hint}"
        )
    return value


def string(name: str, value: Any, *, allow_none: bool = False, non_empty: bool = True) -> Any:
    """A ``str`` (non-empty unless ``non_empty=False``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, received {value!r} of type {type(value).__name__}.")
    if non_empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty string, received {value!r}.")
    return value


def integers(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    length: int | None = None,
    non_empty: bool = True,
) -> list[int]:
    """A list or tuple of whole numbers in ``[low, high]`` (exactly ``length`` long if given)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a list of integers, received {value!r} of type {type(value).__name__}."
        )
    if non_empty and not value:
        raise ValueError(f"{name} must be a non-empty list of integers, received {value!r}.")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, received {value!r}.")
    return [integer(f"{name}[{i}]", v, low=low, high=high) for i, v in enumerate(value)]


def int_or_ints(
    name: str, value: Any, *, low: int | None = None, length: int | None = None
) -> int | tuple[int, ...]:
    """An int, or a tuple of ints (as Keras takes ``kernel_size`` and ``strides``)."""
    if isinstance(value, (list, tuple)):
        return tuple(integers(name, value, low=low, length=length))
    return integer(name, value, low=low)


def axis(name: str, value: Any) -> int | list[int]:
    """An axis as Keras takes it: an int or a non-empty list of distinct ints."""
    if isinstance(value, (list, tuple)):
        axes = integers(name, value)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name} must not repeat an axis, received {value!r}.")
        return axes
    return integer(name, value)


def instance(name: str, value: Any, types: type | tuple[type, ...], accepted: str) -> Any:
    """``value`` if it is an instance of ``types``; else a TypeError saying ``accepted``."""
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {accepted}, received {value!r} of type {type(value).__name__}.")
    return value


def ordered(low_name: str, low: float, high_name: str, high: float, *, strict: bool = True) -> None:
    """``low < high`` (``<=`` with ``strict=False``), or a ValueError naming both."""
    if low > high or (strict and low == high):
        rel = "<" if strict else "<="
        raise ValueError(f"{low_name} must be {rel} {high_name}, received {low!r} and {high!r}.")


def keras_object(name: str, value: Any, getter: Any, accepted: str) -> Any:
    """``getter(value)`` (e.g. ``keras.initializers.get``), its error re-raised naming ``name``.

    Keras' own lookup says "Could not interpret initializer identifier: 0" without saying
    which argument; this keeps its answer and adds the argument and what is accepted.
    """
    try:
        return getter(value)
    except (ValueError, TypeError) as err:
        raise type(err)(
            f"{name} must be {accepted}, received {value!r} of type {type(value).__name__}."
        ) from err


def auto_or_boolean(name: str, value: Any) -> str | bool:
    """``"auto"``, ``True`` or ``False`` (as Keras takes ``jit_compile``)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{name} must be 'auto', True or False, received {value!r}.")
        return value
    try:
        return boolean(name, value)
    except TypeError:
        raise TypeError(
            f"{name} must be 'auto', True or False, received {value!r} of type {type(value).__name__}."
        ) from None

"""Argument checks shared by the schedules (clear errors, raised at construction)."""

from __future__ import annotations

import math
from typing import Any


def number(name: str, value: Any) -> float:
    """``value`` as a finite float, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy as np

            if isinstance(value, np.generic) and np.issubdtype(value.dtype, np.number):
                value = value.item()
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{name} must be a Python number (int or float), received {value!r} of type "
                f"{type(value).__name__}. Schedules hold plain numbers so their config saves."
            ) from None
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, received {value!r}.")
    return float(value)


def positive(name: str, value: Any) -> float:
    value = number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, received {value!r}.")
    return value


def non_negative(name: str, value: Any) -> float:
    value = number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, received {value!r}.")
    return value


def choice(name: str, value: Any, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        from tenfold.registry import suggest

        hint = suggest(value, list(accepted)) if isinstance(value, str) else ""
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in accepted)}, "
            f"received {value!r}.{hint}"
        )
    return value

"""Name → object registry read by the CLI, the recipes, the model switches and the tests.

Kinds are plain strings. Public API kinds come from :func:`tenfold._api.export`
(``"layers"``, ``"optimizers"``, ``"schedules"``, ``"losses"``, ``"metrics"``,
``"callbacks"``, ``"data"``, ...); building blocks use their own kinds (``"conv"`` and
``"norm"`` for the model switches, ``"benchmarks"`` for ``tenfold bench``).

Example:
>>> from tenfold import registry
>>> "plain" in registry.list("conv")
True
>>> registry.get("conv", "plian")
Traceback (most recent call last):
...
ValueError: Unknown conv 'plian'. Did you mean 'plain'? Accepted: ...
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenfold._validate import suggest


@dataclass(frozen=True)
class Entry:
    """One registered object."""

    kind: str
    name: str
    obj: Any
    path: str
    example: Callable[[], Any] | None = None


_ENTRIES: dict[str, dict[str, Entry]] = {}


def _ensure_loaded() -> None:
    # Importing the package runs every @export / register call.
    import tenfold  # noqa: F401


def register(
    kind: str,
    name: str,
    obj: Any,
    *,
    example: Callable[[], Any] | None = None,
    path: str | None = None,
) -> Any:
    """Register ``obj`` as ``name`` of ``kind``; returns ``obj``.

    Registering the same name twice for a different object raises a ValueError.
    """
    table = _ENTRIES.setdefault(kind, {})
    old = table.get(name)
    if old is not None and old.obj is not obj and old.path != (path or name):
        raise ValueError(f"{kind} {name!r} is already registered ({old.path}).")
    table[name] = Entry(kind, name, obj, path or f"{kind}.{name}", example)
    return obj


def registrar(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator form of :func:`register`."""

    def decorate(obj: Any) -> Any:
        return register(kind, name, obj)

    return decorate


def kinds() -> builtins.list[str]:
    """All kinds that have at least one entry."""
    _ensure_loaded()
    return sorted(_ENTRIES)


def list(kind: str) -> builtins.list[str]:  # noqa: A001 - public name from DESIGN.md
    """Sorted names registered under ``kind`` (empty list for an unknown kind)."""
    _ensure_loaded()
    return sorted(_ENTRIES.get(kind, {}))


def entries(kind: str) -> builtins.list[Entry]:
    """The :class:`Entry` objects of ``kind``, sorted by name."""
    _ensure_loaded()
    table = _ENTRIES.get(kind, {})
    return [table[n] for n in sorted(table)]




def get(kind: str, name: str) -> Any:
    """The object registered as ``name`` of ``kind``.

    Raises:
        ValueError: naming the kind, the value, the nearest name and all accepted names.
    """
    _ensure_loaded()
    table = _ENTRIES.get(kind, {})
    if isinstance(name, str) and name in table:
        return table[name].obj
    choices = sorted(table)
    hint = suggest(name, choices) if isinstance(name, str) else ""
    raise ValueError(
        f"Unknown {kind} {name!r}.{hint} Accepted: {', '.join(choices) or '(none)'}."
    )

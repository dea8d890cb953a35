"""The export decorator and the component registry behind it.

Every public tenfold object is declared once with :func:`export`. The decorator

* registers the object for `.keras` serialization under the package name ``"tenfold"``
  (that name is part of the file format: never change it);
* files it in :mod:`tenfold.registry` under its kind (``"layers"``, ``"optimizers"``,
  ``"schedules"``, ``"losses"``, ``"metrics"``, ``"callbacks"``, ...), which the CLI, the
  recipes and the contract tests read;
* optionally records a *contract example*: a zero-argument callable returning a
  :class:`tenfold.testing.ContractExample`, so the shared contract checks can build and
  exercise the object. A serializable component without an example fails the contract test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import keras

from tenfold import registry

T = TypeVar("T")

PACKAGE = "tenfold"

# Keras classes that are saved inside `.keras` files and so get the full contract checks
_KERAS_BASES = (
    keras.layers.Layer,
    keras.optimizers.Optimizer,
    keras.optimizers.schedules.LearningRateSchedule,
    keras.losses.Loss,
    keras.metrics.Metric,
)


def contract_kind(obj: object) -> str | None:
    """The contract-check kind of a class (``"layers"``, ``"optimizers"``, ...), or None."""
    if not isinstance(obj, type):
        return None
    for base, kind in zip(_KERAS_BASES, ("layers", "optimizers", "schedules", "losses", "metrics")):
        if issubclass(obj, base):
            return kind
    return None


def export(path: str, *, example: Callable[[], Any] | None = None) -> Callable[[T], T]:
    """Declare a public tenfold object.

    Args:
        path: str. Its public dotted path, e.g. ``"tenfold.layers.WSConv2D"``. The second
            component is the registry kind, the last one the registered name.
        example: optional zero-argument callable returning a
            ``tenfold.testing.ContractExample`` used by the contract checks.

    Example:
    >>> from tenfold._api import export
    >>> @export("tenfold.callbacks.Nothing")
    ... class Nothing(keras.callbacks.Callback):
    ...     pass
    >>> from tenfold import registry
    >>> registry.get("callbacks", "Nothing") is Nothing
    True
    """
    parts = path.split(".")
    if len(parts) < 3 or parts[0] != PACKAGE:
        raise ValueError(
            f"export path must look like 'tenfold.<kind>.<Name>', received {path!r}."
        )
    kind, name = parts[1], parts[-1]

    def decorate(obj: T) -> T:
        if isinstance(obj, type) and issubclass(obj, _KERAS_BASES):
            keras.saving.register_keras_serializable(package=PACKAGE, name=name)(obj)
        registry.register(kind, name, obj, example=example, path=path)
        return obj

    return decorate

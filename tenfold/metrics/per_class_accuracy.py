"""Per-class accuracy (recall of each class), streaming."""

from __future__ import annotations

from typing import Any

from keras import ops

from tenfold._api import export
from tenfold.metrics._per_class import PerClassCounts
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: PerClassAccuracy(4))


@export("tenfold.metrics.PerClassAccuracy", example=_example)
class PerClassAccuracy(PerClassCounts):
    """The recall of every class, as a dict ``{"<name>_<c>": recall_c}``.

    Keras spreads a dict result into separate log entries (``per_class_accuracy_0``, ...),
    so they show in the progress bar, ``History`` and ``CSVLogger``. A class with no
    example so far reports NaN. Correct under a ``tf.distribute`` strategy.

    Args:
        num_classes: int >= 2.
        name: str. Prefix of the keys. Defaults to `"per_class_accuracy"`.
        dtype: Keras dtype of the result.

    Example:
    >>> m = PerClassAccuracy(2)
    >>> m.update_state([0, 1, 1], [[1, 0], [1, 0], [0, 1]])
    >>> {k: float(v) for k, v in m.result().items()}
    {'per_class_accuracy_0': 1.0, 'per_class_accuracy_1': 0.5}
    """

    def __init__(self, num_classes: int, *, name: str = "per_class_accuracy", dtype: Any = None) -> None:
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self) -> dict[str, Any]:
        recall, present = self.per_class_recall()
        recall = ops.where(present, recall, float("nan"))
        return {f"{self.name}_{c}": recall[c] for c in range(self.num_classes)}

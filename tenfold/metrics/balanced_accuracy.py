"""Balanced accuracy: the mean of the per-class recalls.

References:
    Brodersen et al. 2010, "The balanced accuracy and its posterior distribution", ICPR;
    the headline metric of long-tail evaluation on a balanced test set (Zhang et al. 2021,
    "Deep Long-Tailed Learning: A Survey", https://arxiv.org/abs/2110.04596).
"""

from __future__ import annotations

from typing import Any

from tenfold._api import export
from tenfold.metrics._per_class import PerClassCounts
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: BalancedAccuracy(4))


@export("tenfold.metrics.BalancedAccuracy", example=_example)
class BalancedAccuracy(PerClassCounts):
    """Streaming mean over classes of the recall ``hits_c / examples_c``.

    Classes absent from everything seen since the last reset are left out of the mean
    (as scikit-learn's ``balanced_accuracy_score`` does); NaN before any example. On a
    balanced test set it equals plain accuracy. Takes integer labels and logits or
    probabilities (the arg-max is used), optional sample weights. Correct under a
    ``tf.distribute`` strategy: its state is two sum-aggregated count vectors.

    Args:
        num_classes: int >= 2.
        name: str. Defaults to `"balanced_accuracy"`.
        dtype: Keras dtype of the result.

    Example:
    >>> m = BalancedAccuracy(2)
    >>> m.update_state([0, 0, 0, 1], [[1, 0], [1, 0], [1, 0], [1, 0]])
    >>> float(m.result())
    0.5
    """

    def __init__(self, num_classes: int, *, name: str = "balanced_accuracy", dtype: Any = None) -> None:
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self) -> Any:
        recall, present = self.per_class_recall()
        return self.masked_mean(recall, present)

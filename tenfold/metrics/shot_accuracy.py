"""Many / medium / few-shot accuracy by training class size.

References:
    Liu et al. 2019, "Large-Scale Long-Tailed Recognition in an Open World" (OLTR),
    https://arxiv.org/abs/1904.05160 — the many (>100) / medium (20–100) / few (<20) split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.metrics._per_class import PerClassCounts
from tenfold.ops.long_tail import validate_class_counts
from tenfold.testing import ContractExample

GROUPS = ("many", "medium", "few")


def shot_group_masks(class_counts: Sequence[int], *, many: int = 100, few: int = 20) -> dict[str, np.ndarray]:
    """Boolean class masks of the shot groups: many ``n > many``, few ``n < few``, medium
    ``few <= n <= many``.

    Example:
    >>> {k: v.tolist() for k, v in shot_group_masks([150, 100, 20, 19]).items()}
    {'many': [True, False, False, False], 'medium': [False, True, True, False], 'few': [False, False, False, True]}
    """
    n = np.asarray(validate_class_counts(class_counts))
    many = v.integer("many", many, low=0)
    few = v.integer("few", few, low=0)
    if few > many + 1:
        raise ValueError(f"few ({few}) must be at most many + 1 ({many + 1}); received many={many}, few={few}.")
    return {"many": n > many, "medium": (n >= few) & (n <= many), "few": n < few}


def _example() -> ContractExample:
    return ContractExample(make=lambda: ShotAccuracy([40, 20, 5, 2], many=30, few=4))


@export("tenfold.metrics.ShotAccuracy", example=_example)
class ShotAccuracy(PerClassCounts):
    """Mean per-class accuracy over the many-, medium- and few-shot classes.

    A class is **many-shot** with more than ``many`` training examples, **few-shot** with
    fewer than ``few``, **medium-shot** otherwise (``few <= n <= many``); the defaults
    are ImageNet-LT's 100 and 20 (OLTR). Scale them to your data set: with a few hundred
    examples per head class, e.g. ``many=40, few=10``. Each group reports the mean of its
    classes' recalls (classes not yet seen are skipped; a group with none reports NaN), as
    a dict ``{"<name>_many", "<name>_medium", "<name>_few"}`` that Keras spreads into
    separate log entries. Correct under a ``tf.distribute`` strategy.

    Args:
        class_counts: list of int. Training examples per class (sets `num_classes`).
        many: int. Many-shot: more than this many examples. Defaults to `100`.
        few: int. Few-shot: fewer than this many examples. Defaults to `20`.
        name: str. Prefix of the keys. Defaults to `"shot_accuracy"`.
        dtype: Keras dtype of the result.

    Example:
    >>> m = ShotAccuracy([500, 50, 5])
    >>> m.update_state([0, 1, 2, 2], [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    >>> {k: float(v) for k, v in m.result().items()}
    {'shot_accuracy_many': 1.0, 'shot_accuracy_medium': 1.0, 'shot_accuracy_few': 0.5}
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        many: int = 100,
        few: int = 20,
        name: str = "shot_accuracy",
        dtype: Any = None,
    ) -> None:
        counts = validate_class_counts(class_counts)
        masks = shot_group_masks(counts, many=many, few=few)
        super().__init__(len(counts), name=name, dtype=dtype)
        self.class_counts = counts
        self.many = int(many)
        self.few = int(few)
        self.group_masks = masks

    def result(self) -> dict[str, Any]:
        recall, present = self.per_class_recall()
        out = {}
        for group in GROUPS:
            mask = ops.logical_and(present, ops.convert_to_tensor(self.group_masks[group]))
            out[f"{self.name}_{group}"] = self.masked_mean(recall, mask)
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("num_classes", None)
        config.update(class_counts=list(self.class_counts), many=self.many, few=self.few)
        return config

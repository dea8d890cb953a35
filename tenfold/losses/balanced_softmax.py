"""Balanced softmax: cross-entropy on logits shifted by the log class counts.

References:
    Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS,
    https://arxiv.org/abs/2007.10740 (official code: jiawei-ren/BalancedMetaSoftmax,
    PyTorch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tenfold._api import export
from tenfold.losses._base import LongTailLoss, softmax_cross_entropy
from tenfold.ops.long_tail import logit_adjust
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: BalancedSoftmaxLoss([40, 20, 5, 2]))


@export("tenfold.losses.BalancedSoftmaxLoss", example=_example)
class BalancedSoftmaxLoss(LongTailLoss):
    """Softmax cross-entropy on ``z + log n``: the training label prior is folded in.

    ``ℓ = −log( n_y e^{z_y} / Σ_j n_j e^{z_j} )``. The model's plain logits then estimate
    the *balanced* (uniform-prior) posterior, so predict with them unchanged. It equals
    :class:`LogitAdjustedLoss` with ``tau=1`` (``log n`` and ``log π`` differ by a
    constant, which softmax ignores). On balanced counts it is plain cross-entropy.

    Args:
        class_counts: list of int. Training examples per class.
        from_logits: bool. Whether `y_pred` holds logits (default) or probabilities.
        **kwargs: `name`, `reduction`, `dtype` of `keras.losses.Loss`.

    Example:
    >>> loss = BalancedSoftmaxLoss([3, 1])
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)
    1.3863
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        from_logits: bool = True,
        name: str = "balanced_softmax_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(class_counts, from_logits=from_logits, name=name, **kwargs)
        self.log_counts = np.log(np.asarray(self.class_counts, "float64"))

    def per_example(self, labels: Any, logits: Any) -> Any:
        return softmax_cross_entropy(labels, logit_adjust(logits, self.log_counts, 1.0))

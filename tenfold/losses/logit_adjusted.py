"""Logit-adjusted loss: cross-entropy on logits shifted by τ times the log prior.

References:
    Menon et al. 2021, "Long-tail learning via logit adjustment", ICLR,
    https://arxiv.org/abs/2007.07314 (official code: google-research/google-research
    `logit_adjustment`, TF2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenfold import _validate as v
from tenfold._api import export
from tenfold.losses._base import LongTailLoss, softmax_cross_entropy
from tenfold.ops.long_tail import log_prior, logit_adjust
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: LogitAdjustedLoss([40, 20, 5, 2], tau=1.5))


@export("tenfold.losses.LogitAdjustedLoss", example=_example)
class LogitAdjustedLoss(LongTailLoss):
    """Softmax cross-entropy on ``z + τ · log π``, π the training label prior.

    ``ℓ = −log( e^{z_y + τ log π_y} / Σ_j e^{z_j + τ log π_j} )`` (Menon et al. 2021,
    eq. 10): a pairwise margin ``τ log(π_j / π_y)`` that favours rare classes. Predict
    with the plain logits. τ = 1 is Fisher-consistent for the balanced error and equals
    :class:`BalancedSoftmaxLoss`; τ = 0 is plain cross-entropy.

    Args:
        class_counts: list of int. Training examples per class.
        tau: float. Temperature of the adjustment. Defaults to `1.0`.
        from_logits: bool. Whether `y_pred` holds logits (default) or probabilities.
        **kwargs: `name`, `reduction`, `dtype` of `keras.losses.Loss`.

    Example:
    >>> loss = LogitAdjustedLoss([3, 1], tau=1.0)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)
    1.3863
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        tau: float = 1.0,
        from_logits: bool = True,
        name: str = "logit_adjusted_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(class_counts, from_logits=from_logits, name=name, **kwargs)
        self.tau = v.number("tau", tau)
        self.log_prior = log_prior(self.class_counts)

    def per_example(self, labels: Any, logits: Any) -> Any:
        return softmax_cross_entropy(labels, logit_adjust(logits, self.log_prior, self.tau))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(tau=self.tau)
        return config

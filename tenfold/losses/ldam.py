"""LDAM: label-distribution-aware margin loss.

References:
    Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", NeurIPS, https://arxiv.org/abs/1906.07413 (official code: kaidic/LDAM-DRW,
    PyTorch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.losses._base import LongTailLoss, softmax_cross_entropy
from tenfold.ops.long_tail import ldam_margins
from tenfold.testing import ContractExample


def _example() -> ContractExample:
    return ContractExample(make=lambda: LDAMLoss([40, 20, 5, 2], scale=5.0))


@export("tenfold.losses.LDAMLoss", example=_example)
class LDAMLoss(LongTailLoss):
    """Cross-entropy with a larger margin for rarer classes.

    The true-class logit is lowered by ``Δ_y = K / n_y^{1/4}`` (K so that the largest
    margin, that of the rarest class, is ``max_margin``), the logits are multiplied by
    ``scale`` and softmax cross-entropy follows:
    ``ℓ = −log softmax(s · (z − Δ_y e_y))_y`` (Cao et al. 2019, eq. 13).

    Meant for logits bounded in [−1, 1], i.e. a cosine classifier such as
    :class:`tenfold.layers.NormedDense`; ``scale`` then sets the softmax temperature.
    Pair it with :class:`tenfold.callbacks.DeferredReweighting` for LDAM-DRW. With
    ``max_margin=0`` and ``scale=1`` it is plain cross-entropy. Under DRW weights the
    default reduction divides ``Σ w_y ℓ`` by the batch size; ``reduction="weighted_mean"``
    divides by ``Σ w_y``, the convention of the official LDAM-DRW code (PyTorch's weighted
    ``cross_entropy``).

    Args:
        class_counts: list of int. Training examples per class.
        max_margin: float >= 0. Margin of the rarest class. Defaults to `0.5`.
        scale: float > 0. Logit scale `s`. Defaults to `30.0`.
        from_logits: bool. Whether `y_pred` holds logits (default) or probabilities.
        **kwargs: `name`, `reduction` (Keras' values or `"weighted_mean"`, see
            :class:`tenfold.losses.LongTailLoss`), `dtype` of `keras.losses.Loss`.

    Example:
    >>> loss = LDAMLoss([100, 1], max_margin=0.5, scale=1.0)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.5]]))), 4)
    0.6931
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        max_margin: float = 0.5,
        scale: float = 30.0,
        from_logits: bool = True,
        name: str = "ldam_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(class_counts, from_logits=from_logits, name=name, **kwargs)
        self.max_margin = v.non_negative("max_margin", max_margin)
        self.scale = v.positive("scale", scale)
        self.margins = ldam_margins(self.class_counts, self.max_margin)

    def per_example(self, labels: Any, logits: Any) -> Any:
        one_hot = ops.one_hot(labels, self.num_classes, dtype=logits.dtype)
        margin = ops.take(ops.convert_to_tensor(self.margins.astype("float32")), labels, axis=0)
        adjusted = logits - one_hot * ops.expand_dims(margin, -1)
        return softmax_cross_entropy(labels, self.scale * adjusted)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(max_margin=self.max_margin, scale=self.scale)
        return config

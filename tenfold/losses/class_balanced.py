"""Class-balanced loss: re-weighting by the inverse effective number of samples.

References:
    Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples", CVPR,
    https://arxiv.org/abs/1901.05555 (official code: richardaecn/class-balanced-loss, TF1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.losses._base import LongTailLoss, softmax_cross_entropy
from tenfold.ops.long_tail import class_balanced_weights
from tenfold.testing import ContractExample

BASES = ("softmax", "sigmoid", "focal")


def _example() -> ContractExample:
    return ContractExample(make=lambda: ClassBalancedLoss([40, 20, 5, 2], base="focal"))


@export("tenfold.losses.ClassBalancedLoss", example=_example)
class ClassBalancedLoss(LongTailLoss):
    """Loss of each example weighted by its class's inverse effective number of samples.

    With ``E_n = (1 − β^n) / (1 − β)`` the effective number of ``n`` samples, class ``j``
    gets the weight ``w_j ∝ 1 / E_{n_j}``, normalized so that ``Σ_j w_j = C``; the loss of
    example ``i`` is ``w_{y_i} · ℓ(z_i, y_i)`` and the batch loss their mean
    (``reduction="weighted_mean"``: their sum divided by ``Σ_i w_{y_i}``). ``base``
    picks ``ℓ``:

    * ``"softmax"``: softmax cross-entropy;
    * ``"sigmoid"``: one-vs-all binary cross-entropy summed over the ``C`` classes;
    * ``"focal"``: the sigmoid form with the focal modulator ``(1 − p_t)^γ`` on each of
      the ``C`` binary terms, computed as ``exp(γ · log σ(−z_t))`` so it stays finite for
      large logits (the paper's best variant on CIFAR-LT).

    β = 0 gives plain (unweighted) ``ℓ``; β → 1 approaches inverse-frequency weighting.
    Costs one gather per batch over the plain loss. The math runs in float32 under mixed
    precision.

    Args:
        class_counts: list of int. Training examples per class.
        beta: float in [0, 1). Defaults to the paper's `0.9999`.
        base: str. `"softmax"` (default), `"sigmoid"` or `"focal"`.
        gamma: float >= 0. Focusing parameter of `"focal"`. Defaults to `2.0`.
        from_logits: bool. Whether `y_pred` holds logits (default) or probabilities.
        **kwargs: `name`, `reduction` (Keras' values or `"weighted_mean"`, see
            :class:`tenfold.losses.LongTailLoss`), `dtype` of `keras.losses.Loss`.

    Example:
    >>> loss = ClassBalancedLoss([100, 10], beta=0.99)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)
    1.2046
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        beta: float = 0.9999,
        base: str = "softmax",
        gamma: float = 2.0,
        from_logits: bool = True,
        name: str = "class_balanced_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(class_counts, from_logits=from_logits, name=name, **kwargs)
        self.beta = v.fraction("beta", beta, open_high=True)
        self.base = v.choice("base", base, BASES)
        self.gamma = v.non_negative("gamma", gamma)
        self.cb_weights = class_balanced_weights(self.class_counts, self.beta)

    def _logits(self, y_pred: Any) -> Any:
        if self.from_logits or self.base == "softmax":
            return super()._logits(y_pred)
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
        return ops.log(p) - ops.log1p(-p)

    def example_weights(self, labels: Any) -> Any:
        """``w_y``: the class-balanced weight times the class weight (DRW's; ones by default)."""
        cb = ops.take(ops.convert_to_tensor(self.cb_weights.astype("float32")), labels, axis=0)
        return cb * super().example_weights(labels)

    def per_example(self, labels: Any, logits: Any) -> Any:
        if self.base == "softmax":
            return softmax_cross_entropy(labels, logits)
        one_hot = ops.one_hot(labels, self.num_classes, dtype=logits.dtype)
        # z_t = z for the true class, −z for the others; BCE = −log σ(z_t)
        z_t = ops.where(one_hot > 0, logits, -logits)
        bce = -ops.log_sigmoid(z_t)
        if self.base == "focal" and self.gamma > 0:
            bce = ops.exp(self.gamma * ops.log_sigmoid(-z_t)) * bce
        return ops.sum(bce, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(beta=self.beta, base=self.base, gamma=self.gamma)
        return config



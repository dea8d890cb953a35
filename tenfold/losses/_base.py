"""Shared shell of the long-tail losses: class counts, integer labels, DRW weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import _validate as v
from tenfold.ops.long_tail import validate_class_counts

#: Keras' reductions, and the weighted mean of PyTorch's weighted cross-entropy
WEIGHTED_MEAN = "weighted_mean"
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None, WEIGHTED_MEAN)


class LongTailLoss(keras.losses.Loss):
    """Base of the losses that know the training class counts.

    Subclasses implement ``per_example(labels, logits)`` on float32 logits and int32 labels.
    Every such loss carries a non-trainable per-class weight vector, all ones by default,
    multiplied into the per-example loss (``w[y_i] · ℓ_i``) before the reduction. It is a
    variable so that :class:`tenfold.callbacks.DeferredReweighting` can switch it during
    ``fit`` without recompiling; it is not part of the config.

    ``reduction`` takes Keras' values (``"sum_over_batch_size"``, the default, divides
    ``Σ w_y ℓ`` by the number of examples ``N``) and ``"weighted_mean"``, which divides it by
    ``Σ w_y`` instead, as PyTorch's ``cross_entropy(weight=...)`` and the official LDAM-DRW
    code do (with sample weights ``s``: ``Σ s w_y ℓ / Σ s w_y``). The two differ as soon as
    the weights are not all ones: on counts ``[100, 10]``, DRW weights of β = 0.9999,
    labels ``[0, 0, 0, 1]`` and zero logits, LDAM (scale 1) gives 0.5581 and 0.9439.
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        from_logits: bool = True,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        reduction = v.choice("reduction", reduction, REDUCTIONS)
        super().__init__(
            name=v.string("name", name, allow_none=True),
            reduction="sum" if reduction == WEIGHTED_MEAN else reduction, dtype=dtype,
        )
        self.reduction = reduction
        self.class_counts = validate_class_counts(class_counts)
        self.from_logits = v.boolean("from_logits", from_logits)
        self.num_classes = len(self.class_counts)
        self.class_weight_variable = keras.Variable(
            np.ones(self.num_classes, "float32"), trainable=False, dtype="float32",
            name=f"{self.name}_class_weight",
        )

    def set_class_weights(self, weights: Sequence[float] | None) -> None:
        """Set the per-class weights (``None``: back to all ones)."""
        if weights is None:
            values = np.ones(self.num_classes, "float32")
        else:
            values = np.asarray(weights, "float32").reshape(-1)
            if values.shape != (self.num_classes,) or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(
                    f"weights must be {self.num_classes} finite non-negative numbers, one per "
                    f"class, received {weights!r}."
                )
        self.class_weight_variable.assign(values)

    @property
    def class_weights(self) -> np.ndarray:
        """The current per-class weights as a NumPy array."""
        return np.asarray(ops.convert_to_numpy(self.class_weight_variable))

    def _logits(self, y_pred: Any) -> Any:
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            return y_pred
        return ops.log(ops.clip(y_pred, 1e-7, 1.0))

    def _labels(self, y_true: Any) -> Any:
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) > 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        return ops.cast(y_true, "int32")

    def per_example(self, labels: Any, logits: Any) -> Any:
        raise NotImplementedError

    def example_weights(self, labels: Any) -> Any:
        """``w_y`` of each example: the class weight (DRW's; ones by default)."""
        return ops.take(ops.cast(self.class_weight_variable, "float32"), labels, axis=0)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = self._labels(y_true)
        logits = self._logits(y_pred)
        return self.per_example(labels, logits) * self.example_weights(labels)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if self.reduction != WEIGHTED_MEAN:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        weighted = self.call(y_true, y_pred)
        weights = self.example_weights(self._labels(y_true))
        if sample_weight is not None:
            s = ops.broadcast_to(
                ops.reshape(ops.cast(sample_weight, "float32"), (-1,)), ops.shape(weights)
            )
            weighted, weights = weighted * s, weights * s
        total = ops.sum(weighted) / ops.maximum(ops.sum(weights), 1e-12)
        return ops.cast(total, self.dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(class_counts=list(self.class_counts), from_logits=self.from_logits)
        return config


def softmax_cross_entropy(labels: Any, logits: Any) -> Any:
    """``−log softmax(z)_y`` per example, from float logits and int labels."""
    log_probs = ops.log_softmax(logits, axis=-1)
    one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype=log_probs.dtype)
    return -ops.sum(one_hot * log_probs, axis=-1)

"""Streaming per-class hit and example counts, the state of the long-tail metrics."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tenfold import _validate as v


class PerClassCounts(keras.metrics.Metric):
    """Base of the per-class metrics: two ``(num_classes,)`` sum-aggregated variables.

    ``hits[c]`` counts (weighted) examples of class ``c`` predicted as ``c`` and
    ``examples[c]`` all (weighted) examples of class ``c``. Both are plain sums, so under a
    ``tf.distribute`` strategy Keras adds the replicas' copies (``aggregation="sum"``,
    synchronized on read) and the result is that of the global batch.
    """

    def __init__(self, num_classes: int, *, name: str | None = None, dtype: Any = None) -> None:
        num_classes = v.integer("num_classes", num_classes, low=2)
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.hits = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", aggregation="sum", name="hits"
        )
        self.examples = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype="float32", aggregation="sum",
            name="examples",
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Count one batch: integer labels ``y_true`` and scores/logits ``y_pred``."""
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        predicted = ops.reshape(
            ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,)
        )
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        correct = ops.cast(ops.equal(labels, predicted), "float32")
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            weight = ops.broadcast_to(weight, ops.shape(correct))
        else:
            weight = ops.ones_like(correct)
        self.hits.assign_add(ops.sum(one_hot * ops.expand_dims(correct * weight, -1), axis=0))
        self.examples.assign_add(ops.sum(one_hot * ops.expand_dims(weight, -1), axis=0))

    def per_class_recall(self) -> tuple[Any, Any]:
        """``(recall, present)``: hits / examples per class (0 where absent) and the mask."""
        present = ops.greater(self.examples, 0.0)
        recall = ops.where(present, self.hits / ops.maximum(self.examples, 1e-12), 0.0)
        return recall, present

    @staticmethod
    def masked_mean(values: Any, mask: Any) -> Any:
        """Mean of ``values`` where ``mask``; NaN when the mask is empty."""
        mask_f = ops.cast(mask, "float32")
        count = ops.sum(mask_f)
        total = ops.sum(values * mask_f)
        return ops.where(count > 0, total / ops.maximum(count, 1.0), float("nan"))

    def reset_state(self) -> None:
        self.hits.assign(ops.zeros((self.num_classes,), "float32"))
        self.examples.assign(ops.zeros((self.num_classes,), "float32"))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config

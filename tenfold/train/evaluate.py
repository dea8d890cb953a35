"""Evaluation of a trained model: accuracy, balanced accuracy, per-class and per-shot.

Plain NumPy over the model's logits on a split, so the numbers in ``metrics.json`` do not
depend on how Keras aggregates metrics.

Shot groups follow the long-tail literature (Liu et al. 2019, OLTR): a class is
*many-shot* with more than ``many`` training examples, *few-shot* with fewer than ``few``,
*medium-shot* otherwise (``few <= n <= many``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> list[float | None]:
    """Recall of each class (None for a class absent from ``y_true``)."""
    out: list[float | None] = []
    for c in range(num_classes):
        mask = y_true == c
        out.append(float(np.mean(y_pred[mask] == c)) if mask.any() else None)
    return out


def shot_groups(class_counts: list[int], *, many: int, few: int) -> dict[str, list[int]]:
    """Class indices of the many / medium / few-shot groups by training count."""
    if few > many:
        raise ValueError(f"evaluate.few ({few}) must not exceed evaluate.many ({many}).")
    groups: dict[str, list[int]] = {"many": [], "medium": [], "few": []}
    for c, n in enumerate(class_counts):
        key = "many" if n > many else ("few" if n < few else "medium")
        groups[key].append(c)
    return groups


def classification_metrics(
    logits: np.ndarray,
    y_true: np.ndarray,
    class_counts: list[int],
    *,
    many: int,
    few: int,
) -> dict[str, Any]:
    """All the numbers of one split, JSON-able.

    Example:
    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> m = classification_metrics(logits, np.array([0, 1, 1]), [50, 5], many=10, few=10)
    >>> m["accuracy"], m["balanced_accuracy"], m["shots"]["few"]["accuracy"]
    (0.6666666666666666, 0.75, 0.5)
    """
    y_pred = np.argmax(logits, axis=-1)
    num_classes = logits.shape[-1]
    per_class = per_class_accuracy(y_true, y_pred, num_classes)
    present = [a for a in per_class if a is not None]
    groups = shot_groups(class_counts, many=many, few=few)
    shots = {}
    for name, classes in groups.items():
        accs = [per_class[c] for c in classes if per_class[c] is not None]
        shots[name] = {
            "classes": classes,
            "accuracy": float(np.mean(accs)) if accs else None,
        }
    return {
        "examples": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "per_class_accuracy": per_class,
        "shots": shots,
    }

"""Streaming metrics for long-tailed classification, correct under tf.distribute."""

from tenfold.metrics.balanced_accuracy import BalancedAccuracy
from tenfold.metrics.per_class_accuracy import PerClassAccuracy
from tenfold.metrics.shot_accuracy import ShotAccuracy, shot_group_masks

__all__ = ["BalancedAccuracy", "PerClassAccuracy", "ShotAccuracy", "shot_group_masks"]

"""Losses for long-tailed (class-imbalanced) classification.

All take integer labels and logits by default, and the training class counts as a plain
list of ints so that they serialize.
"""

from tenfold.losses._base import LongTailLoss
from tenfold.losses.balanced_softmax import BalancedSoftmaxLoss
from tenfold.losses.class_balanced import ClassBalancedLoss
from tenfold.losses.ldam import LDAMLoss
from tenfold.losses.logit_adjusted import LogitAdjustedLoss

__all__ = [
    "BalancedSoftmaxLoss",
    "ClassBalancedLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "LongTailLoss",
]

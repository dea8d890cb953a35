"""Long-tailed learning after training: post-hoc logit adjustment, τ-norm, cRT, τ search."""

from tenfold.longtail.crt import retrain_classifier
from tenfold.longtail.posthoc import (
    TauSearch,
    adjust_logits,
    balanced_accuracy_score,
    classifier_layer,
    search_tau,
    tau_normalize,
)

__all__ = [
    "TauSearch",
    "adjust_logits",
    "balanced_accuracy_score",
    "classifier_layer",
    "retrain_classifier",
    "search_tau",
    "tau_normalize",
]

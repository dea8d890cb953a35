"""Deferred re-weighting (DRW): plain loss first, class-balanced weights later.

References:
    Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", NeurIPS, https://arxiv.org/abs/1906.07413 (Algorithm 1, LDAM-DRW; official code
    kaidic/LDAM-DRW switches at epoch 160 of 200, β = 0.9999).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.long_tail import class_balanced_weights, validate_class_counts


@export("tenfold.callbacks.DeferredReweighting")
class DeferredReweighting(keras.callbacks.Callback):
    """Switch the loss to class-balanced weights at a given epoch, without recompiling.

    Before the switch every class has weight 1; from epoch ``start_epoch`` on (0-based)
    the per-example loss of class ``j`` is multiplied by the class-balanced weight
    ``w_j ∝ (1 − β) / (1 − β^{n_j})`` (normalized to ``Σ w = C``). Training first learns
    a representation on the natural distribution, then re-balances the decision boundary.

    The compiled loss must be a tenfold long-tail loss (any of ``tenfold.losses``); they
    hold their per-class weights in a variable that this callback assigns at the start of
    every epoch, so the compiled train step is reused (on the JAX backend, where a
    variable outside the model is captured as a constant, the train function is rebuilt
    once at the switch). For plain cross-entropy + DRW compile with
    ``tenfold.losses.LogitAdjustedLoss(counts, tau=0.0)``, which is cross-entropy.
    Resuming at ``initial_epoch`` restores the right phase.

    Args:
        class_counts: list of int. Training examples per class.
        start_epoch: optional int >= 0. First re-weighted epoch (0-based).
        start_fraction: float in [0, 1]. Used when `start_epoch` is None: the switch is at
            `floor(start_fraction * epochs)`. Defaults to the paper's `0.8`.
        beta: float in [0, 1). Of the class-balanced weights. Defaults to `0.9999`.

    Example:
    >>> counts = [100, 10]
    >>> model.compile("adam", tenfold.losses.LDAMLoss(counts))  # doctest: +SKIP
    >>> model.fit(x, y, epochs=10, callbacks=[DeferredReweighting(counts)])  # doctest: +SKIP
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        start_epoch: int | None = None,
        start_fraction: float = 0.8,
        beta: float = 0.9999,
    ) -> None:
        super().__init__()
        self.class_counts = validate_class_counts(class_counts)
        self.start_epoch = v.integer("start_epoch", start_epoch, low=0, allow_none=True)
        self.start_fraction = v.fraction("start_fraction", start_fraction)
        self.beta = v.fraction("beta", beta, open_high=True)
        self.weights = class_balanced_weights(self.class_counts, self.beta)
        self.switch_epoch: int | None = None
        self.active = False
        self._synced = False

    def _loss(self) -> Any:
        loss = getattr(self.model, "loss", None)
        if not hasattr(loss, "set_class_weights"):
            raise TypeError(
                "DeferredReweighting needs the model compiled with a tenfold long-tail loss "
                "(tenfold.losses.LDAMLoss, LogitAdjustedLoss, BalancedSoftmaxLoss, "
                f"ClassBalancedLoss), received loss={loss!r}. For plain cross-entropy use "
                "tenfold.losses.LogitAdjustedLoss(class_counts, tau=0.0)."
            )
        if getattr(loss, "num_classes", len(self.class_counts)) != len(self.class_counts):
            raise ValueError(
                f"DeferredReweighting has {len(self.class_counts)} class counts but the loss "
                f"has {loss.num_classes} classes."
            )
        return loss

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._loss()
        self._synced = False
        if self.start_epoch is not None:
            self.switch_epoch = self.start_epoch
        else:
            epochs = int(self.params.get("epochs") or 0)
            self.switch_epoch = int(np.floor(self.start_fraction * epochs + 1e-9))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        active = self.switch_epoch is not None and epoch >= self.switch_epoch
        if self._synced and active == self.active:
            return
        self._loss().set_class_weights(self.weights if active else None)
        self.active = active
        self._synced = True
        if keras.backend.backend() != "tensorflow" and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)

    def get_config(self) -> dict[str, Any]:
        return {
            "class_counts": list(self.class_counts),
            "start_epoch": self.start_epoch,
            "start_fraction": self.start_fraction,
            "beta": self.beta,
        }

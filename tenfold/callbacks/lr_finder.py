"""The learning-rate range test ("LR finder") as a Keras callback.

References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", WACV,
    https://arxiv.org/abs/1506.01186, section 3.3: train a few hundred steps while the
    learning rate grows, and read the bounds of a cyclical schedule off the loss curve.
    The smoothed loss (bias-corrected moving average, factor 0.98) and the stop at four
    times the best loss follow fastai's ``lr_find``.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from tenfold import _validate
from tenfold._api import export
from tenfold._plot import pyplot, save_figure
from tenfold.callbacks.cycle_momentum import innermost_optimizer

SWEEP_MODES = ("exponential", "linear")


@dataclass
class LRFinderResult:
    """The curve of a range test and the bounds it suggests.

    Attributes:
        learning_rates: rate of each recorded step.
        losses: raw training loss of each step.
        smoothed_losses: bias-corrected moving average of the losses.
        steepest_learning_rate: rate where the smoothed loss falls fastest per log-rate
            (``None`` with fewer than 3 points).
        minimum_learning_rate: rate at the lowest smoothed loss.
        initial_learning_rate, maximal_learning_rate: suggested bounds of a cyclical schedule
            (see :func:`suggest_bounds`).
        stopped_early: True when the loss diverged before the last step.
    """

    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    steepest_learning_rate: float | None = None
    minimum_learning_rate: float | None = None
    initial_learning_rate: float | None = None
    maximal_learning_rate: float | None = None
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """``(initial_learning_rate, maximal_learning_rate)``."""
        return self.initial_learning_rate, self.maximal_learning_rate

    @property
    def filtered_losses(self) -> list[float]:
        """The zero-lag smoothed losses the suggestion is read from (see :func:`zero_lag`)."""
        return [float(v) for v in zero_lag(self.losses, cap=_divergence_cap(self.losses))]

    def summary(self) -> dict[str, Any]:
        """The suggestion as a JSON-able dict."""
        return {
            "steepest_learning_rate": self.steepest_learning_rate,
            "minimum_learning_rate": self.minimum_learning_rate,
            "minimum_over_10": None if self.minimum_learning_rate is None
            else self.minimum_learning_rate / 10.0,
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "steps": len(self.learning_rates),
            "stopped_early": self.stopped_early,
        }

    def schedule(self, step_size: int, **kwargs: Any) -> Any:
        """A :class:`tenfold.schedules.CyclicalLearningRate` with the suggested bounds."""
        from tenfold.schedules import CyclicalLearningRate

        if self.initial_learning_rate is None or self.maximal_learning_rate is None:
            raise ValueError("the range test recorded too few steps to suggest bounds.")
        return CyclicalLearningRate(
            self.initial_learning_rate, self.maximal_learning_rate, step_size, **kwargs
        )

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write ``step,learning_rate,loss,smoothed_loss,filtered_loss`` rows (``smoothed``:
        the running average of the stop rule; ``filtered``: the zero-lag curve of the
        suggestion)."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "learning_rate", "loss", "smoothed_loss", "filtered_loss"])
            rows = zip(self.learning_rates, self.losses, self.smoothed_losses, self.filtered_losses)
            for i, row in enumerate(rows):
                writer.writerow([i, *(repr(float(v)) for v in row)])

    def plot(self, path: str | os.PathLike[str], *, title: str = "LR range test") -> None:
        """Save the smoothed loss against the rate (log x) with the suggestion marked."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.plot(self.learning_rates, self.losses, color="0.75", lw=0.8, label="loss")
        filtered = self.filtered_losses
        ax.plot(self.learning_rates, filtered, color="C0", label="smoothed loss (zero lag)")
        ax.set_xscale("log")
        finite = [v for v in filtered if math.isfinite(v)]
        if finite:
            low, best = min(finite), finite[0]
            ax.set_ylim(low - 0.1 * abs(best - low) - 1e-3, max(best, low) * 1.5 + 1e-3)
        if self.initial_learning_rate and self.maximal_learning_rate:
            ax.axvspan(self.initial_learning_rate, self.maximal_learning_rate, color="C2",
                       alpha=0.15, label="suggested bounds")
        if self.steepest_learning_rate:
            ax.axvline(self.steepest_learning_rate, color="C1", ls="--",
                       label=f"steepest {self.steepest_learning_rate:.2g}")
        if self.minimum_learning_rate:
            ax.axvline(self.minimum_learning_rate / 10, color="C3", ls=":",
                       label=f"minimum/10 {self.minimum_learning_rate / 10:.2g}")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(title)
        ax.legend(fontsize=8)
        save_figure(fig, path)


def smooth(losses: list[float] | np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average: ``a_t = beta a_{t-1} + (1 - beta) l_t``,
    reported as ``a_t / (1 - beta ** t)``."""
    out, avg = [], 0.0
    for t, loss in enumerate(np.asarray(losses, dtype=np.float64), start=1):
        avg = beta * avg + (1.0 - beta) * loss
        out.append(avg / (1.0 - beta**t))
    return np.asarray(out)


def zero_lag(losses: list[float] | np.ndarray, *, cap: float | None = None) -> np.ndarray:
    """The losses smoothed forward and backward (bias-corrected moving averages), so the
    curve has no lag; time constant: 1/30 of the points, between 1 and 4 steps.

    The running average of :func:`smooth`, right for the stop rule, trails the loss by about
    ``1 / (1 - beta)`` = 50 steps, which on a 100-step sweep over six decades is three
    decades of learning rate: its minimum sits far past the real one. The suggestion reads
    this zero-lag curve instead. Losses above ``cap`` (the diverged tail) are clipped to it
    first so they do not leak backwards.
    """
    x = np.asarray(losses, dtype=np.float64).copy()
    x[~np.isfinite(x)] = np.inf
    if cap is not None:
        x = np.minimum(x, cap)
    beta = 1.0 - 1.0 / min(4.0, max(1.0, len(x) / 30.0))
    forward = smooth(x, beta)
    return smooth(forward[::-1], beta)[::-1]


def _divergence_cap(losses: list[float] | np.ndarray) -> float | None:
    """Four times the median loss of the first tenth of the sweep (None without one)."""
    raw = np.asarray(losses, dtype=np.float64)
    head = raw[: max(1, len(raw) // 10)]
    head = head[np.isfinite(head)]
    return 4.0 * float(np.median(head)) if len(head) else None


def suggest_bounds(
    learning_rates: list[float] | np.ndarray, losses: list[float] | np.ndarray
) -> dict[str, float | None]:
    """Suggested rates from a range-test curve (raw per-step losses).

    The losses are first smoothed without lag (:func:`zero_lag`, the diverged tail capped at
    four times the starting loss). Then:

    * ``steepest``: the rate where ``d loss / d log(lr)`` is most negative, among the points
      before the minimum (skipping the first tenth);
    * ``minimum``: the rate at the lowest smoothed loss (``minimum / 10`` is the usual safe
      single rate);
    * bounds for a cyclical schedule: the two marks bracket the useful range (``minimum / 10``
      is the usual safe single rate; ``steepest`` is where the loss falls fastest and, on
      curves that drop just before they diverge, sits at the edge). The upper bound is
      their geometric middle, ``maximal = sqrt(steepest * minimum / 10)``, and the lower one
      ``initial = min(steepest, minimum / 10, maximal / 3)``: Smith's advice that the lower
      bound sit 3–4× below the upper one.
    """
    lrs = np.asarray(learning_rates, dtype=np.float64)
    raw = np.asarray(losses, dtype=np.float64)
    out: dict[str, float | None] = {
        "steepest": None, "minimum": None, "initial": None, "maximal": None,
    }
    cap = _divergence_cap(raw)
    if len(raw) < 3 or cap is None:
        return out
    loss = zero_lag(raw, cap=cap)
    finite = np.isfinite(loss)
    if finite.sum() < 3:
        return out
    lrs, loss = lrs[finite], loss[finite]
    best = int(np.argmin(loss))
    out["minimum"] = float(lrs[best])
    start = len(loss) // 10
    stop = max(best + 1, start + 3)
    segment_lr, segment_loss = lrs[start:stop], loss[start:stop]
    if len(segment_lr) >= 3:
        grad = np.gradient(segment_loss, np.log(segment_lr))
        out["steepest"] = float(segment_lr[int(np.argmin(grad))])
    else:
        out["steepest"] = float(lrs[best])
    low, high = sorted((out["steepest"], out["minimum"] / 10.0))
    maximal = math.sqrt(low * high)
    out["maximal"] = float(maximal)
    out["initial"] = float(min(low, maximal / 3.0))
    return out


@export("tenfold.callbacks.LRFinder")
class LRFinder(keras.callbacks.Callback):
    """Learning-rate range test: sweep the rate, record the loss, restore the model.

    During ``fit`` the rate of step ``i`` is
    ``min * (max / min) ** (i / (num_steps - 1))`` (``mode="exponential"``) or a straight
    line from ``min`` to ``max`` (``"linear"``). After each step it records the batch loss and
    its smoothed value; training stops after ``num_steps`` steps or as soon as the smoothed
    loss exceeds ``divergence_threshold`` times the best one (or is not finite; the best is
    tracked from :attr:`settle_steps` on, so one lucky early batch cannot stop it). When
    training ends the model's weights (trainable and not), the optimizer's state and its
    learning rate (float or schedule) are put back exactly as they were, so the range test
    leaves no trace. Read the curve and the suggestion from :attr:`result`.

    Args:
        min_learning_rate: float > 0. First rate of the sweep.
        max_learning_rate: float > ``min_learning_rate``. Last rate.
        num_steps: int >= 2. Steps of the sweep.
        mode: str. ``"exponential"`` (default) or ``"linear"``.
        smoothing: float in [0, 1). Moving-average factor of the loss. Defaults to 0.98.
        divergence_threshold: float > 1. Stop when the smoothed loss exceeds this multiple of
            the best one. Defaults to 4.
        restore: bool. Restore the weights and optimizer state at the end. Defaults to True.

    Example:
    >>> finder = tenfold.callbacks.LRFinder(1e-5, 1.0, num_steps=100)
    >>> model.fit(dataset.repeat(), steps_per_epoch=100, callbacks=[finder])  # doctest: +SKIP
    >>> finder.result.bounds  # doctest: +SKIP
    """

    def __init__(
        self,
        min_learning_rate: float,
        max_learning_rate: float,
        num_steps: int,
        *,
        mode: str = "exponential",
        smoothing: float = 0.98,
        divergence_threshold: float = 4.0,
        restore: bool = True,
    ) -> None:
        super().__init__()
        self.min_learning_rate = _validate.positive("min_learning_rate", min_learning_rate)
        self.max_learning_rate = _validate.positive("max_learning_rate", max_learning_rate)
        _validate.ordered("min_learning_rate", self.min_learning_rate, "max_learning_rate", self.max_learning_rate)
        self.num_steps = _validate.integer("num_steps", num_steps, low=2)
        self.mode = _validate.choice("mode", mode, SWEEP_MODES)
        self.smoothing = _validate.fraction("smoothing", smoothing, open_high=True)
        self.divergence_threshold = _validate.number("divergence_threshold", divergence_threshold, low=1, low_open=True)
        self.restore = _validate.boolean("restore", restore)
        self.result: LRFinderResult | None = None
        self._reset()

    @property
    def settle_steps(self) -> int:
        """Steps before the divergence check starts (a tenth of the sweep, 1 to 10)."""
        return min(10, max(1, self.num_steps // 10))

    def learning_rate_at(self, index: int) -> float:
        """The rate of sweep step ``index`` (0-based)."""
        t = min(index, self.num_steps - 1) / (self.num_steps - 1)
        if self.mode == "exponential":
            return self.min_learning_rate * (self.max_learning_rate / self.min_learning_rate) ** t
        return self.min_learning_rate + (self.max_learning_rate - self.min_learning_rate) * t

    def _reset(self) -> None:
        self.learning_rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed_losses: list[float] = []
        self._avg = 0.0
        self._best = math.inf
        self._stopped_early = False
        self._prev: tuple[float, float] | None = None
        self._saved: dict[str, Any] | None = None

    # -- state -------------------------------------------------------------------------

    def _optimizer_variables(self) -> list[Any]:
        variables, seen = [], set()
        opt = self.model.optimizer
        while opt is not None:
            for v in opt.variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v)
            opt = getattr(opt, "inner_optimizer", None)
        return variables

    def _loss_tracker(self) -> Any:
        for metric in self.model.metrics:
            if metric.name == "loss" and len(metric.variables) == 2:
                return metric
        return None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError("LRFinder needs a compiled model (model.compile(optimizer, loss)).")
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        inner = innermost_optimizer(optimizer)
        self._saved = {
            "weights": [np.array(v.numpy(), copy=True) for v in self.model.weights],
            "optimizer": [np.array(v.numpy(), copy=True) for v in self._optimizer_variables()],
            "inner": inner,
            "learning_rate": inner._learning_rate,
            "learning_rate_value": (
                np.array(inner._learning_rate.numpy(), copy=True)
                if isinstance(inner._learning_rate, keras.Variable) else None
            ),
        }
        original = inner._learning_rate
        if isinstance(original, keras.Variable):
            self._lr = original
        else:  # a schedule or callable: put a variable in its place for the sweep
            with keras.name_scope("lr_finder"):
                self._lr = keras.Variable(
                    self.min_learning_rate, dtype=keras.config.floatx(), trainable=False,
                    name="learning_rate",
                )
            inner._learning_rate = self._lr
            inner._untrack_variable(self._lr)
            self.model.make_train_function(force=True)
        self._tracker = self._loss_tracker()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._lr.assign(self.learning_rate_at(len(self.learning_rates)))

    def _batch_loss(self, batch: int, logs: dict[str, Any] | None) -> float:
        if self._tracker is not None:
            total, count = (float(np.asarray(v.numpy())) for v in self._tracker.variables)
            prev = self._prev
            self._prev = (total, count)
            if prev is not None and count > prev[1]:
                return (total - prev[0]) / (count - prev[1])
            return total / count if count else math.nan
        # fallback: logs hold the running mean of the epoch; undo it (equal batch sizes)
        mean = float((logs or {}).get("loss", math.nan))
        prev_mean = self._prev[0] if self._prev is not None and batch > 0 else 0.0
        self._prev = (mean, 0.0)
        return (batch + 1) * mean - batch * prev_mean

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        lr = self.learning_rate_at(len(self.learning_rates))
        loss = self._batch_loss(batch, logs)
        self.learning_rates.append(lr)
        self.losses.append(loss)
        step = len(self.losses)
        if math.isfinite(loss):
            self._avg = self.smoothing * self._avg + (1.0 - self.smoothing) * loss
            smoothed = self._avg / (1.0 - self.smoothing**step)
        else:
            smoothed = math.inf
        self.smoothed_losses.append(smoothed)
        # the first few averages rest on a handful of batches: one lucky batch there would
        # set an unreachable "best", so the best loss is tracked from the settle step on
        settled = step >= self.settle_steps
        if settled and math.isfinite(smoothed) and smoothed < self._best:
            self._best = smoothed
        diverged = not math.isfinite(smoothed) or (
            settled and smoothed > self.divergence_threshold * self._best
        )
        if diverged:
            self._stopped_early = step < self.num_steps
            self.model.stop_training = True
        elif step >= self.num_steps:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        saved = self._saved
        if saved is not None:
            inner = saved["inner"]
            if inner._learning_rate is not saved["learning_rate"]:
                inner._learning_rate = saved["learning_rate"]
                self.model.make_train_function(force=True)
            elif saved["learning_rate_value"] is not None:
                inner._learning_rate.assign(saved["learning_rate_value"])
            if self.restore:
                for v, value in zip(self.model.weights, saved["weights"]):
                    v.assign(value)
                for v, value in zip(self._optimizer_variables(), saved["optimizer"]):
                    v.assign(value)
            self._saved = None
        suggestion = suggest_bounds(self.learning_rates, self.losses)
        self.result = LRFinderResult(
            learning_rates=list(self.learning_rates),
            losses=list(self.losses),
            smoothed_losses=list(self.smoothed_losses),
            steepest_learning_rate=suggestion["steepest"],
            minimum_learning_rate=suggestion["minimum"],
            initial_learning_rate=suggestion["initial"],
            maximal_learning_rate=suggestion["maximal"],
            stopped_early=self._stopped_early,
        )

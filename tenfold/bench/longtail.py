"""Long-tailed digits: ten long-tail methods against plain cross-entropy.

The scikit-learn digits training split is sub-sampled to the CIFAR-LT exponential profile
(imbalance factor 100 and 50); validation and test splits stay balanced. Every method
trains the same small ResNet with the same optimizer, epochs and seeds; the post-hoc
methods (logit adjustment, τ-norm, cRT) start from the cross-entropy model of the same
seed. Reported: balanced accuracy (= accuracy on the balanced test set) and the mean
per-class accuracy of the many- (> 40 training examples), medium- and few-shot (< 10)
classes, mean ± std over seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold._plot import pyplot, save_figure
from tenfold._tf import tensorflow
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, interleave, ratio_row
from tenfold.callbacks import DeferredReweighting
from tenfold.data import load, long_tailed, resample
from tenfold.layers import NormedDense
from tenfold.longtail import adjust_logits, retrain_classifier, search_tau, tau_normalize
from tenfold.losses import BalancedSoftmaxLoss, ClassBalancedLoss, LDAMLoss, LogitAdjustedLoss
from tenfold.metrics import BalancedAccuracy, ShotAccuracy
from tenfold.models import small_resnet

MANY, FEW = 40, 10
METHODS = (
    "cross-entropy",
    "class-balanced softmax",
    "class-balanced focal",
    "LDAM-DRW",
    "balanced softmax",
    "logit-adjusted loss",
    "post-hoc adjustment",
    "cRT",
    "τ-norm",
    "square-root resampling",
)
GOAL_METHODS = ("balanced softmax", "logit-adjusted loss", "LDAM-DRW", "cRT")
# DRW switch points tried for LDAM-DRW (fractions of the epochs; the paper's is 0.8 of a
# step-decay schedule, where the switch meets the first learning-rate drop). With cosine
# decay the learning rate left at 0.8 is small, so earlier switches are tried too and the
# best on the balanced validation split is kept.
DRW_FRACTIONS = (0.5, 0.65, 0.8)


def _scores(logits: np.ndarray, y: np.ndarray, counts: list[int]) -> dict[str, float]:
    balanced = BalancedAccuracy(len(counts))
    shots = ShotAccuracy(counts, many=MANY, few=FEW)
    for metric in (balanced, shots):
        metric.update_state(y, logits)
    out = {"balanced": float(balanced.result())}
    out.update({k.rsplit("_", 1)[-1]: float(v) for k, v in shots.result().items()})
    return out


class _Setting:
    """One imbalance factor and seed: the data and how to train a model on it."""

    def __init__(self, imbalance: int, seed: int, epochs: int, width: int,
                 compiled: dict[str, keras.Model] | None = None) -> None:
        tf = tensorflow("the long-tail benchmark")
        splits = load("digits", seed=0)
        self.x, self.y, self.counts = long_tailed(splits.x_train, splits.y_train, imbalance, seed=seed)
        self.x_val, self.y_val = splits.x_val, splits.y_val
        self.x_test, self.y_test = splits.x_test, splits.y_test
        self.imbalance, self.seed, self.epochs, self.width = imbalance, seed, epochs, width
        self.batch = 32
        self.steps = int(np.ceil(len(self.y) / self.batch))
        self.train_ds = tf.data.Dataset.from_tensor_slices((self.x, self.y.astype("int64")))
        # compiled models of this imbalance factor, reused across seeds (see fit)
        self.compiled = {} if compiled is None else compiled

    def model(self, *, normed: bool = False) -> keras.Model:
        keras.utils.set_random_seed(self.seed)
        base = small_resnet(self.x.shape[1:], len(self.counts), width=self.width)
        if not normed:
            return base
        features = base.get_layer("pool").output
        return keras.Model(base.inputs, NormedDense(len(self.counts), name="classifier")(features))

    def fresh(self, key: str, *, normed: bool = False) -> keras.Model:
        """A model freshly initialized with this seed, reusing the object of an earlier seed."""
        model = self.model(normed=normed)
        if key not in self.compiled:
            self.compiled[key] = model
            return model
        old = self.compiled[key]
        old.set_weights(model.get_weights())
        return old

    def fit(self, key: str, loss: Callable[[], Any], *, normed: bool = False,
            sampler: str | None = None, callbacks: list[Any] | None = None) -> keras.Model:
        """Train a freshly initialized model. The class counts of an imbalance factor do not
        depend on the seed, so the compiled model of the first seed is reused: its weights
        are re-drawn with this seed and its optimizer state (step count included) zeroed,
        which equals a new model and optimizer but skips re-tracing the train step."""
        model = self.fresh(key, normed=normed)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or not optimizer.built:
            schedule = keras.optimizers.schedules.CosineDecay(3e-3, self.epochs * self.steps)
            model.compile(keras.optimizers.Adam(schedule), loss())
        else:
            for variable in optimizer.variables:
                variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        if sampler is None:
            data = self.train_ds.shuffle(len(self.y), seed=self.seed)
        else:
            data = resample(self.train_ds, self.counts, strategy=sampler, seed=self.seed)
        model.fit(data.batch(self.batch).prefetch(2), epochs=self.epochs, verbose=0,
                  callbacks=callbacks or [], shuffle=False)
        return model

    def logits(self, model: keras.Model, x: np.ndarray | None = None) -> np.ndarray:
        # one eager call: the test split is small, and it saves tracing a predict function
        out = model(self.x_test if x is None else x, training=False)
        return np.asarray(keras.ops.convert_to_numpy(out), dtype="float64")


def _run_setting(s: _Setting, log: Callable[[str], None]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    def ce() -> Any:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    c = s.counts
    out: dict[str, dict[str, float]] = {}
    extra: dict[str, Any] = {}

    model = s.fit("cross-entropy", ce)
    logits = s.logits(model)
    out["cross-entropy"] = _scores(logits, s.y_test, c)
    extra["ce_per_class"] = _per_class(logits, s.y_test, len(c))
    out["post-hoc adjustment"] = _scores(adjust_logits(logits, c, tau=1.0), s.y_test, c)
    # τ-norm and cRT work on a copy of the cross-entropy model
    post = s.fresh("post-hoc copy")
    post.set_weights(model.get_weights())
    found = search_tau(post, s.x_val, s.y_val, c, method="tau_norm")
    extra["tau_norm_tau"] = found.tau
    tau_normalize(post, tau=found.tau)
    out["τ-norm"] = _scores(s.logits(post), s.y_test, c)
    post.set_weights(model.get_weights())
    retrain_classifier(post, s.train_ds, c, epochs=_crt_epochs(s.epochs), seed=s.seed, learning_rate=0.05)
    out["cRT"] = _scores(s.logits(post), s.y_test, c)

    out["class-balanced softmax"] = _scores(
        s.logits(s.fit("cb", lambda: ClassBalancedLoss(c))), s.y_test, c)
    out["class-balanced focal"] = _scores(
        s.logits(s.fit("cb-focal", lambda: ClassBalancedLoss(c, base="focal", gamma=1.0))), s.y_test, c)
    # LDAM-DRW: the DRW switch point is chosen on the balanced validation split
    best = None
    for fraction in DRW_FRACTIONS:
        ldam = s.fit("ldam", lambda: LDAMLoss(c), normed=True,
                     callbacks=[DeferredReweighting(c, start_fraction=fraction)])
        val = _scores(s.logits(ldam, s.x_val), s.y_val, c)["balanced"]
        if best is None or val > best[0] + 1e-9:
            best = (val, fraction, s.logits(ldam))
    assert best is not None
    out["LDAM-DRW"] = _scores(best[2], s.y_test, c)
    extra["drw_fraction"] = best[1]
    bs_logits = s.logits(s.fit("bs", lambda: BalancedSoftmaxLoss(c)))
    out["balanced softmax"] = _scores(bs_logits, s.y_test, c)
    extra["bs_per_class"] = _per_class(bs_logits, s.y_test, len(c))
    out["logit-adjusted loss"] = _scores(s.logits(s.fit("la", lambda: LogitAdjustedLoss(c))), s.y_test, c)
    out["square-root resampling"] = _scores(
        s.logits(s.fit("sqrt", ce, sampler="square_root")), s.y_test, c)
    log(f"    IF={s.imbalance} seed={s.seed}: " + ", ".join(
        f"{m} {out[m]['balanced']:.3f}" for m in METHODS))
    return out, extra


def _crt_epochs(epochs: int) -> int:
    return max(5, epochs // 4)


def _per_class(logits: np.ndarray, y: np.ndarray, num_classes: int) -> list[float]:
    pred = logits.argmax(-1)
    return [float(np.mean(pred[y == k] == k)) for k in range(num_classes)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, float) * 100.0
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _cell(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return "–" if not np.isfinite(mean) else f"{mean:.1f} ± {std:.1f}"


def _table(imbalance: int, runs: list[dict[str, dict[str, float]]], counts: list[int]) -> str:
    groups = {
        g: [k for k, n in enumerate(counts) if (n > MANY if g == "many" else n < FEW if g == "few" else FEW <= n <= MANY)]
        for g in ("many", "medium", "few")
    }
    lines = [
        (f"**Imbalance factor {imbalance}** — training counts {counts}; many-shot (> {MANY}): "
         f"classes {groups['many']}, medium: {groups['medium']}, few-shot (< {FEW}): "
         f"{groups['few']}. Test set balanced. Mean ± std over {len(runs)} seeds, in %."),
        "",
        "| method | balanced acc. | Δ vs CE | many | medium | few | Δ few vs CE |",
        "|---|---|---|---|---|---|---|",
    ]
    ce_bal = _mean_std([r["cross-entropy"]["balanced"] for r in runs])[0]
    ce_few = _mean_std([r["cross-entropy"]["few"] for r in runs])[0]
    for m in METHODS:
        bal = [r[m]["balanced"] for r in runs]
        few = [r[m]["few"] for r in runs]
        lines.append(
            f"| {m} | {_cell(bal)} | {_mean_std(bal)[0] - ce_bal:+.1f} | "
            f"{_cell([r[m]['many'] for r in runs])} | {_cell([r[m]['medium'] for r in runs])} | "
            f"{_cell(few)} | {_mean_std(few)[0] - ce_few:+.1f} |"
        )
    return "\n".join(lines)


def _plot(results: dict[int, list[dict[str, dict[str, float]]]], extras: dict[int, list[dict[str, Any]]],
          out_dir: Path) -> list[str]:
    plt = pyplot()
    paths = []
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    for ax, (imbalance, runs) in zip(axes[0], sorted(results.items(), reverse=True)):
        x = np.arange(len(METHODS))
        for offset, (key, label) in enumerate(
                [("balanced", "balanced"), ("many", "many"), ("medium", "medium"), ("few", "few")]):
            stats = [_mean_std([r[m][key] for r in runs]) for m in METHODS]
            ax.bar(x + (offset - 1.5) * 0.2, [s[0] for s in stats], 0.2,
                   yerr=[s[1] for s in stats], label=label, capsize=2)
        ax.set_xticks(x, METHODS, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 118)
        ax.set_yticks(range(0, 101, 20))
        ax.set_title(f"long-tailed digits, imbalance {imbalance}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", ncol=4)
    path = out_dir / "longtail.png"
    save_figure(fig, path)
    paths.append(path)

    imbalance = max(extras)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("ce_per_class", "cross-entropy"), ("bs_per_class", "balanced softmax")):
        per = np.nanmean([e[key] for e in extras[imbalance]], axis=0) * 100
        ax.plot(range(len(per)), per, marker="o", label=label)
    ax.set_xlabel("class (0 = head … 9 = tail)")
    ax.set_ylabel("test recall (%)")
    ax.set_title(f"per-class accuracy, imbalance {imbalance}, mean over seeds")
    ax.set_xticks(range(len(per)))
    ax.grid(alpha=0.3)
    ax.legend()
    path = out_dir / "longtail_per_class.png"
    save_figure(fig, path)
    paths.append(path)
    return [str(p) for p in paths]


def _loss_overhead(setting: _Setting, repeats: int) -> dict[str, list[float]]:
    """Seconds per training epoch: plain cross-entropy vs balanced softmax (same model)."""
    data = setting.train_ds.batch(setting.batch).cache()

    def variant(loss: Any) -> Callable[[], float]:
        model = setting.model()
        model.compile(keras.optimizers.Adam(1e-3), loss)

        def go() -> float:
            start = time.perf_counter()
            model.fit(data, epochs=3, verbose=0, shuffle=False)
            return (time.perf_counter() - start) / 3

        return go

    return interleave(
        {"SparseCategoricalCrossentropy": variant(keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
         "BalancedSoftmaxLoss": variant(BalancedSoftmaxLoss(setting.counts))},
        repeats=repeats, warmup=1,
    )


@benchmark("longtail", "Long-tailed digits (IF 100/50): 10 long-tail methods vs cross-entropy, "
                       "balanced and many/medium/few-shot accuracy")
def longtail(ctx: BenchContext) -> BenchResult:
    imbalances = (100,) if ctx.quick else (100, 50)
    seeds = (0,) if ctx.quick else (0, 1, 2)
    epochs = 10 if ctx.quick else 25
    width = 16
    started = time.perf_counter()
    results: dict[int, list[dict[str, dict[str, float]]]] = {}
    extras: dict[int, list[dict[str, Any]]] = {}
    counts_of: dict[int, list[int]] = {}
    for imbalance in imbalances:
        compiled: dict[str, keras.Model] = {}
        for seed in seeds:
            setting = _Setting(imbalance, ctx.seed + seed, epochs, width, compiled)
            counts_of[imbalance] = setting.counts
            out, extra = _run_setting(setting, ctx.log)
            results.setdefault(imbalance, []).append(out)
            extras.setdefault(imbalance, []).append(extra)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plot(results, extras, ctx.out_dir)

    runs = results[100]
    rows = []
    for method in GOAL_METHODS:
        for key, goal_points in (("balanced", 3.0), ("few", 10.0)):
            samples = {
                "cross-entropy": [r["cross-entropy"][key] for r in runs],
                method: [r[method][key] for r in runs],
            }
            row = ratio_row(
                f"IF 100 {'balanced' if key == 'balanced' else 'few-shot'} accuracy, {method}",
                samples, "cross-entropy", method, unit="", lower_is_better=False,
                goal=f"≥ CE + {goal_points:.0f} points",
            )
            delta = 100.0 * (row["b_median"] - row["a_median"])
            mean_delta = _mean_std(samples[method])[0] - _mean_std(samples["cross-entropy"])[0]
            row["goal_met"] = bool(mean_delta >= goal_points)
            row["delta_points_mean"] = mean_delta
            row["delta_points_median"] = delta
            rows.append(row)
    timing = _loss_overhead(_Setting(100, ctx.seed, 1, width), repeats=3 if ctx.quick else 5)
    rows.append(ratio_row("seconds per training epoch (IF 100, small ResNet)", timing,
                          "SparseCategoricalCrossentropy", "BalancedSoftmaxLoss", unit="s"))

    tables = [_table(imb, results[imb], counts_of[imb]) for imb in sorted(results, reverse=True)]
    notes = [
        (f"Small ResNet (width {width}, blocks 1-1-1), Adam 3e-3 with cosine decay, batch 32, "
         f"{epochs} epochs, no augmentation; {len(seeds)} seeds (the seed draws the long-tailed "
         "subset and the initialization). The goal rows compare seed means (ratio columns: "
         "medians of balanced or few-shot accuracy, B/A); the goal is met when the mean gain "
         "reaches the stated points."),
        ("Post-hoc adjustment uses τ = 1 (no tuning); τ-norm picks τ ∈ {0, 0.1, …, 2} on the "
         "balanced validation split; cRT re-initializes the cross-entropy model's classifier and "
         f"retrains it alone for {_crt_epochs(epochs)} epochs on class-balanced batches (SGD "
         "0.05, cosine). LDAM-DRW: NormedDense head, max margin 0.5, scale 30, β = 0.9999; "
         "the DRW switch point is chosen per seed on the balanced validation split among "
         f"{', '.join(f'{f:g}' for f in DRW_FRACTIONS)} of the epochs (the paper's 0.8 meets "
         "its step decay; under cosine decay little learning rate is left there: a first "
         "full run with 0.8 alone gave +9.2 few-shot points at IF 100). Class-balanced "
         "losses: β = 0.9999; focal γ = 1."),
        "With 1-2 training images in the rarest classes, seeds vary a lot: read the ± columns.",
        "DRW switch point chosen on validation, per imbalance factor and seed: " + "; ".join(
            f"IF {imb}: " + ", ".join(f"{e['drw_fraction']:g}" for e in extras[imb])
            for imb in sorted(extras, reverse=True)) + ".",
        "τ chosen for τ-norm on validation, per imbalance factor and seed: " + "; ".join(
            f"IF {imb}: " + ", ".join(f"{e['tau_norm_tau']:g}" for e in extras[imb])
            for imb in sorted(extras, reverse=True)) + ".",
    ]
    return BenchResult(
        "longtail", longtail.description, rows=rows, tables=tables, plots=plots, notes=notes,
        seconds=time.perf_counter() - started, quick=ctx.quick,
    )

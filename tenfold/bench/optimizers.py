"""Benchmark: optimizer state, final loss and step time of the memory-light optimizers.

For an MLP (1024→4096→4096→10), a CNN and a small Transformer encoder block, all on the
bundled digits (upsampled to 32×32 for the MLP and CNN, 8 row tokens for the Transformer):

* state bytes of Adam, Keras' Adafactor, tenfold's Adafactor, SM3 (with and without
  momentum) and AGC-wrapped SGD, as ratios to Adam (exact, from ``state_bytes``);
* training loss on the whole training set after a fixed number of steps, same initial
  weights, same batches, each optimizer at the best rate of its learning-rate grid, as
  ratios to Adam's best (the MLP trains at width 1024 here);
* step time as a ratio to Keras' Adafactor (interleaved rounds, median).

And on models tenfold did not build (issue 15):

* state bytes of Adam, Adafactor (β₁ none / 0.9 float32 / 0.9 bfloat16 momentum) and SM3
  (momentum 0 / 0.9 float32 / 0.9 bfloat16) on ``keras.applications`` ResNet50 and
  MobileNetV2 (64×64, 10 classes) and the 6-block MultiHeadAttention encoder of the models
  benchmark (:func:`tenfold.bench.models.encoder`);
* training-set loss after 300 steps (30 of linear warm-up, then cosine decay to 0.1×), each
  of those optimizers at its best rate of a small grid, Adam included, on an encoder from the
  same builder (digit pixels as 64 tokens) and the CNN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    digit_images,
    figure,
    grouped_bars,
    hline,
    interleave,
    line,
    ratio_row,
    train_step,
    value_row,
)
from tenfold.bench.harness import batches as _batches
from tenfold.bench.models import encoder
from tenfold.optimizers import AGC, SM3, Adafactor, state_bytes

OPTIMIZERS: dict[str, Callable[[float], keras.optimizers.Optimizer]] = {
    "Adam": lambda lr: keras.optimizers.Adam(lr),
    "Keras Adafactor": lambda lr: keras.optimizers.Adafactor(lr),
    "tenfold Adafactor": lambda lr: Adafactor(lr),
    "tenfold Adafactor (β₁ 0.9)": lambda lr: Adafactor(lr, beta_1=0.9),
    "SM3 (momentum 0)": lambda lr: SM3(lr, momentum=0.0),
    "SM3 (momentum 0.9)": lambda lr: SM3(lr, momentum=0.9),
    "AGC(SGD 0.9)": lambda lr: AGC(keras.optimizers.SGD(lr, momentum=0.9), clipping=0.01,
                                   exclude=["classifier"]),
}
# Learning-rate grids, half-decade steps around each optimizer's usual values. For the
# Adafactors the value is the cap of the paper's relative step min(cap, 1/√t) (tenfold's
# default cap is 1e-2; Keras' default learning_rate is 1e-3). Every optimizer is compared at
# its best rate of the grid for each model (lowest final training loss), Adam included.
GRIDS: dict[str, tuple[float, ...]] = {
    "Adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "Keras Adafactor": (1e-3, 1e-2, 1e-1),
    "tenfold Adafactor": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
    "tenfold Adafactor (β₁ 0.9)": (3e-3, 1e-2, 3e-2),
    "SM3 (momentum 0)": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "SM3 (momentum 0.9)": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "AGC(SGD 0.9)": (1e-2, 3e-2, 1e-1),
}
# the rate each optimizer is timed and its state counted with (state does not depend on it)
DEFAULT_RATES = {"Adam": 1e-3, "Keras Adafactor": 1e-3, "tenfold Adafactor": 1e-2,
                 "tenfold Adafactor (β₁ 0.9)": 1e-2,
                 "SM3 (momentum 0)": 1e-2, "SM3 (momentum 0.9)": 1e-2, "AGC(SGD 0.9)": 3e-2}
SUBLINEAR = ("tenfold Adafactor", "SM3 (momentum 0)")
# longer runs of Adam and the sub-linear optimizers at their best 80-step rates: does the
# loss gap close with training? (training-set loss at these steps)
HORIZON = (80, 160, 320, 640)


def _mlp(width: int) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        inputs = keras.Input((1024,))
        x = keras.layers.Dense(width, activation="relu", name="hidden1")(inputs)
        x = keras.layers.Dense(width, activation="relu", name="hidden2")(x)
        return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="mlp")

    return build


def _cnn() -> keras.Model:
    inputs = keras.Input((32, 32, 1))
    x = inputs
    for i, filters in enumerate((32, 64, 128)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="cnn")


def _transformer(d_model: int = 256, heads: int = 2, ff: int = 1024) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        inputs = keras.Input((8, 8))
        x = keras.layers.Dense(d_model, name="embed")(inputs)
        attn = keras.layers.MultiHeadAttention(heads, d_model // heads, name="attention")(x, x)
        x = keras.layers.LayerNormalization(name="norm1")(x + attn)
        h = keras.layers.Dense(ff, activation="gelu", name="ff1")(x)
        h = keras.layers.Dense(d_model, name="ff2")(h)
        x = keras.layers.LayerNormalization(name="norm2")(x + h)
        x = keras.layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="transformer")

    return build


def _inputs(kind: str, x8: np.ndarray) -> np.ndarray:
    if kind == "transformer":
        return x8
    big = np.kron(x8, np.ones((4, 4), "float32"))  # 32×32
    return big.reshape(len(x8), 1024) if kind == "mlp" else big[..., None]


MOMENTUM_SLOT = ("tenfold Adafactor (β₁ 0.9)", "SM3 (momentum 0.9)")
Table = dict[str, dict[str, float]]  # model label → optimizer → value


class _Trainer:
    """One model + optimizer with the harness's compiled train step."""

    def __init__(self, build: Callable[[], keras.Model], weights: list[np.ndarray],
                 make_opt: Callable[[], keras.optimizers.Optimizer]) -> None:
        self.model = build()
        self.model.set_weights(weights)
        self.opt = make_opt()
        self.step = train_step(self.model, self.opt)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        logits = self.model.predict(x, batch_size=512, verbose=0)
        return float(self.loss_fn(y, logits))


@dataclass
class _Case:
    """One model of the comparison: ``build`` (full width) for state and step time,
    ``build_train`` for the loss runs."""

    label: str
    kind: str
    build: Callable[[], keras.Model]
    build_train: Callable[[], keras.Model]
    train_label: str


@dataclass
class _Settings:
    width: int
    train_width: int
    steps: int
    time_steps: int
    repeats: int
    grids: dict[str, tuple[float, ...]]

    @classmethod
    def of(cls, quick: bool) -> _Settings:
        # the learning-rate grids train every optimizer 3-5 times: the MLP trains narrower
        # for the loss rows; state and step time use the full width
        if quick:
            return cls(512, 512, 30, 2, 3, {n: (DEFAULT_RATES[n],) for n in OPTIMIZERS})
        return cls(4096, 1024, 80, 3, 5, GRIDS)


def _cases(s: _Settings) -> list[_Case]:
    mlp = f"MLP 1024→{s.width}→{s.width}→10"
    mlp_train = f"MLP 1024→{s.train_width}→{s.train_width}→10"
    return [
        _Case(mlp, "mlp", _mlp(s.width), _mlp(s.train_width), mlp_train),
        _Case("CNN 32-64-128", "cnn", _cnn, _cnn, "CNN 32-64-128"),
        _Case("Transformer block d=256", "transformer", _transformer(), _transformer(), "Transformer block d=256"),
    ]


def _state(case: _Case) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Rows of the sub-linear optimizers' state over Adam's (exact bytes after build)."""
    state = {}
    for name, make in OPTIMIZERS.items():
        opt = make(DEFAULT_RATES[name])
        opt.build(case.build().trainable_variables)
        state[name] = state_bytes(opt)
    goal = "≤ 0.01" if case.kind in ("mlp", "transformer") else None
    rows = [value_row(f"state bytes, {case.label}", "Adam", state["Adam"], name, state[name], unit="B",
                      goal=goal, goal_met=(lambda r: r <= 0.01) if goal else None)
            for name in SUBLINEAR]
    return rows, {n: state[n] / state["Adam"] for n in OPTIMIZERS}


def _best_of_grid(ctx: BenchContext, case: _Case, name: str, rates: tuple[float, ...],
                  weights: list[np.ndarray], data: tuple[Any, ...]) -> tuple[float, float, list[float]]:
    """(final training-set loss, rate, per-step batch losses) at the best rate of ``rates``."""
    x, y, batches = data
    best: tuple[float, float, list[float]] | None = None
    for rate in rates:
        ctx.log(f"    {case.train_label}: {name}, learning rate {rate:g}")
        trainer = _Trainer(case.build_train, weights, lambda rate=rate: OPTIMIZERS[name](rate))
        history = [float(trainer.step(bx, by)) for bx, by in batches]
        final = trainer.loss(x, y)
        if not np.isfinite(final):
            final = float("inf")
        if best is None or final < best[0]:
            best = (final, rate, history)
    assert best is not None
    return best


def _horizon(build: Callable[[], keras.Model], weights: list[np.ndarray], x: np.ndarray,
             y: np.ndarray, seed: int, rates: dict[str, float]) -> dict[str, list[float]]:
    """Training-set loss at each step of ``HORIZON`` for each optimizer at its given rate."""
    batches = _batches(x, y, HORIZON[-1], 64, seed)  # the first 80 are the grid's batches
    out: dict[str, list[float]] = {}
    for name, rate in rates.items():
        trainer = _Trainer(build, weights, lambda name=name, rate=rate: OPTIMIZERS[name](rate))
        out[name] = []
        for i, (bx, by) in enumerate(batches, 1):
            trainer.step(bx, by)
            if i in HORIZON:
                out[name].append(trainer.loss(x, y))
    return out


def _step_times(case: _Case, x: np.ndarray, y: np.ndarray, ctx: BenchContext, s: _Settings) -> dict[str, list[float]]:
    """Seconds of ``time_steps + 1`` steps of every optimizer, interleaved."""
    keras.utils.set_random_seed(ctx.seed)
    weights = case.build().get_weights()
    batches = _batches(x, y, s.time_steps, 64, 99)
    trainers = {n: _Trainer(case.build, weights, lambda make=make, n=n: make(DEFAULT_RATES[n]))
                for n, make in OPTIMIZERS.items()}

    def runner(trainer: _Trainer) -> Callable[[], None]:
        def go() -> None:
            for bx, by in batches:
                trainer.step(bx, by)
            float(trainer.step(*batches[0]))  # block until done

        return go

    return interleave({n: runner(t) for n, t in trainers.items()}, repeats=s.repeats, warmup=1)


def _measure(ctx: BenchContext, case: _Case, x8: np.ndarray, y: np.ndarray, s: _Settings) -> dict[str, Any]:
    """Everything measured on one model: state, grid losses, longer runs, step times."""
    ctx.log(f"  {case.label}")
    x = _inputs(case.kind, x8)
    rows, state = _state(case)
    # loss after a fixed number of steps, same init and batches, at each rate of the grid
    keras.utils.set_random_seed(ctx.seed)
    weights = case.build_train().get_weights()
    data = (x, y, _batches(x, y, s.steps, 64, ctx.seed))
    best = {name: _best_of_grid(ctx, case, name, s.grids[name], weights, data) for name in OPTIMIZERS}
    finals = {n: [b[0]] for n, b in best.items()}
    tuned = "" if ctx.quick else ", best rate of each"
    rows += [ratio_row(f"final loss after {s.steps} steps{tuned}, {case.train_label}", finals, "Adam",
                       name, unit="", goal="≤ 1.05", goal_met=lambda r: r <= 1.05) for name in SUBLINEAR]
    horizon = None
    if not ctx.quick:
        ctx.log(f"    {case.train_label}: {HORIZON[-1]} steps of Adam and the sub-linear optimizers")
        horizon = _horizon(case.build_train, weights, x, y, ctx.seed, {n: best[n][1] for n in ("Adam", *SUBLINEAR)})
    times = _step_times(case, x, y, ctx, s)
    rows.append(ratio_row(f"step time, {case.label}", times, "Keras Adafactor", "tenfold Adafactor",
                          unit="s", goal="≤ 1.1", goal_met=lambda r: r <= 1.1))
    base = np.asarray(times["Keras Adafactor"])
    return {
        "kind": case.kind, "train_label": case.train_label, "rows": rows, "state": state, "loss": {n: b[0] for n, b in best.items()},
        "rates": {n: b[1] for n, b in best.items()},
        "curves": {f"{n}, lr {b[1]:g}": b[2] for n, b in best.items()}, "horizon": horizon,
        "time": {n: float(np.median(np.asarray(t) / base)) for n, t in times.items()},
        "adam_step": float(np.median(times["Adam"])) / (s.time_steps + 1),
    }


def _table(title: str, data: Table, fmt: str) -> str:
    names = list(OPTIMIZERS)
    lines = [f"**{title}**", "", "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, row in data.items():
        lines.append(f"| {label} | " + " | ".join(format(row[n], fmt) for n in names) + " |")
    return "\n".join(lines)


def _horizon_table(horizon: dict[str, dict[str, list[float]]]) -> str:
    lines = ["**Longer runs: training-set loss / Adam's at more steps** (each at its best "
             "80-step rate; Adam's own loss in brackets)", "",
             "| model | optimizer | " + " | ".join(f"{k} steps" for k in HORIZON) + " |",
             "|---|---|" + "---|" * len(HORIZON)]
    for label, by_opt in horizon.items():
        adam = by_opt["Adam"]
        lines.append(f"| {label} | Adam | " + " | ".join(f"1 ({a:.3g})" for a in adam) + " |")
        for name in SUBLINEAR:
            lines.append(f"| {label} | {name} | "
                         + " | ".join(f"{v / a:.2f}" for v, a in zip(by_opt[name], adam)) + " |")
    return "\n".join(lines)


def _tables(m: dict[str, dict[str, Any]], s: _Settings) -> list[str]:
    """The markdown tables from the measurements ``m`` (by model label)."""
    train = {c["train_label"]: c for c in m.values()}
    tables = [
        _table("Optimizer state / Adam's (bytes from `state_bytes`, exact)", {k: c["state"] for k, c in m.items()}, ".4f"),
        _table(f"Training-set loss after {s.steps} steps at each optimizer's best rate of its grid "
               "(batch 64, same initial weights and batches)", {k: c["loss"] for k, c in train.items()}, ".4f"),
        _table("Best learning rate of the grid", {k: c["rates"] for k, c in train.items()}, "g"),
    ]
    horizon = {k: c["horizon"] for k, c in train.items() if c["horizon"] is not None}
    if horizon:
        tables.append(_horizon_table(horizon))
    tables.append(_table("Step time / Keras Adafactor's (interleaved, median)", {k: c["time"] for k, c in m.items()}, ".3f"))
    return tables


def _span(values: list[float], fmt: str = ".2g") -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def _horizon_note(m: dict[str, dict[str, Any]]) -> str:
    """The longer runs in one sentence per optimizer, from the horizon table's numbers."""
    parts = []
    for name in SUBLINEAR:
        per_model = []
        for c in m.values():
            adam, values = c["horizon"]["Adam"], c["horizon"][name]
            per_model.append(f"{c['train_label']} {values[0] / adam[0]:.2f} → {values[-1] / adam[-1]:.2f}")
        parts.append(f"{name}: " + "; ".join(per_model))
    return (f"Longer runs (the last table; rates not re-tuned for the longer horizon), loss / Adam's at "
            f"{HORIZON[0]} → {HORIZON[-1]} steps: " + ". ".join(parts) + ". Ratios of near-zero losses "
            "swing with Adam's loss spikes. SM3 without momentum is an AdaGrad: its accumulators "
            "only grow, so its step keeps shrinking with training.")


def _notes(m: dict[str, dict[str, Any]], s: _Settings) -> list[str]:
    mlp = next(c for c in m.values() if c["kind"] == "mlp")
    cnn = next(c for c in m.values() if c["kind"] == "cnn")
    grid_sizes = [len(r) for r in GRIDS.values()]
    momentum = MOMENTUM_SLOT[0]
    notes = [
        "Learning rates: every optimizer runs each rate of its grid ("
        + "; ".join(f"{n}: {', '.join(f'{r:g}' for r in GRIDS[n])}" for n in GRIDS)
        + ") and is compared at its best (lowest final loss), Adam included. For the "
        "Adafactors the rate is the cap of the relative step min(cap, 1/√t); tenfold's "
        "multiplies it by the parameter scale (the paper's defaults otherwise). AGC: "
        "λ = 0.01, classifier excluded. State and step time use "
        + ", ".join(f"{n} {DEFAULT_RATES[n]:g}" for n in DEFAULT_RATES) + ".",
        f"One seed; the MLP trains at width {s.train_width} for the loss rows (a {s.width}-wide step "
        f"of Adam takes {mlp['adam_step']:.2g} s here, and the grids train each optimizer "
        f"{min(grid_sizes)}-{max(grid_sizes)} times); its state and step-time rows use width {s.width}.",
        f"The CNN has no state goal: its conv kernels are small (3×3×64×128 at most), and "
        f"tenfold Adafactor keeps {cnn['state']['tenfold Adafactor']:.3g}× Adam's state there "
        "(which axes it factors: `tenfold.optimizers.Adafactor`, `factoring`).",
        f"SM3 with momentum 0.9 and Adafactor with β₁ = 0.9 keep a full-size momentum slot "
        f"({_span([c['state'][n] for c in m.values() for n in MOMENTUM_SLOT])}× Adam's state); only "
        "the momentum-free ones are sub-linear. AGC(SGD) state is SGD's momentum slot. With momentum, "
        f"Adafactor's {s.steps}-step loss / Adam's: "
        + ", ".join(f"{c['train_label']} {c['loss'][momentum] / c['loss']['Adam']:.2f}×" for c in m.values())
        + ".",
    ]
    if all(c["horizon"] is not None for c in m.values()):
        notes.append(_horizon_note(m))
    return notes


def _plot_state(ctx: BenchContext, m: dict[str, dict[str, Any]]) -> str:
    names = [n for n in OPTIMIZERS if n != "Adam"]
    models = list(m)
    panel = Panel(grouped_bars({n: [m[k]["state"][n] for k in models] for n in names})
                  + [hline(0.01, "goal 0.01× (sub-linear)", color="k", ls="--", lw=1)],
                  title="Optimizer state relative to Adam", ylabel="optimizer state / Adam's",
                  yscale="log", xticks=(np.arange(len(models)), models), legend={"fontsize": 7, "ncol": 2})
    return figure(ctx.out_dir / "optimizers_state.png", [panel], size=(8, 4))


def _plot_curves(ctx: BenchContext, m: dict[str, dict[str, Any]]) -> str:
    panels = []
    for c in m.values():
        series = [line(np.arange(len(v) - 9 if len(v) > 20 else len(v)),
                       np.convolve(v, np.ones(10) / 10, mode="valid") if len(v) > 20 else v, name, lw=1.2)
                  for name, v in c["curves"].items()]
        panels.append(Panel(series, title=c["train_label"], xlabel="step", yscale="log", legend=None))
    panels[0].ylabel = "training loss (batch, smoothed)"
    panels[-1].legend = {"fontsize": 7}
    return figure(ctx.out_dir / "optimizers_loss.png", panels, size=(4 * len(panels), 3.4))


# --- models tenfold did not build: momentum that stays small (issue 15) ---------------------

MOMENTUM_OPTIMIZERS: dict[str, Callable[[Any], keras.optimizers.Optimizer]] = {
    "Adam": lambda lr: keras.optimizers.Adam(lr),
    "Adafactor (β₁ none)": lambda lr: Adafactor(lr),
    "Adafactor (β₁ 0.9, float32)": lambda lr: Adafactor(lr, beta_1=0.9),
    "Adafactor (β₁ 0.9, bfloat16)": lambda lr: Adafactor(lr, beta_1=0.9, momentum_dtype="bfloat16"),
    "SM3 (momentum 0)": lambda lr: SM3(lr, momentum=0.0),
    "SM3 (momentum 0.9, float32)": lambda lr: SM3(lr, momentum=0.9),
    "SM3 (momentum 0.9, bfloat16)": lambda lr: SM3(lr, momentum=0.9, momentum_dtype="bfloat16"),
}
BF16_ADAFACTOR = "Adafactor (β₁ 0.9, bfloat16)"
FREE_ADAFACTOR = "Adafactor (β₁ none)"
# peak rates after the warm-up (for the Adafactors with a schedule: the absolute step, times
# the parameter scale); half-decade steps, wide enough that no best rate of the 300-step CNN
# runs sits at an end of its grid (a first grid, 3e-3..3e-2, had Adam and all the others there)
WARMUP_GRIDS: dict[str, tuple[float, ...]] = {
    "Adam": (1e-3, 3e-3, 1e-2),
    **{n: (1e-2, 3e-2, 1e-1, 3e-1) for n in MOMENTUM_OPTIMIZERS if n.startswith("Adafactor")},
    **{n: (1e-2, 3e-2, 1e-1) for n in MOMENTUM_OPTIMIZERS if n.startswith("SM3")},
}
WARMUP_QUICK_RATES = {"Adam": 1e-3, **{n: 1e-2 for n in MOMENTUM_OPTIMIZERS if n != "Adam"}}


@dataclass
class _Warmup:
    """The loss runs of the momentum comparison: steps, warm-up steps, batch, the grids and
    the training encoder's size (blocks, d, heads)."""

    steps: int
    warmup: int
    batch: int
    grids: dict[str, tuple[float, ...]]
    encoder: tuple[int, int, int]

    @classmethod
    def of(cls, quick: bool) -> _Warmup:
        if quick:
            return cls(60, 6, 64, {n: (r,) for n, r in WARMUP_QUICK_RATES.items()}, (1, 64, 2))
        return cls(300, 30, 64, WARMUP_GRIDS, (2, 128, 4))


def _state_models() -> dict[str, Callable[[], keras.Model]]:
    """The models whose optimizer state is counted (full size in both modes: building is cheap)."""
    return {
        "ResNet50 64×64": lambda: keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10),
        "MobileNetV2 64×64": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3),
                                                                     classes=10),
        "encoder 6×MHA d=256": lambda: encoder(6, 256, seq=128),
    }


def _state_goal(label: str, name: str) -> dict[str, Any]:
    if name == BF16_ADAFACTOR and not label.startswith("MobileNetV2"):
        return {"goal": "≤ 0.26", "goal_met": lambda r: r <= 0.26}
    if name == FREE_ADAFACTOR and label.startswith("encoder"):
        return {"goal": "≤ 0.02", "goal_met": lambda r: r <= 0.02}
    return {}


def _momentum_state(ctx: BenchContext) -> tuple[list[dict[str, Any]], Table]:
    """Rows of each optimizer's state over Adam's on the models, and the ratio table."""
    rows, ratios = [], {}
    for label, build in _state_models().items():
        ctx.log(f"  state bytes: {label}")
        variables = build().trainable_variables
        state = {}
        for name, make in MOMENTUM_OPTIMIZERS.items():
            opt = make(1e-3)
            opt.build(variables)
            state[name] = state_bytes(opt)
        rows += [value_row(f"state bytes, {label}", "Adam", state["Adam"], name, state[name], unit="B",
                           **_state_goal(label, name)) for name in MOMENTUM_OPTIMIZERS if name != "Adam"]
        ratios[label] = {n: state[n] / state["Adam"] for n in MOMENTUM_OPTIMIZERS}
    return rows, ratios


def _warm_schedule(rate: float, w: _Warmup) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 to ``rate`` over ``w.warmup`` steps, then cosine decay to 0.1×."""
    return keras.optimizers.schedules.CosineDecay(0.0, w.steps - w.warmup, alpha=0.1, warmup_target=rate,
                                                  warmup_steps=w.warmup)


def _tokens(x8: np.ndarray) -> np.ndarray:
    """Digit images as 64 tokens: each pixel's grey level 0..16 (the data set's own levels)."""
    return np.rint(x8.reshape(len(x8), 64) * 16).astype("int32")


def _warm_cases(w: _Warmup) -> dict[str, tuple[Callable[[], keras.Model], str]]:
    blocks, d, heads = w.encoder
    return {f"encoder {blocks}×MHA d={d} (64 tokens)": (lambda: encoder(blocks, d, heads=heads, seq=64, vocab=17),
                                                        "tokens"),
            "CNN 32-64-128": (_cnn, "cnn")}


def _warm_best(ctx: BenchContext, label: str, build: Callable[[], keras.Model], w: _Warmup,
               data: tuple[Any, ...]) -> dict[str, tuple[float, float]]:
    """(final training-set loss, rate) of each optimizer at its best rate of the grid."""
    x, y, weights, batches = data
    best: dict[str, tuple[float, float]] = {}
    for name, rates in w.grids.items():
        for rate in rates:
            ctx.log(f"    {label}: {name}, peak rate {rate:g}")
            trainer = _Trainer(build, weights, lambda n=name, r=rate: MOMENTUM_OPTIMIZERS[n](_warm_schedule(r, w)))
            for bx, by in batches:
                trainer.step(bx, by)
            final = trainer.loss(x, y)
            final = final if np.isfinite(final) else float("inf")
            if name not in best or final < best[name][0]:
                best[name] = (final, rate)
    return best


def _momentum_loss(ctx: BenchContext, x8: np.ndarray, y: np.ndarray, w: _Warmup) -> tuple[list[dict[str, Any]], dict]:
    """Rows of the final loss over Adam's, and the best (loss, rate) by model and optimizer."""
    rows, best = [], {}
    for label, (build, kind) in _warm_cases(w).items():
        x = _tokens(x8) if kind == "tokens" else _inputs(kind, x8)
        keras.utils.set_random_seed(ctx.seed)
        weights = build().get_weights()
        data = (x, y, weights, _batches(x, y, w.steps, w.batch, ctx.seed))
        best[label] = _warm_best(ctx, label, build, w, data)
        finals = {n: [b[0]] for n, b in best[label].items()}
        metric = f"final loss after {w.steps} steps ({w.warmup} warm-up), best rate of each, {label}"
        rows += [ratio_row(metric, finals, "Adam", name, unit="",
                           **({"goal": "≤ 1.05", "goal_met": lambda r: r <= 1.05} if name == BF16_ADAFACTOR else {}))
                 for name in MOMENTUM_OPTIMIZERS if name != "Adam"]
    return rows, best


def _momentum_tables(state: Table, best: dict, w: _Warmup) -> list[str]:
    names = list(MOMENTUM_OPTIMIZERS)
    head = ["| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines = ["**Optimizer state / Adam's on keras.applications models and the MHA encoder**", "", *head]
    lines += [f"| {label} | " + " | ".join(f"{r[n]:.4f}" for n in names) + " |" for label, r in state.items()]
    loss = [f"**Training-set loss after {w.steps} steps ({w.warmup} warm-up, cosine decay), best peak rate of "
            "each (in brackets)**", "", *head]
    loss += [f"| {label} | " + " | ".join(f"{b[n][0]:.4f} ({b[n][1]:g})" for n in names) + " |"
             for label, b in best.items()]
    return ["\n".join(lines), "\n".join(loss)]


def _momentum_notes(state: Table, best: dict, w: _Warmup) -> list[str]:
    """Sentences computed from the two tables."""
    bf16, f32 = BF16_ADAFACTOR, "Adafactor (β₁ 0.9, float32)"
    saving = ", ".join(f"{label} {r[f32]:.3f}× → {r[bf16]:.3f}×" for label, r in state.items())
    loss = ", ".join(f"{label} {b[bf16][0] / b['Adam'][0]:.3f}× (float32 momentum {b[f32][0] / b['Adam'][0]:.3f}×)"
                     for label, b in best.items())
    grids = "; ".join(f"{n}: {', '.join(f'{r:g}' for r in rates)}" for n, rates in w.grids.items())
    edges = [f"{label} {n} ({b[n][1]:g})" for label, b in best.items() for n in b
             if len(w.grids[n]) > 1 and b[n][1] in (min(w.grids[n]), max(w.grids[n]))]
    edge = f" Best rates at an end of their grid (a better one may lie beyond): {', '.join(edges)}." if edges else ""
    return [
        f"bfloat16 momentum halves the momentum slot: Adafactor with β₁ = 0.9 keeps (float32 → bfloat16) {saving} "
        f"of Adam's state. Its {w.steps}-step loss / Adam's: {loss}.",
        f"Loss runs: batch {w.batch}, same initial weights and batches for every optimizer, peak rates {grids}. "
        f"The encoder of the loss runs has {w.encoder[0]} block{'s' if w.encoder[0] > 1 else ''} of "
        f"d={w.encoder[1]} ({w.encoder[2]} heads; the same builder as the 6-block state row, smaller so that "
        "every grid trains on a CPU)." + edge,
    ]


def _plot_momentum(ctx: BenchContext, state: Table, best: dict) -> str:
    """Left: each optimizer's state over Adam's per model (log scale, the goals as lines);
    right: its final loss over Adam's per loss-run model (the legend)."""
    names = [n for n in MOMENTUM_OPTIMIZERS if n != "Adam"]
    models, runs = list(state), list(best)
    left = Panel(grouped_bars({n: [state[k][n] for k in models] for n in names})
                 + [hline(0.26, color="k", ls="--", lw=1), hline(0.02, color="grey", ls=":", lw=1)],
                 title="Optimizer state / Adam's (goals: -- 0.26×, ·· 0.02×)", ylabel="state / Adam's",
                 yscale="log", xticks=(np.arange(len(models)), models, {"fontsize": 7}), legend=None)
    losses = {n: [best[k][n][0] / best[k]["Adam"][0] for k in runs] for n in names}
    top = max((r for v in losses.values() for r in v if np.isfinite(r)), default=1.0)
    right = Panel(grouped_bars(losses) + [hline(1.05, "goal 1.05× (bfloat16 momentum)", color="k", ls="--", lw=1)],
                  title="Final loss / Adam's (best rate of each)", ylabel="loss / Adam's",
                  ylim=(0, 1.7 * top), xticks=(np.arange(len(runs)), runs, {"fontsize": 7}),
                  legend={"fontsize": 7, "ncol": 2, "loc": "upper center"})
    return figure(ctx.out_dir / "momentum.png", [left, right], size=(11, 4.2))


@benchmark(
    "momentum",
    "momentum that stays small, on ResNet50, MobileNetV2 and an MHA encoder: bfloat16-momentum "
    "Adafactor state ≤ 0.26× Adam, its 300-step loss ≤ 1.05× Adam's on the encoder and the small "
    "CNN, momentum-free Adafactor state ≤ 0.02× on the encoder",
)
def run_momentum(ctx: BenchContext) -> BenchResult:
    """The momentum comparison: state bytes on the models, loss runs at each optimizer's best
    rate (no timing: the figures do not depend on the machine's load)."""
    w = _Warmup.of(ctx.quick)
    keras.utils.set_random_seed(ctx.seed)
    x8, y = digit_images()
    state_rows, state = _momentum_state(ctx)
    loss_rows, best = _momentum_loss(ctx, x8, y, w)
    return BenchResult(rows=state_rows + loss_rows, tables=_momentum_tables(state, best, w),
                       plots=[_plot_momentum(ctx, state, best)], notes=_momentum_notes(state, best, w))


@benchmark(
    "optimizers",
    "optimizer state / Adam (goal ≤ 0.01 for Adafactor and SM3 on MLP and Transformer), "
    "final loss / Adam (goal ≤ 1.05), step time / Keras Adafactor (goal ≤ 1.1); the momentum "
    "comparison on keras.applications models is `tenfold bench momentum`",
)
def run(ctx: BenchContext) -> BenchResult:
    settings = _Settings.of(ctx.quick)
    keras.utils.set_random_seed(ctx.seed)
    x8, y = digit_images()
    measured = {case.label: _measure(ctx, case, x8, y, settings) for case in _cases(settings)}
    return BenchResult(
        rows=[row for c in measured.values() for row in c["rows"]],
        tables=_tables(measured, settings),
        plots=[_plot_state(ctx, measured), _plot_curves(ctx, measured)],
        notes=_notes(measured, settings),
    )

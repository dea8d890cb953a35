"""Benchmark ``models``: recompute, deploy and layer conversion on models tenfold did not build.

``keras.applications`` ResNet50, MobileNetV2, EfficientNetB0 and ConvNeXtTiny (``weights=None``,
64×64 inputs, batch 16), a 6-block ``MultiHeadAttention`` encoder (d=256, sequence 128,
batch 16; :func:`encoder`, shared with the optimizers benchmark) and, when ``keras_hub``
imports, KerasHub's ``BertBackbone`` and ``ResNetBackbone`` built from configs (no preset, no
download):

* **remat** — peak memory (``tenfold.remat.peak_memory``, graph mode) and step time of one
  training step of ``tenfold.remat.apply(model, policy)`` against the plain model, per policy.
  Goals: ``"sqrt"`` saves ≥ 50 % of the peak on ResNet50 and ≥ 65 % on the encoder, at
  ≤ 1.35× step time.
* **deploy** — ``tenfold.reparam.deploy`` (BN statistics randomized first, so the fold is not
  the identity): BatchNormalization layers folded out of all, the largest relative
  difference to the unfused model in float32 (``tenfold.reparam.check``), and inference time
  deployed / unfused. Goals on ResNet50 (53/53), MobileNetV2 (52/52), EfficientNetB0 (49/49):
  all folded, relative difference ≤ 1e-5, inference ≤ 0.92×.
* **convert** — ``deploy(convert(ResNet50, conv="acnet"))`` against ``deploy(ResNet50)``:
  inference time (goal 0.95–1.05: the deployed ACNet *is* a plain ResNet50) and parameters.

``--quick`` uses 32×32 inputs, batch 8, a 2-block encoder (d=128, sequence 32) and fewer
rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import remat, reparam
from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    figure,
    grouped_bars,
    hline,
    interleave,
    ratio_row,
    train_step,
    value_row,
)
from tenfold.testing import randomize_norms

MIB = 2**20
KERAS_HUB_INSTALL = (
    "pip install --no-deps keras-hub regex rich kagglehub kagglesdk==0.1.28 sentencepiece tokenizers tqdm"
)
# BatchNormalization layers of the keras.applications models: the deploy goals
EXPECTED_NORMS = {"ResNet50": 53, "MobileNetV2": 52, "EfficientNetB0": 49}
REMAT_GOALS = {"ResNet50": 0.50, "encoder": 0.65}  # fraction of the plain peak saved by "sqrt"
STEP_TIME_GOAL = 1.35
DEPLOY_TIME_GOAL = 0.92
RELATIVE_TOLERANCE = 1e-5


def encoder(num_layers: int = 6, d: int = 256, *, heads: int = 8, seq: int = 128, vocab: int = 1000,
            classes: int = 10, dropout: float = 0.1) -> keras.Model:
    """A post-norm Transformer encoder from Keras layers: token and position embeddings,
    ``num_layers`` blocks of ``MultiHeadAttention`` (``heads`` heads of ``d // heads``) and a
    4·d GELU feed-forward, mean pooling and a ``classifier`` Dense. Input: ``(seq,)`` int32
    token ids below ``vocab``."""
    tokens = keras.Input((seq,), dtype="int32", name="tokens")
    positions = ops.zeros_like(tokens) + ops.arange(seq, dtype="int32")
    h = keras.layers.Embedding(vocab, d, name="token_embedding")(tokens)
    h = h + keras.layers.Embedding(seq, d, name="position_embedding")(positions)
    for i in range(num_layers):
        a = keras.layers.MultiHeadAttention(heads, d // heads, dropout=dropout, name=f"block{i}_attention")(h, h)
        h = keras.layers.LayerNormalization(name=f"block{i}_norm1")(h + a)
        f = keras.layers.Dense(4 * d, activation="gelu", name=f"block{i}_ff1")(h)
        f = keras.layers.Dense(d, name=f"block{i}_ff2")(keras.layers.Dropout(dropout)(f))
        h = keras.layers.LayerNormalization(name=f"block{i}_norm2")(h + f)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(tokens, keras.layers.Dense(classes, name="classifier")(pooled), name="encoder")


@dataclass
class _Case:
    """One model: ``make()`` builds it, ``inputs`` is one batch, ``loss`` the training loss
    (None: sparse cross-entropy on the logits against ``labels``)."""

    label: str
    make: Callable[[], keras.Model]
    inputs: Any
    labels: Any = None
    loss: Any = None


def _squares(_: Any, outputs: Any) -> Any:
    """A loss for backbones without a head: the mean square of every output."""
    return sum(ops.mean(ops.square(ops.cast(o, "float32"))) for o in keras.tree.flatten(outputs))


def _applications(size: int, batch: int, rng: np.random.Generator) -> list[_Case]:
    x = rng.uniform(0, 255, size=(batch, size, size, 3)).astype("float32")
    y = (np.arange(batch) % 10).astype("int32")
    cases = []
    for name in ("ResNet50", "MobileNetV2", "EfficientNetB0", "ConvNeXtTiny"):
        constructor = getattr(keras.applications, name)

        def make(c: Any = constructor) -> keras.Model:
            return c(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)

        cases.append(_Case(name, make, x, y))
    return cases


def _hub(quick: bool, size: int, batch: int, rng: np.random.Generator) -> tuple[list[_Case], str | None]:
    """KerasHub's BertBackbone and ResNetBackbone from configs, or a note naming the install."""
    try:
        import keras_hub
    except ImportError:
        return [], f"KerasHub rows skipped: `keras_hub` does not import here (install it with `{KERAS_HUB_INSTALL}`)."
    seq = 32 if quick else 128
    tokens = {"token_ids": rng.integers(0, 1000, size=(batch, seq)).astype("int32"),
              "segment_ids": np.zeros((batch, seq), "int32"), "padding_mask": np.ones((batch, seq), "int32")}

    def bert() -> keras.Model:
        return keras_hub.models.BertBackbone(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=128,
                                             intermediate_dim=512, max_sequence_length=seq)

    def resnet() -> keras.Model:  # the ResNet18 layout
        return keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=[2, 2, 2, 2], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
            use_pre_activation=False, image_shape=(size, size, 3))
    images = rng.uniform(0, 1, size=(batch, size, size, 3)).astype("float32")
    return [_Case("KerasHub BertBackbone (2 layers, hidden 128)", bert, tokens, loss=_squares),
            _Case("KerasHub ResNetBackbone (ResNet18 config)", resnet, images, loss=_squares)], None


def model_cases(ctx: BenchContext) -> tuple[list[_Case], list[str]]:
    """The models of this benchmark (also probed by ``tenfold bench auto``) and notes on
    those left out."""
    size, batch = (32, 8) if ctx.quick else (64, 16)
    rng = np.random.default_rng(ctx.seed)
    cases = _applications(size, batch, rng)
    layers, d, seq = (2, 128, 32) if ctx.quick else (6, 256, 128)
    tokens = rng.integers(0, 1000, size=(batch, seq)).astype("int32")
    cases.append(_Case(f"encoder ({layers}×MHA, d={d}, sequence {seq})",
                       lambda: encoder(layers, d, seq=seq), tokens, (np.arange(batch) % 10).astype("int32")))
    hub, note = _hub(ctx.quick, size, batch, rng)
    return cases + hub, [note] if note else []


def _tensors(value: Any) -> Any:
    tf = tensorflow("the models benchmark")
    return keras.tree.map_structure(tf.constant, value)


def _peak(step: Callable[[Any, Any], Any], x: Any, y: Any) -> int:
    """Median peak bytes of two training steps (traced outside the measured window)."""
    step(x, y)
    return int(np.median([remat.peak_memory(lambda: step(x, y)) for _ in range(2)]))


def _runner(step: Callable[[Any, Any], Any], x: Any, y: Any) -> Callable[[], None]:
    def run() -> None:
        float(step(x, y))  # blocks until the step is done

    return run


def _remat(case: _Case, ctx: BenchContext, policies: tuple[Any, ...]) -> dict[str, Any]:
    """Peak memory and interleaved step times of the plain model and each policy."""
    x = _tensors(case.inputs)
    y = _tensors(case.labels if case.labels is not None else np.zeros(1, "int32"))
    keras.utils.set_random_seed(ctx.seed)
    model = case.make()
    steps = {"plain": train_step(model, keras.optimizers.SGD(0.01), case.loss)}
    segments = {}
    for policy in policies:
        wrapped = remat.apply(model, policy)
        segments[str(policy)] = sum(isinstance(layer, remat.Recompute) for layer in wrapped.layers)
        steps[str(policy)] = train_step(wrapped, keras.optimizers.SGD(0.01), case.loss)
    memory = {name: _peak(step, x, y) for name, step in steps.items()}
    timed = interleave({name: _runner(step, x, y) for name, step in steps.items()},
                       repeats=3 if ctx.quick else 7, warmup=1)
    return {"model": model, "memory": memory, "timed": timed, "segments": segments}


def _remat_rows(label: str, key: str, m: dict[str, Any], policies: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = []
    for policy in policies:
        name = str(policy)
        saved = REMAT_GOALS.get(key) if name == "sqrt" else None
        goal = dict(goal=f"saves >= {saved:.0%} (<= {1 - saved:.2f})", goal_met=lambda r, s=saved: r <= 1 - s) \
            if saved is not None else {}
        rows.append(value_row(f"{label}: peak memory, remat {name} ({m['segments'][name]} segments)", "plain",
                              m["memory"]["plain"] / MIB, f"remat {name}", m["memory"][name] / MIB,
                              unit="MiB", repeats=2, **goal))
        timing = dict(goal=f"<= {STEP_TIME_GOAL}", goal_met=lambda r: r <= STEP_TIME_GOAL) if saved is not None else {}
        rows.append(ratio_row(f"{label}: step time, remat {name}", m["timed"], "plain", name, unit="s", **timing))
    return rows


def _predictor(model: keras.Model, x: Any, calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            model.predict_on_batch(x)

    return run


def _deploy(case: _Case, model: keras.Model, ctx: BenchContext) -> dict[str, Any]:
    """Fold check and interleaved inference time of ``deploy(model)`` against ``model``."""
    randomize_norms(model, ctx.seed, shift=0.2)
    deployed = reparam.deploy(model)
    facts = reparam.check(model, deployed, case.inputs)
    calls, repeats = (2, 5) if ctx.quick else (3, 15)
    timed = interleave({"unfused": _predictor(model, case.inputs, calls),
                        "deployed": _predictor(deployed, case.inputs, calls)}, repeats=repeats, warmup=2)
    return {"facts": facts, "timed": timed, "deployed": deployed}


def _deploy_rows(label: str, key: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    facts, expected = d["facts"], EXPECTED_NORMS.get(key)
    total, folded = facts["bn_total"], facts["bn_folded"]
    rows = []
    if total:
        goal = dict(goal=f"all folded ({expected}/{expected})",
                    goal_met=lambda r: folded == total == expected) if expected else {}
        rows.append(value_row(f"{label}: BatchNormalization layers folded by deploy", "in the model", total,
                              "folded", folded, unit="layers", lower_is_better=False, **goal))
    judged = expected is not None
    rows.append(value_row(f"{label}: deployed vs unfused, max relative difference (÷ 1e-5)", "tolerance",
                          RELATIVE_TOLERANCE, "deployed", facts["max_relative_difference"],
                          **(dict(goal="<= 1 (<= 1e-5)", goal_met=lambda r: r <= 1) if judged else {})))
    rows.append(ratio_row(f"{label}: inference time, deployed vs unfused", d["timed"], "unfused", "deployed",
                          **(dict(goal=f"<= {DEPLOY_TIME_GOAL}", goal_met=lambda r: r <= DEPLOY_TIME_GOAL)
                             if judged else {})))
    return rows


def _acnet(model: keras.Model, deployed: keras.Model, x: Any, ctx: BenchContext) -> tuple[dict[str, Any], str]:
    """``deploy(convert(model, conv="acnet"))`` against ``deploy(model)``: the row and a table."""
    converted = reparam.convert(model, conv="acnet")
    randomize_norms(converted, ctx.seed + 1, shift=0.2)
    fused = reparam.deploy(converted)
    facts = reparam.check(converted, fused, x)
    calls, repeats = (2, 5) if ctx.quick else (3, 21)
    timed = interleave({"ResNet50, deployed": _predictor(deployed, x, calls),
                        "ACNet ResNet50, deployed": _predictor(fused, x, calls)}, repeats=repeats, warmup=2)
    row = ratio_row("ResNet50 converted to ACNet, deployed vs plain ResNet50 deployed: inference time", timed,
                    "ResNet50, deployed", "ACNet ResNet50, deployed", goal="0.95–1.05",
                    goal_met=lambda r: 0.95 <= r <= 1.05)
    blocks = sum(type(layer).__name__ == "ACBlock" for layer in converted.layers)
    table = (
        "| ACNet conversion of ResNet50 | value |\n|---|---|\n"
        f"| Conv2D layers converted to ACBlock | {blocks} |\n"
        f"| parameters: converted → deployed (plain ResNet50 deployed) | {reparam.parameter_count(converted):,} → "
        f"{reparam.parameter_count(fused):,} ({reparam.parameter_count(deployed):,}) |\n"
        f"| deployed vs converted, max relative difference | {facts['max_relative_difference']:.3g} |\n"
        f"| layer classes of the two deployed models equal | "
        f"{sorted({type(x).__name__ for x in fused.layers}) == sorted({type(x).__name__ for x in deployed.layers})} |"
    )
    return row, table


def _key(label: str) -> str:
    return "encoder" if label.startswith("encoder") else label.split(" ")[0]


def _measure(case: _Case, ctx: BenchContext, policies: tuple[Any, ...]) -> dict[str, Any]:
    ctx.log(f"  {case.label}: remat {', '.join(map(str, policies))}")
    m = _remat(case, ctx, policies)
    out = {"label": case.label, "key": _key(case.label), "remat": m, "rows": []}
    out["rows"] += _remat_rows(case.label, out["key"], m, policies)
    ctx.log(f"  {case.label}: deploy")
    out["deploy"] = _deploy(case, m["model"], ctx)
    out["rows"] += _deploy_rows(case.label, out["key"], out["deploy"])
    return out


def _table(measured: list[dict[str, Any]], policies: tuple[Any, ...]) -> str:
    lines = ["| model | plain peak (MiB) | " + " | ".join(f"{p}: peak ÷ plain | {p}: time ÷ plain" for p in policies)
             + " | BN folded | max relative difference | deployed time ÷ unfused |",
             "|---|---|" + "---|---|" * len(policies) + "---|---|---|"]
    for m in measured:
        r = m["remat"]
        cells = [f"{r['memory'][str(p)] / r['memory']['plain']:.2f} | "
                 f"{np.median(np.asarray(r['timed'][str(p)]) / np.asarray(r['timed']['plain'])):.2f}"
                 for p in policies]
        d = m.get("deploy")
        tail = "– | – | –" if d is None else (
            f"{d['facts']['bn_folded']}/{d['facts']['bn_total']} | {d['facts']['max_relative_difference']:.2g} | "
            f"{np.median(np.asarray(d['timed']['deployed']) / np.asarray(d['timed']['unfused'])):.2f}")
        lines.append(f"| {m['label']} | {r['memory']['plain'] / MIB:.0f} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines)


def _notes(measured: list[dict[str, Any]], acnet_row: dict[str, Any]) -> list[str]:
    """Sentences computed from the rows."""
    sqrt = {m["label"]: 1 - m["remat"]["memory"]["sqrt"] / m["remat"]["memory"]["plain"] for m in measured}
    best = max(sqrt, key=sqrt.get)
    worst = min(sqrt, key=sqrt.get)
    folded = [m for m in measured if m.get("deploy") and m["deploy"]["facts"]["bn_total"]]
    all_folded = [m["label"] for m in folded if m["deploy"]["facts"]["bn_remaining"] == 0]
    least = f"{sqrt[worst]:.0%} on {worst} (the least)" if sqrt[worst] >= 0 else \
        f"raises it by {-sqrt[worst]:.0%} on {worst}"
    return [
        f"remat \"sqrt\" saves {sqrt[best]:.0%} of the plain peak on {best} and {least}; every model here goes "
        "through `remat.apply` as it is (no hand-cut segments).",
        f"deploy folds every BatchNormalization in {len(all_folded)} of the {len(folded)} models that have any"
        + (f" ({', '.join(all_folded)})" if all_folded else "") + "; the largest relative difference over all "
        f"models is {max(m['deploy']['facts']['max_relative_difference'] for m in measured if m.get('deploy')):.2g}.",
        f"The ACNet-converted ResNet50, deployed, runs at {acnet_row['ratio']:.3f}× the plain deployed "
        "ResNet50's inference time: after the fold it is the same network.",
        "Timings are medians of interleaved rounds (A, B, A, B, ...) after warm-up on a shared machine; "
        "peak memory is the TensorFlow CPU allocator's peak during one graph-mode training step (SGD).",
    ]


def _plot(ctx: BenchContext, measured: list[dict[str, Any]]) -> str:
    labels = [m["label"].split(" (")[0].replace("KerasHub ", "") for m in measured]
    memory = {"peak ÷ plain": [m["remat"]["memory"]["sqrt"] / m["remat"]["memory"]["plain"] for m in measured],
              "step time ÷ plain": [float(np.median(np.asarray(m["remat"]["timed"]["sqrt"])
                                                    / np.asarray(m["remat"]["timed"]["plain"]))) for m in measured]}
    deployed = [m for m in measured if m.get("deploy")]
    times = {"deployed ÷ unfused": [float(np.median(np.asarray(m["deploy"]["timed"]["deployed"])
                                                    / np.asarray(m["deploy"]["timed"]["unfused"]))) for m in deployed]}
    ticks = {"rotation": 30, "ha": "right", "fontsize": 7}
    panels = [
        Panel(grouped_bars(memory) + [hline(1.0, color="k", lw=0.8), hline(STEP_TIME_GOAL, "time goal", color="grey",
                                                                          ls=":")],
              title='remat "sqrt" training step', ylabel="÷ plain model",
              xticks=(np.arange(len(labels)), labels, ticks), legend={"fontsize": 7}),
        Panel(grouped_bars(times) + [hline(1.0, color="k", lw=0.8),
                                     hline(DEPLOY_TIME_GOAL, "goal ≤ 0.92", color="grey", ls=":")],
              title="deploy: inference time", ylabel="÷ unfused model",
              xticks=(np.arange(len(deployed)), [labels[measured.index(m)] for m in deployed], ticks),
              legend={"fontsize": 7}),
    ]
    return figure(ctx.out_dir / "models.png", panels, size=(11, 4.2))


@benchmark("models", "remat, deploy and ACNet conversion on keras.applications, an MHA encoder and KerasHub backbones")
def run(ctx: BenchContext) -> BenchResult:
    policies: tuple[Any, ...] = ("sqrt",) if ctx.quick else ("sqrt", 2)
    cases, notes = model_cases(ctx)
    measured = [_measure(case, ctx, policies) for case in cases]
    resnet = next(m for m in measured if m["key"] == "ResNet50")
    ctx.log("  ResNet50: ACNet conversion")
    acnet_row, acnet_table = _acnet(resnet["remat"]["model"], resnet["deploy"]["deployed"],
                                    next(c for c in cases if c.label == "ResNet50").inputs, ctx)
    return BenchResult(
        description=(
            "Your model, not ours: `tenfold.remat.apply` (A = plain training step, B = recomputed "
            "segments), `tenfold.reparam.deploy` (A = the model with BatchNormalization, B = deployed) "
            "and `tenfold.reparam.convert(conv=\"acnet\")` on keras.applications models (weights=None), "
            "a Keras MultiHeadAttention encoder and KerasHub backbones built from configs."
        ),
        rows=[row for m in measured for row in m["rows"]] + [acnet_row],
        tables=[_table(measured, policies), acnet_table],
        plots=[_plot(ctx, measured)],
        notes=_notes(measured, acnet_row) + notes,
    )

"""Benchmark ``auto``: does ``precision.configure("auto", model, sample)`` choose well?

On every model of ``tenfold bench models`` and the trainer's default model, the probe
(``probe_steps=8``, as a recipe's ``policy: auto`` runs it) chooses a setting; then every
candidate is measured again, independently and longer (``VERIFY_STEPS`` interleaved steps
each, the same probe machinery with a fresh copy of the model), and the chosen setting's
throughput is compared with float32's and with the fastest candidate's there.
Goals (issue 16): ≥ 0.98× float32 and ≥ 0.95× the fastest, on the machine it runs on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import precision
from tenfold.bench.harness import BenchContext, BenchResult, benchmark, value_row
from tenfold.bench.models import model_cases
from tenfold.bench.trainer import balanced_recipe, quiet
from tenfold.train.build import build

PROBE_STEPS = 8
VERIFY_STEPS = 30
GOALS = {"float32": 0.98, "fastest": 0.95}


def _default_model(ctx: BenchContext) -> tuple[keras.Model, tuple[Any, Any]]:
    """The trainer's default model, compiled as ``tenfold train`` compiles it, and one of its
    training batches."""
    recipe = balanced_recipe(1)
    recipe = recipe.model_copy(update={"precision": recipe.precision.model_copy(update={"policy": "float32"})})
    run = build(recipe, Path(tempfile.mkdtemp(prefix="tenfold-bench-")) / "auto", log=quiet)
    x, y = (keras.ops.convert_to_numpy(t) for t in next(iter(run.train_data))[:2])
    return run.model, (x, y)


def _compiled(case: Any) -> tuple[keras.Model, tuple[Any, Any]]:
    model = case.make()
    loss = case.loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    labels = case.labels
    if labels is None:  # a backbone without a head: targets shaped as its outputs (a dict for BertBackbone)
        labels = keras.tree.map_structure(lambda t: np.zeros(t.shape, "float32"), model(case.inputs))
    return model, (case.inputs, labels)


def _speeds(report: precision.PrecisionReport) -> dict[str, float]:
    """Steps/s of every candidate that ran and was accepted (loss within tolerance)."""
    return {r["name"]: 1.0 / r["median_s"] for r in report.probe if r["median_s"] and r["accepted"]}


def _measure(ctx: BenchContext, label: str, model: keras.Model, sample: tuple[Any, Any],
             steps: tuple[int, int]) -> dict[str, Any]:
    ctx.log(f"  {label}: probe ({steps[0]} steps per candidate)")
    chosen = precision.configure("auto", model, sample, probe_steps=steps[0])
    name = chosen.policy + ("+xla" if chosen.xla else "")
    ctx.log(f"  {label}: chose {name}; measuring every candidate again ({steps[1]} steps)")
    again = precision.configure("auto", model, sample, probe_steps=steps[1])
    precision.configure("float32", jit_compile=False)
    return {"label": label, "chosen": name, "reason": chosen.reason, "probe": _speeds(chosen),
            "verify": _speeds(again)}


def _rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    verify, chosen = m["verify"], m["chosen"]
    fastest = max(verify, key=verify.get)
    rows = []
    for against, ref in (("float32", "float32"), ("fastest", fastest)):
        goal = GOALS[against]
        rows.append(value_row(
            f"{m['label']}: training steps/s of the chosen setting vs {against} (re-measured)",
            ref, verify[ref], chosen, verify.get(chosen, float("nan")), unit="steps/s", repeats=VERIFY_STEPS,
            goal=f"≥ {goal}", goal_met=lambda r, g=goal: r >= g, lower_is_better=False))
    return rows


def _table(measured: list[dict[str, Any]]) -> str:
    names = sorted({n for m in measured for n in m["verify"]}, key=lambda n: (n != "float32", n))
    lines = ["**Re-measured steps/s of every candidate over float32's (chosen in bold)**", "",
             "| model | chosen | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for m in measured:
        v = m["verify"]
        cells = [(f"**{v[n] / v['float32']:.2f}**" if n == m["chosen"] else f"{v[n] / v['float32']:.2f}")
                 if n in v else "–" for n in names]
        lines.append(f"| {m['label']} | {m['chosen']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@benchmark("auto", "precision auto on the models of bench models and the default model: the chosen setting "
           "≥ 0.98× float32 and ≥ 0.95× the fastest candidate, re-measured")
def run(ctx: BenchContext) -> BenchResult:
    steps = (2, 4) if ctx.quick else (PROBE_STEPS, VERIFY_STEPS)
    cases, notes = model_cases(ctx)
    measured = [_measure(ctx, "default model", *_default_model(ctx), steps)]
    for case in cases[:2] if ctx.quick else cases:
        try:
            model, sample = _compiled(case)
            measured.append(_measure(ctx, case.label, model, sample, steps))
        except Exception as err:  # reported, not hidden: the row is missing and the note says why
            precision.configure("float32", jit_compile=False)
            notes.append(f"{case.label}: not measured ({type(err).__name__}: {str(err)[:200]})")
    rows = [row for m in measured for row in _rows(m)]
    notes += [f"{m['label']}: the probe chose **{m['chosen']}**: {m['reason']}" for m in measured]
    notes.append(f"The probe runs {steps[0]} interleaved steps per candidate (a recipe's default); the check runs "
                 f"every candidate again for {steps[1]} interleaved steps from a fresh copy, and its medians "
                 "give the rows. A candidate whose loss left the tolerance is not counted as the fastest.")
    return BenchResult(rows=rows, tables=[_table(measured)], notes=notes)

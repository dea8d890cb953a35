"""`tenfold train`: one recipe → one run directory.

Run directory (DESIGN.md): ``recipe.yaml`` (fully resolved), ``env.json``, ``history.csv``,
``tensorboard/``, ``model.keras``, ``deploy/`` (exported model), ``metrics.json``,
``report.md``, ``plots/*.png`` + ``*.csv``, and ``checkpoints/`` while a run is unfinished.

Interruption: a checkpoint is written after every epoch (``BackupAndRestore``); the same
command on the same directory resumes from it and ends with the same number of epochs.
``metrics.json`` is written last and marks a finished run, which is never overwritten
without ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import precision
from tenfold.env import environment
from tenfold.train import builders, cyclical, deploy_step, longtail, report
from tenfold.train.evaluate import classification_metrics, shot_groups
from tenfold.train.logging import (
    EpochBackupAndRestore,
    EpochTensorBoard,
    HistoryCSV,
    learning_rate_curve,
)
from tenfold.train.recipe import Recipe, RecipeError

FINISHED_MARKER = "metrics.json"


class RunDirError(RecipeError):
    """The run directory cannot be used as asked (finished, foreign, other recipe)."""


@dataclass
class RunContext:
    """Everything built for one run; techniques read and extend it."""

    recipe: Recipe
    out: Path
    data: builders.RunData
    model: keras.Model
    steps_per_epoch: int
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)
    compile_kwargs: dict[str, Any] = field(default_factory=dict)
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    precision: Any = None  # the tenfold.precision.PrecisionReport of the run


def _checkpoint_epoch(checkpoints: Path) -> int | None:
    meta = checkpoints / "training_metadata.json"
    if not meta.exists():
        return None
    try:
        return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"])
    except (ValueError, KeyError, OSError):
        return None


def prepare_run_dir(out: Path, recipe: Recipe, *, force: bool) -> int | None:
    """Check and create ``out``. Returns the epoch to resume from, or None for a fresh run."""
    recipe_yaml = recipe.to_yaml()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {str(out)!r} is a file, not a directory.")
    if out.exists() and any(out.iterdir()):
        saved = out / "recipe.yaml"
        if not saved.exists():
            raise RunDirError(
                f"--out {str(out)!r} is a non-empty directory that is not a tenfold run; "
                "choose another directory (nothing was written)."
            )
        finished = (out / FINISHED_MARKER).exists()
        same_recipe = saved.read_text(encoding="utf-8") == recipe_yaml
        if not finished and same_recipe:
            # resume, with or without --force: an interrupted run never loses its checkpoint
            return _checkpoint_epoch(out / "checkpoints") or 0
        if not force:
            if finished:
                raise RunDirError(
                    f"--out {str(out)!r} holds a finished run; pass --force to replace it, or "
                    "choose another --out."
                )
            raise RunDirError(
                f"--out {str(out)!r} holds an unfinished run of a different recipe; resume it "
                "with the same recipe and --set values, or pass --force to start over."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(recipe_yaml, encoding="utf-8")
    return None


def verbosity(recipe: Recipe) -> int:
    if recipe.train.verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(recipe.train.verbose)


def build_context(recipe: Recipe, out: Path, log: Callable[[str], None] = print) -> RunContext:
    """Data, model, optimizer, loss and callbacks of a run, compiled and ready to fit."""
    keras.utils.set_random_seed(recipe.seed)
    run_data = builders.build_data(recipe)
    # precision: the dtype policy must be in force before the model is built
    chosen = precision.configure(recipe.precision.policy, jit_compile=recipe.precision.jit_compile)
    model = builders.build_model(recipe, run_data)
    steps = builders.steps_per_epoch(recipe, run_data)
    ctx = RunContext(recipe, out, run_data, model, steps, log)
    ctx.precision = chosen.inspect(model)
    ctx.notes.append(
        f"precision: {chosen.policy} (requested {chosen.requested}; {chosen.reason}); XLA "
        f"{'on' if chosen.xla else 'off'} ({chosen.xla_reason})"
        + (f"; float32 layers: {', '.join(chosen.float32_layers)}" if chosen.float32_layers else "")
    )
    found = cyclical.find_bounds(ctx)  # schedule.bounds: from_lr_find runs the range test
    ctx.compile_kwargs = {
        "optimizer": builders.build_optimizer(recipe, builders.build_schedule(recipe, steps, found)),
        "loss": builders.build_loss(recipe, run_data),
        "metrics": ["accuracy"],
        "jit_compile": chosen.jit_compile,  # precision.jit_compile, as resolved
    }
    ctx.model.compile(**ctx.compile_kwargs)
    cyclical.add_callbacks(ctx)  # schedule.cycle_momentum
    longtail.add_callbacks(ctx)  # callbacks.drw
    return ctx


def fit(ctx: RunContext, *, resume_epoch: int | None) -> dict[str, Any]:
    """Train with checkpoints, history, TensorBoard; returns timing facts."""
    recipe, out = ctx.recipe, ctx.out
    callbacks: list[keras.callbacks.Callback] = [
        EpochBackupAndRestore(str(out / "checkpoints")),
        HistoryCSV(out / "history.csv"),
        EpochTensorBoard(str(out / "tensorboard")),
        *ctx.callbacks,
    ]
    if resume_epoch:
        ctx.log(f"resuming from epoch {resume_epoch} of {recipe.train.epochs} (checkpoint in {out / 'checkpoints'})")
    val = ctx.data.splits
    train_ds = builders.train_dataset(recipe, ctx.data)
    if ctx.data.echo is not None:  # data.echo: log fresh (upstream) examples next to steps
        callbacks.insert(0, ctx.data.echo.counter.callback())
    start = time.perf_counter()
    ctx.model.fit(
        train_ds,
        validation_data=builders.eval_dataset(recipe, val.x_val, val.y_val),
        epochs=recipe.train.epochs,
        callbacks=callbacks,
        verbose=verbosity(recipe),
        shuffle=False,  # the dataset is shuffled with the recipe seed
        **longtail.fit_kwargs(recipe, ctx.steps_per_epoch),  # data.sampler: progressive
    )
    seconds = time.perf_counter() - start
    epochs_run = recipe.train.epochs - (resume_epoch or 0)
    return {
        "train_seconds": seconds,
        "steps_per_second": epochs_run * ctx.steps_per_epoch / max(seconds, 1e-9),
        "resumed_from_epoch": resume_epoch or None,
        "precision": ctx.precision.to_dict() if ctx.precision is not None else None,
        "fresh_examples": _fresh_examples(ctx),
    }


def _fresh_examples(ctx: RunContext) -> int | None:
    """Upstream examples read by an echoing pipeline (None without data.echo)."""
    if ctx.data.echo is None:
        return None
    fresh = ctx.data.echo.fresh_examples
    ctx.notes.append(
        f"data echoing: factor {ctx.data.echo.factor:g} ({ctx.data.echo.level} level, "
        f"{ctx.recipe.data.echo.placement if ctx.data.echo.level == 'example' else 'after batching'}); "
        f"{fresh} fresh examples read for {ctx.recipe.train.epochs} epochs"
    )
    return fresh


def predict_logits(ctx: RunContext, x: np.ndarray) -> np.ndarray:
    return np.asarray(ctx.model.predict(x, batch_size=256, verbose=0), dtype="float64")


def evaluate(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Metrics per split and per model variant (``plain``: the trained model as it is)."""
    s, e = ctx.data.splits, ctx.recipe.evaluate
    counts = ctx.data.class_counts
    results: dict[str, dict[str, Any]] = {"validation": {}, "test": {}}
    plain = {}
    for split, x, y in (("validation", s.x_val, s.y_val), ("test", s.x_test, s.y_test)):
        plain[split] = logits = predict_logits(ctx, x)
        results[split]["plain"] = classification_metrics(logits, y, counts, many=e.many, few=e.few)
    # evaluate.posthoc: logit adjustment, tau-norm, cRT on copies of the model
    for variant, logits_of in longtail.posthoc_logits(ctx, plain).items():
        for split, y in (("validation", s.y_val), ("test", s.y_test)):
            results[split][variant] = classification_metrics(
                logits_of[split], y, counts, many=e.many, few=e.few)
    return results


def export(ctx: RunContext) -> dict[str, Any]:
    """``model.keras``, and in ``deploy/`` the fused model (``tenfold.reparam.deploy``):
    ``model.keras`` and ``saved_model`` (TensorFlow SavedModel for serving)."""
    ctx.model.save(ctx.out / "model.keras")
    deploy = ctx.out / "deploy"
    deploy.mkdir(exist_ok=True)
    fused, deploy_facts = deploy_step.fuse(ctx.model, ctx.data.splits.x_test, deploy)
    ctx.notes.append(deploy_step.describe(deploy_facts))
    if keras.backend.backend() == "tensorflow":
        fused.export(str(deploy / "saved_model"), format="tf_saved_model", verbose=False)
    else:
        ctx.notes.append("SavedModel export skipped: it needs the TensorFlow backend.")
    return {"deploy": deploy_facts}


def write_outputs(ctx: RunContext, facts: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    recipe, out, s = ctx.recipe, ctx.out, ctx.data.splits
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    report.plot_history(out / "history.csv", plots / "history.png")
    shutil.copyfile(out / "history.csv", plots / "history.csv")  # each plot beside its CSV
    optimizer = ctx.model.optimizer
    total_steps = recipe.train.epochs * ctx.steps_per_epoch
    report.plot_learning_rate(
        learning_rate_curve(optimizer, total_steps), plots / "learning_rate.png",
        plots / "learning_rate.csv", ctx.steps_per_epoch,
    )
    report.plot_per_class(
        {k: v["per_class_accuracy"] for k, v in results["test"].items()},
        ctx.data.class_counts, s.class_names, plots / "per_class_accuracy.png",
        plots / "per_class_accuracy.csv",
    )
    groups = shot_groups(ctx.data.class_counts, many=recipe.evaluate.many, few=recipe.evaluate.few)
    metrics = {
        "run": {
            "recipe": recipe.name,
            "description": recipe.description,
            "data": s.source,
            "input_shape": list(s.input_shape),
            "num_classes": s.num_classes,
            "class_names": s.class_names,
            "class_counts": ctx.data.class_counts,
            "imbalance_factor": recipe.data.imbalance_factor,
            "train_examples": int(len(s.y_train)),
            "validation_examples": int(len(s.y_val)),
            "test_examples": int(len(s.y_test)),
            "model": recipe.model.name,
            "parameters": int(ctx.model.count_params()),
            "epochs": recipe.train.epochs,
            "steps_per_epoch": ctx.steps_per_epoch,
            "notes": ctx.notes,
            **facts,
        },
        "shot_groups": {"many_threshold": recipe.evaluate.many, "few_threshold": recipe.evaluate.few, **groups},
        **results,
    }
    env = json.loads((out / "env.json").read_text(encoding="utf-8"))
    report.write_report(out, metrics, recipe.to_yaml(), env)
    tmp = out / (FINISHED_MARKER + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / FINISHED_MARKER)  # last: marks the run finished
    return metrics


def summary_table(metrics: dict[str, Any]) -> str:
    header = ("model", "accuracy", "balanced", "many", "medium", "few")
    rows = [header, *report.summary_rows(metrics)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(
    recipe: Recipe,
    out: str | Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``recipe`` into run directory ``out``; returns the metrics written.

    Example:
    >>> from tenfold.train.recipe import load_recipe
    >>> metrics = run(load_recipe("tiny", ["train.verbose=0"]), "/tmp/tenfold-doc", force=True, log=lambda s: None)
    >>> metrics["test"]["plain"]["accuracy"] > 0.5
    True
    """
    out = Path(out)
    resume_epoch = prepare_run_dir(out, recipe, force=force)
    if resume_epoch is None or not (out / "env.json").exists():
        (out / "env.json").write_text(json.dumps(environment(), indent=2) + "\n", encoding="utf-8")
    ctx = build_context(recipe, out, log)
    log(f"tenfold train: recipe {recipe.name!r} → {out}  ({len(ctx.data.splits.y_train)} training "
        f"examples, {ctx.model.count_params():,} parameters, {recipe.train.epochs} epochs)")
    facts = fit(ctx, resume_epoch=resume_epoch)
    results = evaluate(ctx)
    facts.update(export(ctx))  # deploy/: fused model + its check
    metrics = write_outputs(ctx, facts, results)
    log("\n" + summary_table(metrics))
    log(f"\nreport: {out / 'report.md'}")
    return metrics

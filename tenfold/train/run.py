"""`tenfold train`: one recipe → one run directory, stage by stage.

Run directory (DESIGN.md): ``recipe.yaml`` (fully resolved), ``env.json``, ``history.csv``,
``tensorboard/``, ``model.keras``, ``deploy/`` (fused model, SavedModel, ``deploy.json``),
``metrics.json``, ``report.md``, ``plots/*.png`` + ``*.csv``, and ``checkpoints/`` while a
run is unfinished.

Interruption: a checkpoint is written after every epoch; the same command on the same
directory resumes from it and ends with the same number of epochs. ``metrics.json`` is
written last and marks a finished run, which is never overwritten without ``force``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenfold.train import report, rundir
from tenfold.train.build import build
from tenfold.train.deploy import deploy_trained
from tenfold.train.evaluate import evaluate
from tenfold.train.fit import fit
from tenfold.train.recipe import Recipe


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
    resume_epoch = rundir.prepare_run_dir(out, recipe, force=force)
    rundir.write_environment(out, resume_epoch=resume_epoch)
    built = build(recipe, out, log)
    log(f"tenfold train: recipe {recipe.name!r} → {out}  ({len(built.data.splits.y_train)} training "
        f"examples, {built.model.count_params():,} parameters, {recipe.train.epochs} epochs)")
    facts, fit_notes = fit(built, resume_epoch=resume_epoch, log=log)
    results, logits, evaluate_notes = evaluate(built)
    deployed, deploy_notes = deploy_trained(built, logits["test"])
    notes = [*built.notes, *fit_notes, *evaluate_notes, *deploy_notes]
    metrics = report.metrics_record(built, {**facts, "deploy": deployed}, results, notes)
    report.write_outputs(built, metrics)
    rundir.mark_finished(out, metrics)
    log("\n" + report.summary_table(metrics))
    log(f"\nreport: {out / 'report.md'}")
    return metrics

"""`tenfold train`: one recipe → one run directory, stage by stage.

Run directory (DESIGN.md): ``recipe.yaml`` (fully resolved), ``env.json``, ``history.csv``,
``tensorboard/``, ``model.keras``, ``deploy/`` (fused model, SavedModel, ``deploy.json``),
``metrics.json``, ``report.md``, ``plots/*.png`` + ``*.csv``, and ``checkpoints/`` while a
run is unfinished.

The run is built before anything is written, so bad input leaves nothing on disk. Then the
stages run under the run directory's lock: fit (a checkpoint after every epoch) → evaluate
→ deploy → report → ``metrics.json`` (the finished marker). Each stage after fit records
its result in ``checkpoints/stages/``: the same command after an interruption resumes at
the stage it was in, without retraining finished epochs. ``checkpoints/`` is removed only
once the run is marked finished.

Distributed (recipe ``distribute:``, :mod:`tenfold.train.distribute`): the strategy is set
up first, the run is built in its scope, every worker runs every stage, and only the chief
writes ``out``; the other workers write a scratch run directory of their own, removed
when they finish.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenfold.data import write_splits
from tenfold.train import checkpoints, distribute, report, rundir
from tenfold.train.build import PRECISION_FILE, Run, build
from tenfold.train.data import SPLITS_FILE
from tenfold.train.deploy import deploy_trained
from tenfold.train.evaluate import evaluate
from tenfold.train.files import write_json_atomic
from tenfold.train.fit import fit
from tenfold.train.optimization import write_range_test
from tenfold.train.recipe import Recipe


def _fit_stage(built: Run, log: Callable[[str], None], warn: Callable[[str], None]) -> list[Any]:
    """``[facts, notes]`` of training: recorded, restored, or trained (from a checkpoint)."""
    directory, recipe_yaml = built.out / rundir.CHECKPOINTS, built.recipe.to_yaml()
    resume = checkpoints.latest(directory, recipe_yaml, warn)
    done = rundir.load_stage(built.out, "fit")
    if done is not None and resume is not None and resume.epoch == built.recipe.train.epochs:
        log(f"training finished before the interruption: restoring epoch {resume.epoch}, "
            "resuming after training")
        checkpoints.restore(built.model, directory, resume)
        return done
    facts, notes = fit(built, resume=resume, log=log)
    rundir.save_stage(built.out, "fit", [facts, notes])
    return [facts, notes]


def _after_fit(built: Run, dist: distribute.Distribution, log: Callable[[str], None],
               warn: Callable[[str], None]) -> dict[str, Any]:
    out = built.out
    facts, fit_notes = _fit_stage(built, log, warn)
    facts = {**facts, "distribute": dist.facts(built.recipe)}
    evaluated = rundir.load_stage(out, "evaluate")
    if evaluated is None:
        results, _, notes = evaluate(built)
        evaluated = [results, notes]
        rundir.save_stage(out, "evaluate", evaluated)
    deployed = rundir.load_stage(out, "deploy")
    if deployed is None:
        deployed = list(deploy_trained(built))
        rundir.save_stage(out, "deploy", deployed)
    notes = [*built.notes, *fit_notes, *evaluated[1], *deployed[1]]
    metrics = report.metrics_record(built, {**facts, "deploy": deployed[0]}, evaluated[0], notes)
    if dist.is_chief:  # the other workers' scratch directories get no report
        report.write_outputs(built, metrics)
    rundir.mark_finished(out, metrics)
    return metrics


def run(
    recipe: Recipe,
    out: str | Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` into run directory ``out``; returns the metrics written.

    ``warn``: where warnings go (a checkpoint that could not be used); default ``log``.

    Example:
    >>> from tenfold.train.recipe import load_recipe
    >>> metrics = run(load_recipe("tiny", ["train.verbose=0"]), "/tmp/tenfold-doc", force=True, log=lambda s: None)
    >>> metrics["test"]["plain"]["accuracy"] > 0.5
    True
    """
    # first: logical devices and collectives must exist before TensorFlow initializes devices
    dist = distribute.setup(recipe.distribute)
    with distribute.active(dist):
        metrics = _run(recipe, dist, Path(out), force, log, warn)
    return metrics


def _run(recipe: Recipe, dist: distribute.Distribution, run_dir: Path, force: bool,
         log: Callable[[str], None], warn: Callable[[str], None] | None) -> dict[str, Any]:
    out = dist.out(run_dir)  # the chief writes the run directory, the other workers a scratch one
    if not dist.is_chief:
        chief_log = log

        def log(line: str) -> None:
            chief_log(f"[worker {dist.worker}] {line}")

    distribute.check_recipe(recipe, dist)
    action = rundir.check(out, recipe, force=force)  # refuse before building, write nothing
    scaled = distribute.scaled_recipe(recipe, dist.replicas)
    if action == "resume":  # every worker resumes from the same epoch (a collective)
        dist.agree_checkpoints(out / rundir.CHECKPOINTS, scaled.to_yaml(), log)
    with dist.scope():  # model and optimizer state are made in the strategy's scope
        built = build(scaled, out, log, resume=action == "resume")
    built = dataclasses.replace(
        built, model=distribute.prepare_model(built.model, dist),
        train_data=dist.shard(built.train_data), validation_data=dist.shard(built.validation_data),
        notes=(*built.notes, *dist.notes(recipe)))
    with rundir.claim(out, recipe, force=force) as action:
        rundir.write_environment(out, action=action)
        if built.data.files is not None:  # the streamed folder's file splits: a resume reads them
            write_splits(built.data.files, out / SPLITS_FILE)
        if recipe.precision.policy == "auto":  # a resume keeps this choice (build.PRECISION_FILE)
            write_json_atomic(out / PRECISION_FILE, built.precision.to_dict())
        if built.range_test is not None:
            write_range_test(built.range_test, out / "plots", title=f"LR range test: {recipe.name}")
        log(f"tenfold train: recipe {recipe.name!r} → {out}  ({built.data.examples('train')} "
            f"training examples, {built.model.count_params():,} parameters, "
            f"{recipe.train.epochs} epochs)")
        metrics = _after_fit(built, dist, log, warn or log)
    if not dist.is_chief:
        shutil.rmtree(out, ignore_errors=True)
        log(f"finished; the chief (worker 0) wrote {run_dir}")
        return metrics
    log("\n" + report.summary_table(metrics))
    log(f"\nreport: {out / 'report.md'}")
    return metrics

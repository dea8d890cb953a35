"""``build(recipe, out, log) -> Run``: everything a run trains with, built once.

The one way to assemble a run: ``tenfold train``, ``tenfold lr-find`` and the
trainer-overhead benchmark all call it, so they train under the same precision policy,
the same echoed input pipeline and the same optimizer. The stages run in the order the
techniques need them: seed → data → precision policy (before the model exists) → model →
training dataset → LR range test (``schedule.bounds: from_lr_find``) → loss, schedule,
optimizer → compile → callbacks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from tenfold import precision
from tenfold.callbacks.lr_finder import LRFinderResult
from tenfold.data import Echo
from tenfold.precision import PrecisionReport
from tenfold.precision.kernels import conv_gradients
from tenfold.train import callbacks, checkpoints, data, model, optimization
from tenfold.train.recipe import Recipe, RecipeError


@dataclass(frozen=True)
class Run:
    """What :func:`build` made for one run (the model is compiled, ready to ``fit``).

    Attributes:
        recipe: the validated recipe.
        out: the run directory.
        data: the splits and training class counts.
        model: the compiled model.
        train_data: the training ``tf.data.Dataset`` (re-sampled, augmented, echoed, batched).
        validation_data: the validation ``tf.data.Dataset``.
        steps_per_epoch: optimizer steps per epoch.
        echo: the ``data.echo`` transformation of ``train_data`` (its counter reports the
            fresh examples read), or None.
        callbacks: the techniques' callbacks (``fit`` adds the run directory's).
        precision: what ``tenfold.precision.configure`` chose, with the float32 layers.
        fit_kwargs: extra ``model.fit`` arguments (``steps_per_epoch`` for progressive
            re-sampling).
        notes: lines for the report.
        range_test: the LR range test run by ``schedule.bounds: from_lr_find`` (to be
            written into the run directory), None when none ran.
    """

    recipe: Recipe
    out: Path
    data: data.RunData
    model: keras.Model
    train_data: Any
    validation_data: Any
    steps_per_epoch: int
    echo: Echo | None
    callbacks: tuple[keras.callbacks.Callback, ...]
    precision: PrecisionReport
    fit_kwargs: dict[str, Any]
    notes: tuple[str, ...]
    range_test: LRFinderResult | None = None


def precision_note(chosen: PrecisionReport) -> str:
    """One report line: the policy in force, why, XLA and the float32 layers."""
    layers = f"; float32 layers: {', '.join(chosen.float32_layers)}" if chosen.float32_layers else ""
    return (f"precision: {chosen.policy} (requested {chosen.requested}; {chosen.reason}); XLA "
            f"{'on' if chosen.xla else 'off'} ({chosen.xla_reason}){layers}")


PRECISION_FILE = "precision.json"


def probed_precision(path: Path) -> dict[str, Any] | None:
    """The choice ``policy: auto`` recorded in ``path`` (:data:`PRECISION_FILE` of a run
    directory), or None when there is none or it cannot be used (unreadable, not JSON, no
    measured policy): the run then probes again."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(saved, dict) or saved.get("requested") != "auto"
            or saved.get("policy") not in precision.POLICIES[1:] or not isinstance(saved.get("jit_compile"), bool)):
        return None
    return saved


def _precision(recipe: Recipe, run_data: data.RunData, cached: Path | None = None) -> PrecisionReport:
    """``precision.configure`` of the recipe. ``policy: auto`` measures: the model is built
    under float32, probed on one training batch (``precision.probe_steps`` steps per
    candidate, plain SGD and cross-entropy on the logits), and the seed is set again so that
    the model ``build`` then builds under the chosen policy starts from the same draw.
    ``cached``: the :data:`PRECISION_FILE` of an interrupted run; a resumed run keeps the
    choice recorded there instead of probing again (the timings could pick another policy,
    and the checkpoint was trained under this one)."""
    p = recipe.precision
    if p.policy != "auto":
        return precision.configure(p.policy, jit_compile=p.jit_compile)
    saved = probed_precision(cached) if cached is not None else None
    if saved is not None:
        kept = precision.configure(saved["policy"], jit_compile=saved["jit_compile"])
        prefix = f"kept from the interrupted run's probe ({PRECISION_FILE}): "
        return dataclasses.replace(  # the prefix once, however often the run is resumed
            kept, requested="auto", probe=list(saved.get("probe") or []),
            reason=prefix + str(saved.get("reason", "")).removeprefix(prefix))
    precision.configure("float32", jit_compile=False)
    probed = model.build_model(recipe.model, run_data.input_shape, run_data.num_classes,
                               max_parameters=recipe.train.max_parameters)
    batches = data.train_dataset(recipe.data, run_data, None, seed=recipe.seed, epochs=1)
    x, y = (keras.ops.convert_to_numpy(t) for t in next(iter(batches))[:2])
    chosen = precision.configure("auto", probed, (x, y), probe_steps=p.probe_steps,
                                 jit_compile=p.jit_compile)
    keras.utils.set_random_seed(recipe.seed)
    return chosen


def _refuse_wrong_kernels() -> None:
    """A RecipeError (exit status 2) before anything is built when TensorFlow computes wrong
    convolution gradients here (:func:`tenfold.precision.kernels.conv_gradients`)."""
    if keras.backend.backend() != "tensorflow":
        return
    check = conv_gradients()
    if not check.ok:
        raise RecipeError(check.message())


def build(
    recipe: Recipe, out: Path, log: Callable[[str], None] = print, *, resume: bool = False
) -> Run:
    """Data, model, optimizer, loss and callbacks of ``recipe``, compiled and ready to fit.

    ``out``: the run directory. Nothing is written there: a run that cannot be built leaves
    nothing on disk. ``resume``: reuse the LR range test an interrupted run in ``out``
    recorded (``plots/lr_find.json``) and the precision ``policy: auto`` chose
    (:data:`PRECISION_FILE`). Sets the global seed and dtype policy; an argument the
    library refuses is a RecipeError naming the recipe section.
    """
    _refuse_wrong_kernels()
    keras.utils.set_random_seed(recipe.seed)
    d, epochs = recipe.data, recipe.train.epochs
    run_data = data.build_data(d, seed=recipe.seed,
                               splits_file=Path(out) / data.SPLITS_FILE if resume else None)
    # the dtype policy must be in force before the model is built
    chosen = _precision(recipe, run_data, Path(out) / PRECISION_FILE if resume else None)
    net = model.build_model(recipe.model, run_data.input_shape, run_data.num_classes,
                            max_parameters=recipe.train.max_parameters)
    chosen = chosen.inspect(net)
    steps = data.steps_per_epoch(d, run_data.examples("train"))

    def train_dataset(echo: Echo | None, initial_epoch: int = 0) -> Any:
        return data.train_dataset(d, run_data, echo, seed=recipe.seed, epochs=epochs, initial_epoch=initial_epoch)

    found, range_notes, tested = optimization.found_bounds(  # its own pipeline and echo counter
        recipe, net, lambda: train_dataset(data.build_echo(d, seed=recipe.seed)),
        run_data.class_counts, Path(out) / "plots" if resume else None, log)
    echo = data.build_echo(d, seed=recipe.seed)
    # a resumed run's data start at its checkpoint's epoch (epoch k is a function of seed and k)
    train_data = train_dataset(echo, checkpoints.resume_epoch(Path(out) / "checkpoints", recipe.to_yaml())
                               if resume else 0)
    schedule = optimization.build_schedule(
        recipe.schedule, recipe.optimizer.learning_rate, epochs=epochs, steps=steps, found=found)
    optimizer = optimization.build_optimizer(recipe.optimizer, recipe.agc, schedule, model=net)
    net.compile(
        optimizer=optimizer,
        loss=optimization.build_loss(recipe.loss, recipe.callbacks.drw, run_data.class_counts),
        metrics=["accuracy"],
        jit_compile=chosen.jit_compile,  # precision.jit_compile, as resolved
    )
    technique = callbacks.technique_callbacks(
        recipe.schedule, recipe.callbacks.drw, optimizer, run_data.class_counts)
    notes = (*data.data_notes(run_data), precision_note(chosen), *range_notes, *optimization.agc_notes(optimizer),
             *optimization.loss_notes(recipe.loss, recipe.callbacks.drw))
    return Run(
        recipe=recipe, out=Path(out), data=run_data, model=net, train_data=train_data,
        validation_data=data.eval_split(d, run_data, "val"),
        steps_per_epoch=steps, echo=echo, callbacks=tuple(technique), precision=chosen,
        fit_kwargs=data.fit_kwargs(d, steps), notes=notes, range_test=tested,
    )

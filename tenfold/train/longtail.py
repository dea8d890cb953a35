"""The trainer's long-tail pieces (docs/long-tail.md).

Recipe keys: ``loss.name`` (``balanced_softmax``, ``logit_adjusted``, ``ldam``,
``class_balanced`` or a registered class name) with ``loss.options``; ``model.head``
(``dense`` or ``normed``, the cosine classifier LDAM expects); ``data.sampler``
(``class_balanced``, ``square_root``, ``progressive``, ``instance``);
``callbacks.drw`` (deferred re-weighting); ``evaluate.posthoc`` (``adjust_logits``,
``tau_norm``, ``crt``: extra rows of the report, computed on copies of the trained model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from tenfold.train.builders import RunData
    from tenfold.train.recipe import Recipe
    from tenfold.train.run import RunContext

LOSS_ALIASES = {
    "balanced_softmax": "BalancedSoftmaxLoss",
    "logit_adjusted": "LogitAdjustedLoss",
    "ldam": "LDAMLoss",
    "class_balanced": "ClassBalancedLoss",
}


def resolve_loss_name(name: str) -> str | None:
    """The registered loss class name of a recipe's ``loss.name`` (None: cross-entropy)."""
    from tenfold import registry

    if name == "cross_entropy":
        return None
    if name in LOSS_ALIASES:
        return LOSS_ALIASES[name]
    names = {n.lower(): n for n in registry.list("losses")}
    if name.lower() in names:
        return names[name.lower()]
    choices = ["cross_entropy", *LOSS_ALIASES, *registry.list("losses")]
    raise ValueError(
        f"unknown loss {name!r};{registry.suggest(name, choices)} accepted: {', '.join(choices)}"
    )


def build_loss(recipe: Recipe, run_data: RunData) -> keras.losses.Loss:
    """The recipe's loss; with ``callbacks.drw`` plain cross-entropy becomes
    ``LogitAdjustedLoss(tau=0)`` (the same loss, with re-weightable classes)."""
    from tenfold import registry
    from tenfold.train.recipe import RecipeError

    loss = recipe.loss
    try:
        class_name = resolve_loss_name(loss.name)
    except ValueError as err:
        raise RecipeError(f"loss.name: {err}.") from err
    if class_name is None:
        if loss.options:
            raise RecipeError(f"loss.options: cross_entropy takes none, received {loss.options}.")
        if recipe.callbacks.drw is None:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        class_name, options = "LogitAdjustedLoss", {"tau": 0.0}
    else:
        options = dict(loss.options)
    cls = registry.get("losses", class_name)
    try:
        return cls(run_data.class_counts, **options)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"loss: cannot build {loss.name!r} with {loss.options}: {err}") from err


def normed_head(model: keras.Model) -> keras.Model:
    """The model with its Dense ``"classifier"`` replaced by a :class:`NormedDense`."""
    from tenfold.layers import NormedDense

    head = model.get_layer("classifier")
    outputs = NormedDense(head.units, dtype="float32", name="classifier")(head.input)
    return keras.Model(model.inputs, outputs, name=model.name)


def sample(ds: Any, recipe: Recipe, run_data: RunData) -> Any:
    """Re-sample the unbatched training dataset by ``data.sampler`` (or shuffle it)."""
    from tenfold.data import resample

    sampler = recipe.data.sampler
    n = len(run_data.splits.y_train)
    if sampler is None:
        return ds.shuffle(n, seed=recipe.seed, reshuffle_each_iteration=True)
    epochs = recipe.train.epochs if sampler == "progressive" else None
    return resample(ds, run_data.class_counts, strategy=sampler, epochs=epochs, seed=recipe.seed)


def fit_kwargs(recipe: Recipe, steps_per_epoch: int) -> dict[str, Any]:
    """``progressive`` yields all epochs in one pass: Keras keeps the iterator when
    ``steps_per_epoch`` is given."""
    return {"steps_per_epoch": steps_per_epoch} if recipe.data.sampler == "progressive" else {}


def add_callbacks(ctx: RunContext) -> None:
    """``callbacks.drw`` → :class:`tenfold.callbacks.DeferredReweighting`."""
    drw = ctx.recipe.callbacks.drw
    if drw is None:
        return
    from tenfold.callbacks import DeferredReweighting

    ctx.callbacks.append(DeferredReweighting(
        ctx.data.class_counts, start_epoch=drw.start_epoch, start_fraction=drw.start_fraction,
        beta=drw.beta,
    ))
    if ctx.recipe.loss.name == "cross_entropy":
        ctx.notes.append(
            "callbacks.drw with cross_entropy: trained with LogitAdjustedLoss(tau=0), the same "
            "loss with re-weightable classes."
        )


def _copy(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype="float64")


def posthoc_logits(ctx: RunContext, plain: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``{variant: {split: logits}}`` for the variants asked in ``evaluate.posthoc``.

    ``plain`` holds the trained model's logits per split (``"validation"``, ``"test"``).
    τ values set to ``search`` are chosen on the (balanced) validation split; the chosen
    values are recorded in ``ctx.notes``. The trained model itself is not changed.
    """
    from tenfold.longtail import adjust_logits, retrain_classifier, search_tau, tau_normalize

    p = ctx.recipe.evaluate.posthoc
    s, counts = ctx.data.splits, ctx.data.class_counts
    out: dict[str, dict[str, np.ndarray]] = {}
    if p.adjust_logits:
        if p.tau == "search":
            found = search_tau(plain["validation"], None, s.y_val, counts, method="adjust_logits")
            tau, how = found.tau, f"searched on validation (balanced accuracy {found.score:.3f})"
        else:
            tau, how = float(p.tau), "from the recipe"
        out["adjusted"] = {k: adjust_logits(v, counts, tau=tau) for k, v in plain.items()}
        ctx.notes.append(f"Post-hoc logit adjustment: logits − τ·log prior with τ = {tau:g}, {how}.")
    if p.tau_norm:
        model = _copy(ctx.model)
        try:
            found = search_tau(model, s.x_val, s.y_val, counts, method="tau_norm")
        except (ValueError, TypeError) as err:
            ctx.notes.append(f"τ-norm skipped: {err}")
        else:
            tau_normalize(model, tau=found.tau)
            out["tau_norm"] = {"validation": _logits(model, s.x_val), "test": _logits(model, s.x_test)}
            ctx.notes.append(
                f"τ-norm: classifier columns scaled by 1/‖w‖^τ, τ = {found.tau:g} searched on validation."
            )
    if p.crt:
        model = _copy(ctx.model)
        loss = None
        if ctx.recipe.model.head == "normed":  # cosine logits need a scale: CE on 30·cos
            from tenfold.losses import LDAMLoss

            loss = LDAMLoss(counts, max_margin=0.0, scale=30.0)
        retrain_classifier(
            model, (s.x_train, s.y_train), counts, epochs=p.crt_epochs, sampler=p.crt_sampler,
            batch_size=ctx.recipe.data.batch_size, seed=ctx.recipe.seed, loss=loss,
        )
        out["crt"] = {"validation": _logits(model, s.x_val), "test": _logits(model, s.x_test)}
        ctx.notes.append(
            f"cRT: backbone frozen, classifier re-initialized and retrained {p.crt_epochs} epochs "
            f"with {p.crt_sampler} sampling."
        )
    return out

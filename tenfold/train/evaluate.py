"""Stage "evaluate": accuracy, balanced, per-class and per-shot accuracy of a trained model,
and the post-hoc long-tail variants of ``evaluate.posthoc`` (docs/long-tail.md).

Plain NumPy over the model's logits on a split, so the numbers in ``metrics.json`` do not
depend on how Keras aggregates metrics. The trained model's logits are predicted once per
split and shared by every variant that starts from them. Shot groups are the library's
(:func:`tenfold.metrics.shot_accuracy.shot_group_masks`): many-shot ``n > many``, few-shot
``n < few``, medium-shot otherwise.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tenfold.longtail import adjust_logits, retrain_classifier, search_tau, tau_normalize
from tenfold.losses import LDAMLoss
from tenfold.metrics.shot_accuracy import shot_group_masks
from tenfold.train.build import Run
from tenfold.train.data import eval_split
from tenfold.train.recipe import PosthocConfig

SPLITS = ("validation", "test")


def predict_logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's outputs on ``x`` as float64."""
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype="float64")


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> list[float | None]:
    """Recall of each class (None for a class absent from ``y_true``)."""
    out: list[float | None] = []
    for c in range(num_classes):
        mask = y_true == c
        out.append(float(np.mean(y_pred[mask] == c)) if mask.any() else None)
    return out


def shot_groups(class_counts: list[int], *, many: int, few: int) -> dict[str, list[int]]:
    """Class indices of the many / medium / few-shot groups by training count."""
    masks = shot_group_masks(class_counts, many=many, few=few)
    return {name: [int(c) for c in np.flatnonzero(mask)] for name, mask in masks.items()}


def classification_metrics(
    logits: np.ndarray, y_true: np.ndarray, class_counts: list[int], *, many: int, few: int,
) -> dict[str, Any]:
    """All the numbers of one split, JSON-able.

    Example:
    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> m = classification_metrics(logits, np.array([0, 1, 1]), [50, 5], many=10, few=10)
    >>> m["accuracy"], m["balanced_accuracy"], m["shots"]["few"]["accuracy"]
    (0.6666666666666666, 0.75, 0.5)
    """
    y_pred = np.argmax(logits, axis=-1)
    per_class = per_class_accuracy(y_true, y_pred, logits.shape[-1])
    present = [a for a in per_class if a is not None]
    shots = {}
    for name, classes in shot_groups(class_counts, many=many, few=few).items():
        accs = [per_class[c] for c in classes if per_class[c] is not None]
        shots[name] = {"classes": classes, "accuracy": float(np.mean(accs)) if accs else None}
    return {
        "examples": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "per_class_accuracy": per_class,
        "shots": shots,
    }


def _copy(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _adjusted(p: PosthocConfig, plain: dict[str, np.ndarray], y_val: np.ndarray,
              counts: list[int]) -> tuple[dict[str, np.ndarray], str]:
    if p.tau == "search":
        found = search_tau(plain["validation"], None, y_val, counts, method="adjust_logits")
        tau, how = found.tau, f"searched on validation (balanced accuracy {found.score:.3f})"
    else:
        tau, how = float(p.tau), "from the recipe"
    logits = {k: adjust_logits(v, counts, tau=tau) for k, v in plain.items()}
    return logits, f"Post-hoc logit adjustment: logits − τ·log prior with τ = {tau:g}, {how}."


def streamed_logits(model: keras.Model, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """The model's outputs (float64) and the labels over a dataset of ``(x, y)`` batches, in
    one pass (a streamed split: the labels of the files actually decoded)."""
    logits, labels = [], []
    for x, y in dataset:
        logits.append(np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), "float64"))
        labels.append(np.asarray(y))
    if not logits:
        return np.zeros((0, model.outputs[0].shape[-1])), np.zeros((0,), "int64")
    return np.concatenate(logits), np.concatenate(labels).astype("int64")


def _tau_norm(run: Run) -> tuple[dict[str, np.ndarray] | None, str]:
    if run.data.files is not None:
        return None, "τ-norm skipped: its τ search takes the validation images in memory; the data are streamed."
    s, counts = run.data.splits, run.data.class_counts
    model = _copy(run.model)
    try:
        found = search_tau(model, s.x_val, s.y_val, counts, method="tau_norm")
    except (ValueError, TypeError) as err:
        return None, f"τ-norm skipped: {err}"
    tau_normalize(model, tau=found.tau)
    logits = {"validation": predict_logits(model, s.x_val), "test": predict_logits(model, s.x_test)}
    return logits, f"τ-norm: classifier columns scaled by 1/‖w‖^τ, τ = {found.tau:g} searched on validation."


def _crt(run: Run) -> tuple[dict[str, np.ndarray], str]:
    p, s, counts = run.recipe.evaluate.posthoc, run.data.splits, run.data.class_counts
    model = _copy(run.model)
    # cosine logits need a scale: cross-entropy on 30·cos
    loss = LDAMLoss(counts, max_margin=0.0, scale=30.0) if run.recipe.model.head == "normed" else None
    retrain_classifier(
        model, (s.x_train, s.y_train), counts, epochs=p.crt_epochs, sampler=p.crt_sampler,
        batch_size=run.recipe.data.batch_size, seed=run.recipe.seed, loss=loss,
    )
    logits = {"validation": predict_logits(model, s.x_val), "test": predict_logits(model, s.x_test)}
    return logits, (f"cRT: backbone frozen, classifier re-initialized and retrained {p.crt_epochs} "
                    f"epochs with {p.crt_sampler} sampling.")


def posthoc_logits(
    run: Run, plain: dict[str, np.ndarray], labels: dict[str, np.ndarray]
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """``{variant: {split: logits}}`` for the variants asked in ``evaluate.posthoc``, and notes.

    ``plain`` holds the trained model's logits per split, ``labels`` the labels. τ values set to ``search`` are
    chosen on the (balanced) validation split. The trained model itself is not changed.
    """
    p = run.recipe.evaluate.posthoc
    out: dict[str, dict[str, np.ndarray]] = {}
    notes: list[str] = []
    if p.adjust_logits:
        out["adjusted"], note = _adjusted(p, plain, labels["validation"], run.data.class_counts)
        notes.append(note)
    if p.tau_norm:
        logits, note = _tau_norm(run)
        if logits is not None:
            out["tau_norm"] = logits
        notes.append(note)
    if p.crt and run.data.files is not None:
        notes.append("cRT skipped: it retrains on the training images in memory; the data are streamed.")
    elif p.crt:
        out["crt"], note = _crt(run)
        notes.append(note)
    return out, notes


def evaluate(run: Run) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray], list[str]]:
    """Metrics per split and per model variant (``plain``: the trained model as it is).

    Returns the metrics, the trained model's logits per split and the report's notes.
    """
    s, e, counts = run.data.splits, run.recipe.evaluate, run.data.class_counts
    if run.data.files is not None:
        streamed = {split: streamed_logits(run.model, eval_split(run.recipe.data, run.data, key))
                    for split, key in (("validation", "val"), ("test", "test"))}
        plain = {split: pair[0] for split, pair in streamed.items()}
        labels = {split: pair[1] for split, pair in streamed.items()}
    else:
        labels = {"validation": s.y_val, "test": s.y_test}
        plain = {"validation": predict_logits(run.model, s.x_val), "test": predict_logits(run.model, s.x_test)}
    variants, notes = posthoc_logits(run, plain, labels)
    results: dict[str, dict[str, Any]] = {split: {} for split in SPLITS}
    for variant, logits in {"plain": plain, **variants}.items():
        for split in SPLITS:
            results[split][variant] = classification_metrics(
                logits[split], labels[split], counts, many=e.many, few=e.few)
    return results, plain, notes

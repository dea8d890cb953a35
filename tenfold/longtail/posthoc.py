"""Post-hoc corrections of a classifier trained on long-tailed data.

References:
    Menon et al. 2021, "Long-tail learning via logit adjustment", ICLR,
    https://arxiv.org/abs/2007.07314 (post-hoc adjustment, eq. 7);
    Kang et al. 2020, "Decoupling Representation and Classifier for Long-Tailed
    Recognition", ICLR, https://arxiv.org/abs/1910.09217 (τ-normalization, cRT; official
    code facebookresearch/classifier-balancing, PyTorch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from tenfold import _validate as v
from tenfold._api import export
from tenfold.ops.long_tail import log_prior, logit_adjust, tau_norm_kernel, validate_class_counts

METHODS = ("adjust_logits", "tau_norm")


@export("tenfold.longtail.adjust_logits")
def adjust_logits(logits: Any, class_counts: Sequence[int], *, tau: float = 1.0) -> Any:
    """Post-hoc logit adjustment: ``z_j − τ · log π_j``, π the training label prior.

    Turns the logits of a model trained with plain cross-entropy on long-tailed data into
    estimates for a balanced label distribution (Menon et al. 2021, eq. 7): the arg-max
    minimizes the balanced error at ``τ = 1``. ``τ = 0`` returns the logits unchanged.
    A NumPy array in gives a NumPy array out; a tensor gives a tensor.

    Args:
        logits: array or tensor `(..., num_classes)`.
        class_counts: list of int. Training examples per class.
        tau: float >= 0. Strength of the adjustment. Defaults to `1.0`.

    Example:
    >>> adjust_logits(np.array([[1.0, 0.0]]), [9, 1], tau=1.0).round(3).tolist()
    [[1.105, 2.303]]
    """
    counts = validate_class_counts(class_counts)
    tau = v.non_negative("tau", tau)
    if len(getattr(logits, "shape", np.shape(logits))) < 1 or isinstance(logits, (str, bytes)):
        raise ValueError(
            f"logits must be an array or tensor of shape (..., num_classes), received {logits!r}."
        )
    as_numpy = isinstance(logits, (np.ndarray, list, tuple))
    if as_numpy:
        array = np.asarray(logits)
        if array.shape[-1] != len(counts):
            raise ValueError(
                f"logits have {array.shape[-1]} classes but class_counts has {len(counts)}."
            )
        if tau == 0.0:
            return array
        out = array - tau * log_prior(counts).astype(array.dtype if array.dtype.kind == "f" else "float64")
        return out
    if logits.shape[-1] != len(counts):
        raise ValueError(f"logits have {logits.shape[-1]} classes but class_counts has {len(counts)}.")
    if tau == 0.0:
        return logits
    return logit_adjust(logits, log_prior(counts), -tau)


def _is_head(layer: Any) -> bool:
    from tenfold.layers import NormedDense

    return isinstance(layer, (keras.layers.Dense, NormedDense))


def classifier_layer(model_or_dense: Any, *, layer_name: str | None = None) -> keras.layers.Layer:
    """The classifier of a model: ``layer_name``, else the layer named ``"classifier"``,
    else the model's last Dense layer. A ``keras.layers.Dense`` or a
    :class:`tenfold.layers.NormedDense`."""
    v.string("layer_name", layer_name, allow_none=True)
    if _is_head(model_or_dense):
        if layer_name is not None:
            raise ValueError(
                f"layer_name picks the classifier of a keras.Model; received layer_name="
                f"{layer_name!r} with the layer {model_or_dense.name!r} itself."
            )
        return model_or_dense
    v.instance("model_or_dense", model_or_dense, keras.Model, "a keras.Model or a keras.layers.Dense")
    names = [layer.name for layer in model_or_dense.layers]
    name = layer_name or ("classifier" if "classifier" in names else None)
    if name is not None:
        if name not in names:
            raise ValueError(f"layer_name {name!r} is not a layer of the model; layers: {names}.")
        layer = model_or_dense.get_layer(name)
    else:
        dense = [layer for layer in model_or_dense.layers if isinstance(layer, keras.layers.Dense)]
        if not dense:
            raise ValueError("the model has no Dense layer to use as the classifier; pass layer_name.")
        layer = dense[-1]
    if not _is_head(layer):
        raise TypeError(
            f"the classifier layer {layer.name!r} is a {type(layer).__name__}, not a Dense or "
            "NormedDense layer."
        )
    return layer


def _dense_head(layer: Any) -> keras.layers.Dense:
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(  # noqa: TRY004 - a usage error the trainer reports as a note
            f"τ-normalization needs a Dense classifier; {layer.name!r} is a "
            f"{type(layer).__name__}, whose class vectors are normalized already."
        )
    return layer


@export("tenfold.longtail.tau_normalize")
def tau_normalize(model_or_dense: Any, *, tau: float = 1.0, layer_name: str | None = None) -> Any:
    """τ-normalization: rescale each class's weight vector ``w_j ← w_j / ‖w_j‖^τ``, in place.

    A classifier trained on long-tailed data learns larger weight norms for head classes;
    τ-normalization (Kang et al. 2020) shrinks that bias without any training. Works on a
    ``keras.layers.Dense`` (each column of its ``(features, classes)`` kernel is a class)
    or on a model (its ``layer_name``, ``"classifier"`` or last Dense layer). The bias is
    kept as it is (the paper ignores it). τ = 0 changes nothing; τ = 1 gives unit norms.

    Args:
        model_or_dense: a `keras.Model` or a built `keras.layers.Dense`.
        tau: float >= 0 (0: unchanged, 1: unit-norm class vectors). Defaults to `1.0`.
        layer_name: optional name of the classifier layer in a model.

    Returns:
        The object passed in, modified in place.

    Example:
    >>> dense = keras.layers.Dense(2); _ = dense(np.ones((1, 3)))
    >>> _ = tau_normalize(dense, tau=1.0)
    >>> np.linalg.norm(dense.kernel.numpy(), axis=0).round(4).tolist()
    [1.0, 1.0]
    """
    tau = v.non_negative("tau", tau)
    layer = _dense_head(classifier_layer(model_or_dense, layer_name=layer_name))
    if not layer.built:
        raise ValueError(f"the classifier layer {layer.name!r} is not built yet; call the model first.")
    if tau != 0.0:
        layer.kernel.assign(tau_norm_kernel(layer.kernel, tau))
    return model_or_dense


@dataclass
class TauSearch:
    """Outcome of :func:`search_tau`: the chosen τ and the score of every candidate."""

    tau: float
    score: float
    method: str
    taus: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def balanced_accuracy_score(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true`` (NumPy)."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in range(num_classes) if np.any(y_true == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _features_and_head(model: keras.Model, x: Any, layer_name: str | None, batch_size: int) -> tuple[np.ndarray, keras.layers.Dense]:
    layer = _dense_head(classifier_layer(model, layer_name=layer_name))
    try:
        features_model = keras.Model(model.inputs, layer.input)
    except Exception as err:
        raise ValueError(
            "method='tau_norm' needs a functional model whose classifier input can be read; "
            f"{type(err).__name__}: {err}"
        ) from err
    return np.asarray(features_model.predict(x, batch_size=batch_size, verbose=0)), layer


@export("tenfold.longtail.search_tau")
def search_tau(
    model: Any,
    x: Any,
    y: Any,
    class_counts: Sequence[int],
    *,
    method: str = "adjust_logits",
    taus: Sequence[float] | None = None,
    layer_name: str | None = None,
    batch_size: int = 256,
) -> TauSearch:
    """Pick τ of a post-hoc method by balanced accuracy on a validation set.

    The model runs once over ``x``; every candidate τ is then scored in NumPy.

    * ``method="adjust_logits"``: scores ``adjust_logits(logits, counts, tau=τ)``;
      ``model`` may also be an array of precomputed logits (then ``x`` is ignored).
    * ``method="tau_norm"``: scores the classifier with τ-normalized kernel on the
      classifier's input features (the model is not modified; apply the result with
      :func:`tau_normalize`).

    Args:
        model: a `keras.Model` (or, for `"adjust_logits"`, a logits array).
        x: validation inputs (array or dataset of inputs).
        y: validation integer labels.
        class_counts: list of int. Training examples per class.
        method: str. `"adjust_logits"` (default) or `"tau_norm"`.
        taus: candidates. Defaults to 0, 0.1, ..., 2.0.
        layer_name: optional classifier layer name for `"tau_norm"`.
        batch_size: int. Of the forward pass.

    Returns:
        A `TauSearch` with the best `tau` (the smallest among ties), its `score` and all
        candidates' scores.

    Example:
    >>> logits = np.array([[2.0, 1.5], [2.0, 0.0]]); y = np.array([1, 0])
    >>> search_tau(logits, None, y, [9, 1]).tau
    0.3
    """
    counts = validate_class_counts(class_counts)
    v.choice("method", method, METHODS)
    batch_size = v.integer("batch_size", batch_size, low=1)
    if taus is None:
        candidates = [float(t) for t in np.round(np.arange(0.0, 2.0001, 0.1), 10)]
    else:
        if isinstance(taus, (str, bytes)) or not isinstance(taus, Sequence):
            raise TypeError(f"taus must be a list of numbers, received {taus!r} of type {type(taus).__name__}.")
        if not taus:
            raise ValueError("taus must hold at least one candidate, received an empty list.")
        candidates = [v.non_negative(f"taus[{i}]", t) for i, t in enumerate(taus)]
    y_true = np.asarray(y).reshape(-1).astype("int64")
    num_classes = len(counts)
    scores = []
    if method == "adjust_logits":
        if isinstance(model, keras.Model):
            logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
        else:
            logits = np.asarray(model)
        if logits.shape != (len(y_true), num_classes):
            raise ValueError(
                f"logits have shape {logits.shape}, expected ({len(y_true)}, {num_classes})."
            )
        for t in candidates:
            pred = np.argmax(adjust_logits(logits.astype("float64"), counts, tau=t), axis=-1)
            scores.append(balanced_accuracy_score(y_true, pred, num_classes))
    else:
        v.instance("model", model, keras.Model, "a keras.Model for method='tau_norm'")
        features, layer = _features_and_head(model, x, layer_name, batch_size)
        kernel = np.asarray(ops.convert_to_numpy(layer.kernel), "float64")
        bias = np.asarray(ops.convert_to_numpy(layer.bias), "float64") if layer.use_bias else 0.0
        norms = np.maximum(np.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)
        for t in candidates:
            logits = features.astype("float64") @ (kernel / norms**t) + bias
            scores.append(balanced_accuracy_score(y_true, np.argmax(logits, axis=-1), num_classes))
    best = int(np.nanargmax(scores))
    return TauSearch(candidates[best], scores[best], method, candidates, scores)

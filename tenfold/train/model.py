"""Stage "model": the network of a recipe's ``model:`` section.

The source is one of: tenfold's own networks (``model.name: small_resnet | mlp``, shaped by
the switches ``model.conv``, ``model.norm``, ``model.width``, ...), any ``keras.applications``
constructor (``model.name: keras.applications.MobileNetV2`` with ``model.options``:
``weights=None`` always, input shape and classes from the data, logits out), a ``.keras``
file (``model.path``) or a user function (``model.factory: "package.module:function"``, called
as ``function(input_shape, num_classes, **model.options)``). Then, on any of them:
``model.head: normed`` (tenfold's own networks: the cosine classifier LDAM expects),
``model.convert`` (layer swaps through :func:`tenfold.reparam.convert`), ``model.bn_momentum``
(the moving-statistics momentum of every batch norm) and ``model.remat``
(recomputed segments, :func:`tenfold.remat.apply`, docs/recompute.md). Built under the dtype
policy in force, so the precision policy must be set first (``build`` does); a model whose
logits are not float32 under a mixed policy gets a float32 output layer
(``tenfold.precision.float32_outputs``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras

from tenfold import _validate, models, precision, remat, reparam
from tenfold.layers import ExtendedBatchNormalization, NormedDense
from tenfold.train.recipe import APPLICATIONS, ModelConfig, RecipeError

# keras.applications arguments the trainer sets itself: no download, shapes from the data
FIXED_OPTIONS = ("weights", "input_shape", "input_tensor", "classes", "classifier_activation")


def build_model(
    m: ModelConfig, input_shape: tuple[int, ...], num_classes: int, *, max_parameters: int | None = None
) -> keras.Model:
    """The model of ``m`` for inputs of ``input_shape`` and ``num_classes`` logits.

    ``max_parameters``: refuse a model with more parameters (``train.max_parameters``; the
    recipe estimates tenfold's own networks at load, the others are counted here).
    """
    try:
        model = _network(m, input_shape, num_classes)
    except RecipeError:
        raise
    except (TypeError, ValueError) as err:  # what the recipe schema could not check
        raise RecipeError(f"model: {err}") from err
    if m.head == "normed":
        model = normed_head(model)
    if not m.builtin:
        model = precision.float32_outputs(_checked(model, m, input_shape, num_classes))
    if m.convert is not None:
        c = m.convert
        try:
            model = reparam.convert(model, conv=c.conv, norm=c.norm, exclude=list(c.exclude))
        except (TypeError, ValueError) as err:
            raise RecipeError(f"model.convert: {err}") from err
    if m.bn_momentum is not None:
        set_bn_momentum(model, m.bn_momentum)
    if m.remat is not None:
        try:
            model = remat.apply(model, m.remat)
        except (TypeError, ValueError) as err:
            raise RecipeError(f"model.remat: {err}") from err
    if max_parameters is not None and model.count_params() > max_parameters:
        raise RecipeError(
            f"model: {m.source} has {model.count_params():,} parameters, above "
            f"train.max_parameters={max_parameters:.3g}; make it smaller or raise train.max_parameters."
        )
    return model


def _network(m: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    if m.path is not None:
        return load_model_file(m.path)
    if m.factory is not None:
        return from_factory(m.factory, input_shape, num_classes, m.options)
    if m.name is not None and m.name.startswith(APPLICATIONS):
        return application(m.name, input_shape, num_classes, m.options)
    if m.name == "mlp":
        return models.mlp(input_shape, num_classes, hidden=m.hidden, activation=m.activation,
                          dropout=m.dropout)
    if len(input_shape) != 3:
        raise RecipeError(
            f"model.name: 'small_resnet' needs image inputs (H, W, C), the data has shape "
            f"{input_shape}; use model.name=mlp."
        )
    return models.small_resnet(
        input_shape, num_classes, width=m.width, blocks=m.blocks, conv=m.conv, norm=m.norm,
        activation=m.activation,
    )


def application(name: str, input_shape: tuple[int, ...], num_classes: int, options: dict[str, Any]) -> keras.Model:
    """``keras.applications.<name>`` with ``weights=None``, the data's input shape and classes.

    ``include_top`` (the default) gives the constructor's own classifier with
    ``classifier_activation=None`` (logits); ``include_top: false`` takes the backbone with
    ``pooling`` (default ``"avg"``) and adds a float32 ``Dense(num_classes)`` named
    ``"classifier"``.
    """
    short = name.removeprefix(APPLICATIONS)
    constructor = getattr(keras.applications, short)
    accepted = [p for p in inspect.signature(constructor).parameters if p not in FIXED_OPTIONS]
    options = dict(options)
    for key in options:
        if key in FIXED_OPTIONS and not (key in ("weights", "classifier_activation") and options[key] is None):
            raise RecipeError(
                f"model.options.{key}={options[key]!r}: the trainer sets it for {name} (weights=None: "
                "trained from scratch, no download; input_shape and classes from the data; logits "
                "out); remove it."
            )
        if key not in accepted and key not in FIXED_OPTIONS:
            raise RecipeError(
                f"model.options: {name} takes no argument {key!r}.{_validate.suggest(key, accepted)} "
                f"Accepted: {', '.join(accepted)}."
            )
    options.pop("weights", None)
    options.pop("classifier_activation", None)
    include_top = bool(options.pop("include_top", True))
    kwargs: dict[str, Any] = {"input_shape": tuple(input_shape), "weights": None, "include_top": include_top}
    if include_top:
        kwargs.update(classes=num_classes, classifier_activation=None)
    else:
        options.setdefault("pooling", "avg")
    try:
        model = constructor(**kwargs, **options)
    except (TypeError, ValueError) as err:
        hint = (" Resize the images with data.image_size (e.g. data.image_size: [32, 32]) or "
                "set data.channels." if "input" in str(err).lower() else "")
        raise RecipeError(f"model.name: {name} cannot be built for inputs of shape "
                          f"{tuple(input_shape)}: {err}{hint}") from None
    if include_top:
        return model
    if len(model.outputs[0].shape) != 2:
        raise RecipeError(
            f"model.options: {name} with include_top=false and pooling={options['pooling']!r} "
            f"gives features of shape {tuple(model.outputs[0].shape)}; use pooling 'avg' or 'max'."
        )
    logits = keras.layers.Dense(num_classes, dtype="float32", name="classifier")(model.outputs[0])
    return keras.Model(model.inputs, logits, name=model.name)


def load_model_file(path: str) -> keras.Model:
    """The model of a ``.keras`` file (``safe_mode`` on, not compiled)."""
    file = Path(path)
    if not file.is_file():
        raise RecipeError(f"model.path: the model file {path!r} does not exist.")
    if not zipfile.is_zipfile(file):
        raise RecipeError(f"model.path: {path!r} is not a .keras archive (truncated, or not written by model.save).")
    try:
        return keras.saving.load_model(file, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - any failure of a damaged or foreign archive: one message
        raise RecipeError(f"model.path: {path!r} cannot be loaded: {err}") from None


def from_factory(spec: str, input_shape: tuple[int, ...], num_classes: int, options: dict[str, Any]) -> keras.Model:
    """``function(input_shape, num_classes, **options)`` of ``"package.module:function"``.

    The working directory is importable (a ``my_models.py`` next to the recipe works with
    the ``tenfold`` command as with ``python -m tenfold``).
    """
    module_name, _, function_name = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RecipeError(f"model.factory: cannot import module {module_name!r} of {spec!r}: {err}.") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise RecipeError(
            f"model.factory: module {module_name!r} has no function {function_name!r}."
            f"{_validate.suggest(function_name, names)} Functions there: {', '.join(names) or 'none'}."
        )
    try:
        model = function(tuple(input_shape), num_classes, **options)
    except (TypeError, ValueError) as err:
        raise RecipeError(
            f"model.factory: {spec}({tuple(input_shape)}, {num_classes}"
            f"{''.join(f', {k}={v!r}' for k, v in options.items())}) failed: {err}"
        ) from None
    if not isinstance(model, keras.Model):
        raise RecipeError(
            f"model.factory: {spec} returned {type(model).__name__}, not a keras.Model."
        )
    return model


def _checked(model: keras.Model, m: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """``model`` when it takes the data's inputs and gives ``num_classes`` logits; else a RecipeError."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise RecipeError(f"model: {m.source} is not built (no inputs/outputs): give it a keras.Input.")
    if len(inputs) != 1 or len(outputs) != 1:
        raise RecipeError(
            f"model: {m.source} has {len(inputs)} inputs and {len(outputs)} outputs; the trainer "
            "trains a model with one input (the images) and one output (the logits)."
        )
    expected = tuple(inputs[0].shape[1:])
    if len(expected) != len(input_shape) or any(
        e is not None and e != d for e, d in zip(expected, input_shape)
    ):
        raise RecipeError(
            f"model: {m.source} takes inputs of shape {expected}, the data gives {tuple(input_shape)}; "
            "resize with data.image_size: [height, width] and set data.channels: 1 or 3."
        )
    if tuple(outputs[0].shape[1:]) != (num_classes,):
        raise RecipeError(
            f"model: {m.source} gives outputs of shape {tuple(outputs[0].shape[1:])}, the data has "
            f"{num_classes} classes: its last layer must give {num_classes} logits."
        )
    op = getattr(outputs[0], "_keras_history", None)
    op = getattr(op, "operation", None)
    activation = getattr(op, "activation", None)
    if isinstance(op, keras.layers.Softmax) or (
        activation is not None and keras.activations.serialize(activation) in ("softmax", "sigmoid")
    ):
        raise RecipeError(
            f"model: {m.source} ends in a {getattr(activation, '__name__', 'softmax')} activation; "
            "the trainer's losses take logits: build it with a linear last layer "
            "(keras.applications: classifier_activation=None)."
        )
    return model


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
    """Set ``momentum`` on every batch-norm layer of ``model`` (nested ones included); returns
    how many. Keras' BatchNormalization reads it on each training call, so it applies from
    the first step, and ``get_config`` saves it."""
    norms = [la for la in model._flatten_layers(include_self=False)
             if isinstance(la, (keras.layers.BatchNormalization, ExtendedBatchNormalization))]
    for layer in norms:
        layer.momentum = float(momentum)
    return len(norms)


def normed_head(model: keras.Model) -> keras.Model:
    """The model with its Dense ``"classifier"`` replaced by a :class:`NormedDense`."""
    head = model.get_layer("classifier")
    outputs = NormedDense(head.units, dtype="float32", name="classifier")(head.input)
    return keras.Model(model.inputs, outputs, name=model.name)

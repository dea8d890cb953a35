"""Stage "model": the network of a recipe's ``model:`` section.

The model switches (``model.conv``, ``model.norm``) choose the layers, ``model.head`` the
classifier (``normed``: the cosine classifier LDAM expects) and ``model.remat`` the
recomputed segments (docs/recompute.md). Built under the dtype policy in force, so the
precision policy must be set first (``build`` does).
"""

from __future__ import annotations

import keras

from tenfold import models, remat
from tenfold.layers import NormedDense
from tenfold.train.recipe import ModelConfig, RecipeError


def build_model(m: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The model of ``m`` for inputs of ``input_shape`` and ``num_classes`` logits."""
    try:
        model = _network(m, input_shape, num_classes)
    except RecipeError:
        raise
    except (TypeError, ValueError) as err:  # what the recipe schema could not check
        raise RecipeError(f"model: {err}") from err
    if m.head == "normed":
        model = normed_head(model)
    if m.remat is not None:
        try:
            model = remat.apply(model, m.remat)
        except (TypeError, ValueError) as err:
            raise RecipeError(f"model.remat: {err}") from err
    return model


def _network(m: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
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


def normed_head(model: keras.Model) -> keras.Model:
    """The model with its Dense ``"classifier"`` replaced by a :class:`NormedDense`."""
    head = model.get_layer("classifier")
    outputs = NormedDense(head.units, dtype="float32", name="classifier")(head.input)
    return keras.Model(model.inputs, outputs, name=model.name)

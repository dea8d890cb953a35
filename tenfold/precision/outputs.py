"""Float32 outputs for any model under a mixed policy.

References:
    Keras' mixed precision guide, "Building the model": under a mixed policy the last
    layer's outputs, the softmax and the loss should be float32, because a float16 /
    bfloat16 softmax can overflow or lose the small probabilities the loss takes the log
    of, https://keras.io/guides/mixed_precision/
"""

from __future__ import annotations

import keras

from tenfold import _validate as v
from tenfold._api import export


def output_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers that produce ``model``'s outputs, looking inside nested models.

    A Functional or Sequential model's outputs carry the layer that made them; when that
    layer is itself a Functional or Sequential model, its own output layers are returned.
    """
    found: list[keras.layers.Layer] = []
    for tensor in _outputs(model):
        layer = tensor._keras_history.operation
        if isinstance(layer, keras.layers.InputLayer):
            continue  # an output that is an input: nothing computes it
        if isinstance(layer, keras.Model) and _has_graph(layer):
            found.extend(la for la in output_layers(layer) if la not in found)
        elif layer not in found:
            found.append(layer)
    return found


@export("tenfold.precision.float32_outputs")
def float32_outputs(model: keras.Model) -> keras.Model:
    """Make the layers that produce ``model``'s outputs compute in float32; returns ``model``.

    Under a ``mixed_bfloat16`` / ``mixed_float16`` policy every layer computes in half
    precision, so a ``keras.applications`` model returns bfloat16 logits and takes its
    softmax in bfloat16. This sets the dtype policy of each output layer (the last
    ``Dense`` of a classifier, looking inside nested models; a composite layer such as
    KerasHub's ``TransformerEncoder`` with every layer inside it) to ``"float32"``: the layer
    casts its half-precision inputs up and computes its matmul, activation and output in
    float32, so the loss is computed in float32 (the Keras mixed precision guide's rule).
    Its variables were float32 already; no weight changes.

    The model is changed in place rather than wrapped, so that the model object, its
    layer names and weights stay the same (``configure(..., model=m)`` can apply it to the
    model it is given), and because the policy is part of the layer's config, a ``.keras``
    file saved afterwards loads with the float32 output layer; a wrapper layer would add
    a layer to the saved graph and return a different model. Compiled step functions are
    dropped so that the next ``fit`` / ``predict`` traces the float32 layer. Under the
    float32 policy nothing changes.

    Args:
        model: a built Functional or Sequential ``keras.Model`` (``keras.applications``
            models are Functional). A subclassed model has no graph to read its output
            layer from: cast in its ``call`` instead.

    Returns:
        ``model``.

    Example:
    >>> keras.config.set_dtype_policy("mixed_bfloat16")
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    >>> keras.backend.standardize_dtype(m(np.ones((1, 4))).dtype)
    'bfloat16'
    >>> keras.backend.standardize_dtype(float32_outputs(m)(np.ones((1, 4))).dtype)
    'float32'
    >>> keras.config.set_dtype_policy("float32")
    """
    v.instance("model", model, keras.Model, "a keras.Model")
    if not _has_graph(model):
        raise ValueError(
            f"float32_outputs needs a built Functional or Sequential model, received "
            f"{type(model).__name__} {model.name!r} without a layer graph (a subclassed model, or "
            "a Sequential model without an Input). Build it first, or cast the output to "
            "float32 in its call()."
        )
    changed = False
    for layer in output_layers(model):
        # a composite output layer (KerasHub's TransformerEncoder, a residual block) computes
        # in float32 as a whole: with its own policy alone, it would cast its inputs up and
        # add them to its half-precision sublayers' outputs (a dtype mismatch on TensorFlow)
        for part in _with_sublayers(layer):
            if part.compute_dtype != "float32" and keras.backend.is_float_dtype(part.compute_dtype):
                part.dtype_policy = "float32"
                changed = True
    if changed:  # the step functions were traced with the half-precision output layer
        model.train_function = model.test_function = model.predict_function = None
    return model


def _with_sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer`` and every layer tracked inside it, depth first."""
    found, stack = [], [layer]
    while stack:
        current = stack.pop()
        if any(current is f for f in found):
            continue
        found.append(current)
        stack.extend(reversed(getattr(current, "_layers", None) or []))
    return found


def _has_graph(model: keras.Model) -> bool:
    try:
        return bool(_outputs(model))
    except (AttributeError, ValueError):
        return False


def _outputs(model: keras.Model) -> list:
    outputs = model.outputs
    return [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)

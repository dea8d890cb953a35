"""The fused (deploy) form of one convolution, for blocks built directly in that form.

:class:`tenfold.models.ResidualBlock` with ``fused=True`` builds each convolution this way, and
:func:`tenfold.reparam.deploy` writes the folded weights into the same form. It lives with the
layers (not in ``reparam``) so that ``models`` and ``reparam`` both import it and neither
imports the other.
"""

from __future__ import annotations

import keras

from tenfold.layers._branches import BranchBlock
from tenfold.layers.ws_conv import WSConv2D

#: configuration keys of the WS layers that a plain Keras convolution does not take
WS_ONLY_KEYS = ("use_gain", "epsilon")


def fused_counterpart(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new, unbuilt layer of the fused form of producer ``layer`` (same name, dtype).

    ``Conv2D`` → ``Conv2D`` with a bias; ``WSConv2D`` → plain ``Conv2D`` with a bias (the
    standardized kernel is frozen); ``ACBlock``/``RepVGGBlock`` → the same block with
    ``deploy=True`` (one ``Conv2D`` named ``fused``).

    Example:
    >>> new = fused_counterpart(keras.layers.Conv2D(4, 3, use_bias=False, name="c"))
    >>> new.use_bias, new.name
    (True, 'c')
    """
    if isinstance(layer, BranchBlock):
        return type(layer).from_config({**layer.get_config(), "deploy": True})
    linear = keras.activations.serialize(getattr(layer, "activation", None)) == "linear"
    if type(layer) not in (keras.layers.Conv2D, WSConv2D) or not linear:
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__} has no fused form; accepted: "
            "Conv2D (linear activation, channels_last), WSConv2D, ACBlock, RepVGGBlock."
        )
    config = {k: v for k, v in layer.get_config().items() if k not in WS_ONLY_KEYS}
    config["use_bias"] = True
    config["bias_initializer"] = "zeros"
    return keras.layers.Conv2D.from_config(config)

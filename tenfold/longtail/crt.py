"""Classifier re-training (cRT): keep the representation, re-learn the classifier balanced.

References:
    Kang et al. 2020, "Decoupling Representation and Classifier for Long-Tailed
    Recognition", ICLR, https://arxiv.org/abs/1910.09217 (Sec. 4, cRT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow
from tenfold.data.resample import STRATEGIES, resample
from tenfold.longtail.posthoc import classifier_layer
from tenfold.ops.long_tail import validate_class_counts


@export("tenfold.longtail.retrain_classifier")
def retrain_classifier(
    model: keras.Model,
    dataset: Any,
    class_counts: Sequence[int],
    *,
    epochs: int = 10,
    sampler: str = "class_balanced",
    batch_size: int = 32,
    learning_rate: float = 1e-2,
    optimizer: Any = None,
    loss: Any = None,
    reinitialize: bool = True,
    layer_name: str | None = None,
    seed: int | None = 0,
    verbose: int = 0,
) -> keras.callbacks.History:
    """cRT: freeze the backbone, re-initialize and retrain only the classifier, re-sampled.

    Every layer but the classifier (``layer_name``, ``"classifier"`` or the last Dense
    layer; a ``Dense`` or a ``NormedDense``) is frozen — batch normalization then runs in inference mode, so its statistics
    stay — the classifier's kernel and bias are re-drawn from their initializers, and the
    model is fitted for ``epochs`` epochs on ``resample(dataset, class_counts,
    strategy=sampler)`` with softmax cross-entropy. Afterwards the layers' ``trainable``
    flags are restored; the model stays compiled with the cRT optimizer and loss
    (re-compile it to train further).

    Args:
        model: a built `keras.Model` producing logits.
        dataset: unbatched `tf.data.Dataset` of `(x, y)`, or a tuple `(x, y)` of arrays.
        class_counts: list of int. Training examples per class.
        epochs: int. Defaults to `10`.
        sampler: str. Re-sampling strategy of :func:`tenfold.data.resample` (default
            `"class_balanced"`; `"instance"` keeps the natural distribution).
        batch_size: int. Defaults to `32`.
        learning_rate: float. Of the default optimizer (SGD, momentum 0.9, cosine decay).
        optimizer: optional Keras optimizer instead of the default.
        loss: optional Keras loss instead of sparse categorical cross-entropy on logits.
        reinitialize: bool. Re-draw the classifier weights first (the paper's cRT).
        layer_name: optional name of the classifier layer.
        seed: optional int. Of the re-sampling.
        verbose: int. Keras `fit` verbosity.

    Returns:
        The `History` of the classifier's `fit`.

    Example:
    >>> retrain_classifier(model, (x_train, y_train), counts, epochs=5)  # doctest: +SKIP
    """
    tf = tensorflow("tenfold.longtail.retrain_classifier")
    counts = validate_class_counts(class_counts)
    epochs = v.integer("epochs", epochs, low=1)
    v.choice("sampler", sampler, [s for s in STRATEGIES if s != "progressive"])
    batch_size = v.integer("batch_size", batch_size, low=1)
    reinitialize = v.boolean("reinitialize", reinitialize)
    seed = v.integer("seed", seed, low=0, allow_none=True)
    if optimizer is None:
        v.positive("learning_rate", learning_rate)
    head = classifier_layer(model, layer_name=layer_name)
    if isinstance(dataset, tuple) and len(dataset) == 2:
        dataset = tf.data.Dataset.from_tensor_slices(
            (np.asarray(dataset[0], "float32"), np.asarray(dataset[1]).astype("int64"))
        )
    data = resample(dataset, counts, strategy=sampler, seed=seed).batch(batch_size).prefetch(2)
    steps = max(1, int(np.ceil(sum(counts) / batch_size)))

    flags = {id(layer): layer.trainable for layer in model._flatten_layers(include_self=False)}
    model_flag = model.trainable
    try:
        model.trainable = True
        for layer in model._flatten_layers(include_self=False):
            layer.trainable = False
        head.trainable = True
        if reinitialize:
            head.kernel.assign(head.kernel_initializer(head.kernel.shape, head.kernel.dtype))
            if getattr(head, "use_bias", False):
                head.bias.assign(head.bias_initializer(head.bias.shape, head.bias.dtype))
        if optimizer is None:
            schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps)
            optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
        model.compile(
            optimizer=optimizer,
            loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model.fit(data, epochs=epochs, verbose=verbose, shuffle=False)
    finally:
        for layer in model._flatten_layers(include_self=False):
            layer.trainable = flags.get(id(layer), layer.trainable)
        model.trainable = model_flag
